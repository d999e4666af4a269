"""Export a trained model to ONNX or TorchScript, with its metadata, and check the result.

The exported graph computes exactly ``model(x)``: input ``image``, normalised float32
``(B, 3, H, W)``; output ``logits``, float32 ``(B, K, H, W)``. Normalisation is *not* baked into
the graph (so the exported graph and ``model(x)`` agree on their input); the normalisation, class
names, palette and model config travel with the file as metadata:

- ONNX: ``metadata_props`` keys ``pdn.classes``, ``pdn.palette``, ``pdn.normalization``,
  ``pdn.model_config`` (JSON values), ``pdn.input``, ``pdn.output`` (descriptions), ``pdn.version``;
- TorchScript: the extra file ``pdn.json`` holding the same keys
  (``torch.jit.load(path, _extra_files={"pdn.json": ""})``).

How: ONNX uses ``torch.onnx.export`` with the TorchScript-based exporter (``dynamo=False``) on a
traced model. The ``sweep`` diffusion's loop over rows and columns is kept as a loop while
tracing (an ONNX ``Loop``; see ``models/diffusion.py``), so with ``dynamic=True`` every model but
PPM takes any batch, height and width >= 32, verified at a second size. PPM's adaptive pooling
becomes fixed pooling windows, valid at the export size only, so ``dynamic=True`` is refused for
it. TorchScript uses ``torch.jit.script`` (size-generic), falling back to ``torch.jit.trace``
if scripting fails; recent PyTorch releases mark TorchScript as deprecated (it still works; ONNX
is the format to prefer). Every export is written to a temporary file, run on random inputs and
compared with the eager model; only a file within ``tolerance`` replaces the output path.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import PdnError
from ..models.backbones import Normalization
from ..version import __version__
from ..vocabulary import MIN_INPUT_SIZE
from .checkpoint import current_umask, load_checkpoint, model_from_checkpoint

__all__ = [
    "FORMATS",
    "ExportError",
    "ExportResult",
    "export_checkpoint",
    "export_onnx",
    "export_torchscript",
    "read_metadata",
]

FORMATS = ("onnx", "torchscript")
DEFAULT_OPSET = 17
DEFAULT_SIZE = 512
TOLERANCE = 1e-3
METADATA_FILE = "pdn.json"  # the TorchScript extra file


class ExportError(PdnError, RuntimeError):
    """The model could not be exported, or the exported graph disagrees with the model."""


@dataclass
class ExportResult:
    """What an export produced.

    Attributes:
        path: the written file.
        format: ``"onnx"`` or ``"torchscript"``.
        method: how the graph was captured (``"trace"`` or ``"script"``).
        size: the ``(H, W)`` the graph was exported (and verified) at.
        dynamic_axes: the input axes that may vary (subset of ``batch``, ``height``, ``width``).
        max_abs_diff: largest ``|exported - eager|`` over the verification runs.
        notes: anything the user should know (fallbacks, fixed sizes).
    """

    path: Path
    format: str
    method: str
    size: tuple[int, int]
    dynamic_axes: list[str]
    max_abs_diff: float
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        axes = ", ".join(self.dynamic_axes) if self.dynamic_axes else "none"
        return (
            f"wrote {self.path} ({self.format} via {self.method}, size {self.size[0]}x{self.size[1]}, "
            f"dynamic axes: {axes}); max abs diff vs the eager model: {self.max_abs_diff:.3g}"
        )


def model_metadata(
    model: nn.Module,
    *,
    classes: list[str],
    palette: list[list[int]],
    normalization: Normalization,
) -> dict[str, str]:
    """The string key/values stored with an exported model (see the module docstring)."""
    norm = normalization.to_dict()
    return {
        "pdn.classes": json.dumps(list(classes)),
        "pdn.palette": json.dumps([list(map(int, c)) for c in palette]),
        "pdn.normalization": json.dumps(norm),
        "pdn.model_config": json.dumps(dict(getattr(model, "model_config", {}))),
        "pdn.input": (
            "image: float32 (B, 3, H, W), RGB scaled to [0, 1] then (x - mean) / std with "
            f"mean={norm['mean']}, std={norm['std']}"
        ),
        "pdn.output": f"logits: float32 (B, {len(classes)}, H, W); argmax over axis 1 gives the class",
        "pdn.version": __version__,
    }


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The pdn metadata of an exported ONNX or TorchScript file, JSON values decoded."""
    path = Path(path)
    if path.suffix == ".onnx":
        onnx = _require("onnx")
        model = onnx.load(str(path), load_external_data=False)
        raw = {prop.key: prop.value for prop in model.metadata_props}
    else:
        extra = {METADATA_FILE: ""}
        with _jit_quiet():
            torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        raw = json.loads(extra[METADATA_FILE] or "{}")
    decoded: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            decoded[key] = json.loads(value) if key not in ("pdn.input", "pdn.output") else value
        except json.JSONDecodeError:
            decoded[key] = value
    return decoded


@contextlib.contextmanager
def _jit_quiet() -> Iterator[None]:
    """Silence PyTorch's deprecation notices for torch.jit (TorchScript still works; the user
    asked for it by choosing the format)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.*", category=DeprecationWarning)
        yield


def _require(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError:
        raise ExportError(
            f"ONNX export needs the {name} package: pip install 'pdn[export]' "
            "(onnx, onnxruntime, onnxscript)"
        ) from None


def size_specific(model: nn.Module) -> str | None:
    """Why a traced ONNX graph of ``model`` only fits the traced height and width, or None.

    PPM's adaptive pooling is exported as fixed pooling windows (ONNX has no adaptive pooling).
    """
    from ..models import PPMHead

    if any(isinstance(m, PPMHead) for m in model.modules()):
        return "ppm's adaptive pooling is exported as fixed pooling windows"
    return None


@contextlib.contextmanager
def _staged(path: Path) -> Iterator[Path]:
    """A temporary path next to ``path`` that replaces it on success and is removed on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    os.chmod(
        name, 0o666 & ~current_umask()
    )  # mkstemp makes 0600; an export gets the usual file mode
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def _native_output_silenced() -> Iterator[None]:
    """Discard what native code writes to file descriptors 1 and 2 (the TorchScript exporter
    dumps its whole IR graph to stdout when an operator cannot be exported; the exception that
    follows says enough)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        for fd in saved:
            os.close(fd)


def _inputs(size: tuple[int, int], spatial: bool, batch: bool) -> list[torch.Tensor]:
    """Random normalised inputs: the export size, then (when dynamic) another batch / size."""
    generator = torch.Generator().manual_seed(0)
    h, w = size
    shapes = [(1, 3, h, w)]
    if batch or spatial:
        shapes.append((2 if batch else 1, 3, h + 24 if spatial else h, w + 40 if spatial else w))
    return [torch.randn(*shape, generator=generator) for shape in shapes]


def _compare(model: nn.Module, run: Any, inputs: list[torch.Tensor], what: str) -> float:
    worst = 0.0
    for x in inputs:
        with torch.no_grad():
            expected = model(x)
        try:
            got = torch.as_tensor(run(x))
        except Exception as error:
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise ExportError(
                f"the exported {what} failed on an input of shape {list(x.shape)} ({first})"
            ) from None
        if got.shape != expected.shape:
            raise ExportError(
                f"the exported {what} returned shape {list(got.shape)} for input {list(x.shape)}, "
                f"the model {list(expected.shape)}"
            )
        if not bool(torch.isfinite(expected).all()):
            raise ExportError(
                f"the model's own output is not finite for an input of shape {list(x.shape)}; "
                "nothing to verify against, nothing written"
            )
        diff = float((got.float() - expected).abs().max())
        if not diff <= worst:  # max(worst, nan) would keep worst: NaN must fail verification
            worst = diff
    return worst


def _check_tolerance(diff: float, tolerance: float, what: str) -> None:
    if not diff <= tolerance:  # also catches NaN
        raise ExportError(
            f"the exported {what} differs from the eager model by {diff:.3g} "
            f"(max abs, tolerance {tolerance:g}); nothing written"
        )


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    size: tuple[int, int] = (DEFAULT_SIZE, DEFAULT_SIZE),
    opset: int = DEFAULT_OPSET,
    dynamic: bool = False,
    metadata: Mapping[str, str] | None = None,
    tolerance: float = TOLERANCE,
) -> ExportResult:
    """Export ``model`` (put in eval mode on the CPU) to an ONNX file and verify it with onnxruntime.

    Args:
        model: ``(B, 3, H, W) -> (B, K, H, W)``.
        path: the ``.onnx`` file to write.
        size: ``(H, W)`` of the example input used for tracing (the only valid size unless
            ``dynamic``).
        opset: ONNX opset version.
        dynamic: make the batch, height and width axes dynamic (refused for PPM, whose pooling
            windows depend on the size).
        metadata: string key/values stored in ``metadata_props``.
        tolerance: largest accepted ``|onnxruntime - eager|``.

    Raises:
        ExportError: missing packages, export failure, or a verification beyond ``tolerance``.
    """
    onnx = _require("onnx")
    ort = _require("onnxruntime")
    path = Path(path)
    model = model.cpu().eval()
    fixed_because = size_specific(model)
    if dynamic and fixed_because is not None:
        raise ExportError(
            f"--dynamic is not possible for this model: {fixed_because}, so the graph fits one "
            "input size; export without --dynamic at the size you need (--size H W)"
        )
    proto = onnx.load_from_string(_traced_onnx(model, size, opset, dynamic))
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    with _staged(path) as tmp:
        onnx.save(proto, str(tmp))
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        diff = _verify_onnx(model, session, size, dynamic, tolerance)
    axes = ["batch", "height", "width"] if dynamic else []
    notes = []
    if fixed_because is not None:
        notes.append(f"the graph is valid for {size[0]}x{size[1]} inputs only: {fixed_because}")
    return ExportResult(path, "onnx", "trace", size, axes, diff, notes)


def _traced_onnx(model: nn.Module, size: tuple[int, int], opset: int, dynamic: bool) -> bytes:
    """The serialised ONNX graph of ``model`` traced on one ``(1, 3, *size)`` input, with input
    ``image`` and output ``logits`` (batch, height and width dynamic when ``dynamic``); raises a
    one-line :class:`ExportError` when the exporter fails."""
    dims = {0: "batch", 2: "height", 3: "width"}
    dynamic_axes = {"image": dims, "logits": dims} if dynamic else None
    example = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad(), _native_output_silenced():
            warnings.simplefilter("ignore")  # TracerWarnings about shape checks are expected
            torch.onnx.export(
                model,
                (example,),
                buffer,
                input_names=["image"],
                output_names=["logits"],
                opset_version=opset,
                dynamic_axes=dynamic_axes,
                dynamo=False,
            )
    except Exception as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        first = first.split(" Please feel free to request support")[0]
        hint = ""
        if "adaptive_avg_pool2d" in first:
            hint = (
                "; for ppm, pick --size so that H and W divided by the output stride are "
                "multiples of every pooling bin (e.g. 480 for bins 1 2 3 6 at stride 8)"
            )
        raise ExportError(f"ONNX export failed ({type(error).__name__}: {first}){hint}") from None
    return buffer.getvalue()


def _verify_onnx(
    model: nn.Module, session: Any, size: tuple[int, int], dynamic: bool, tolerance: float
) -> float:
    """The largest ``|onnxruntime - eager|`` at ``size`` (and, when ``dynamic``, at another batch
    and size); raises :class:`ExportError` beyond ``tolerance``."""
    diff = _compare(
        model,
        lambda x: session.run(None, {"image": x.numpy()})[0],
        _inputs(size, dynamic, dynamic),
        "ONNX graph",
    )
    if dynamic and not diff <= tolerance:
        raise ExportError(
            f"with dynamic height and width the ONNX graph differs from the model by {diff:.3g} "
            "at a second size: this model's graph depends on the input size; "
            "export without --dynamic at the size you need"
        )
    _check_tolerance(diff, tolerance, "ONNX graph")
    return diff


def export_torchscript(
    model: nn.Module,
    path: str | Path,
    *,
    size: tuple[int, int] = (DEFAULT_SIZE, DEFAULT_SIZE),
    metadata: Mapping[str, str] | None = None,
    tolerance: float = TOLERANCE,
) -> ExportResult:
    """Save ``model`` as TorchScript (scripted, else traced at ``size``) and verify the saved file.

    ``metadata`` is stored as the JSON extra file ``pdn.json``. Raises ExportError as
    :func:`export_onnx` does.
    """
    path = Path(path)
    model = model.cpu().eval()
    notes = []
    try:
        with _jit_quiet():
            module = torch.jit.script(model)
        method, axes = "script", ["batch", "height", "width"]
        inputs = _inputs(size, True, True)
    except Exception as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        notes.append(
            f"torch.jit.script failed ({first}); traced at {size[0]}x{size[1]} instead, "
            "so the file is valid for that size"
        )
        example = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            module = torch.jit.trace(model, example)
        method, axes = "trace", ["batch"]
        inputs = _inputs(size, False, True)
    extra = {METADATA_FILE: json.dumps(dict(metadata or {}))}
    with _staged(path) as tmp, _jit_quiet():
        torch.jit.save(module, str(tmp), _extra_files=extra)
        loaded = torch.jit.load(str(tmp), map_location="cpu")
        with torch.no_grad():
            diff = _compare(model, loaded, inputs, "TorchScript module")
        _check_tolerance(diff, tolerance, "TorchScript module")
    return ExportResult(path, "torchscript", method, size, axes, diff, notes)


def default_size(config: Mapping[str, Any] | None) -> tuple[int, int]:
    """The export size a checkpoint suggests: its eval crop, else its training crop, else 512."""
    config = config or {}
    crop = (config.get("eval") or {}).get("crop_size") or (config.get("data") or {}).get(
        "crop_size"
    )
    return (int(crop), int(crop)) if crop else (DEFAULT_SIZE, DEFAULT_SIZE)


def check_output(out: Path, checkpoint: Path, *, overwrite: bool = False) -> None:
    """Refuse an ``out`` that is the checkpoint itself or a folder, or an existing file that is
    not a pdn export (unless ``overwrite``): one-line :class:`ExportError`, nothing written."""
    if out.exists() and checkpoint.exists() and out.resolve() == checkpoint.resolve():
        raise ExportError(f"--out {out} is the checkpoint being exported; choose another file")
    if out.is_dir():
        raise ExportError(f"--out {out} is a folder; give the file to write")
    if out.exists() and not overwrite:
        try:
            ours = bool(read_metadata(out).get("pdn.classes"))
        except Exception:  # anything unreadable as a pdn export is someone else's file
            ours = False
        if not ours:
            raise ExportError(
                f"--out {out} exists and is not a pdn export; nothing written (pass --overwrite "
                "to replace it)"
            )


def export_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    *,
    format: str = "onnx",
    size: tuple[int, int] | None = None,
    opset: int = DEFAULT_OPSET,
    dynamic: bool = False,
    tolerance: float = TOLERANCE,
    overwrite: bool = False,
) -> ExportResult:
    """Export the model of a ``pdn train`` checkpoint with its classes, palette and normalisation.

    Args:
        checkpoint: the ``.pt`` file.
        out: the file to write.
        format: ``"onnx"`` or ``"torchscript"``.
        size: ``(H, W)`` of the example input; default from the checkpoint's config (see
            :func:`default_size`).
        opset, dynamic: ONNX only (see :func:`export_onnx`).
        tolerance: largest accepted difference from the eager model.
        overwrite: replace an existing ``out`` that is not a pdn export (never the checkpoint).
    """
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r} (choose onnx or torchscript)")
    check_output(Path(out), Path(checkpoint), overwrite=overwrite)
    ckpt = load_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt)
    height, width = (int(v) for v in size) if size else default_size(ckpt.get("config"))
    if min(height, width) < MIN_INPUT_SIZE:
        raise ExportError(
            f"export size must be at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE}, got {height}x{width}"
        )
    metadata = model_metadata(
        model,
        classes=ckpt["classes"],
        palette=ckpt["palette"],
        normalization=Normalization.from_dict(ckpt["normalization"]),
    )
    if format == "onnx":
        return export_onnx(
            model,
            out,
            size=(height, width),
            opset=opset,
            dynamic=dynamic,
            metadata=metadata,
            tolerance=tolerance,
        )
    return export_torchscript(
        model, out, size=(height, width), metadata=metadata, tolerance=tolerance
    )
