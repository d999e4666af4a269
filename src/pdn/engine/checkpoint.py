"""The checkpoint file: one dict of plain data, written atomically, read with ``weights_only=True``.

A checkpoint carries everything predict and export need (weights, model config, class names,
palette, input normalisation, the resolved training config) and, for ``pdn train --resume``, the
optimizer, scheduler, AMP scaler and RNG states. Layout (``FORMAT = "pdn-checkpoint/1"``)::

    {"format": "pdn-checkpoint/1",
     "model": state_dict,                  # tensors on the CPU
     "model_config": {...},                # build_model(**model_config) rebuilds the architecture
     "classes": [str, ...], "palette": [[r, g, b], ...],
     "normalization": {"mean": [3 floats], "std": [3 floats]},
     "config": {...} or None,              # resolved training config, plain containers
     "iteration": int,                     # optimizer steps taken
     "metrics": {...} or None,             # last validation result (SegmentationResult.to_dict())
     # only in resumable checkpoints:
     "optimizer": ..., "scheduler": ..., "scaler": ..., "rng": {...}}

Only tensors, dicts, lists, tuples, str, int, float, bool and None are stored, so
``torch.load(path, weights_only=True)`` reads it: a checkpoint file is data, not code.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from ..models.weights import load_data_file

FORMAT = "pdn-checkpoint/1"

# The keys predict / export rely on; resume keys are optional.
REQUIRED_KEYS = ("model", "model_config", "classes", "palette", "normalization", "iteration")
# model_config keys that decide whether weights fit, checked first for a readable message.
_IDENTITY_KEYS = ("arch", "backbone", "num_classes")
# model_config keys added after checkpoints were first written, with the value a checkpoint that
# lacks one was built with (the image skip became PDN's default on 2026-12-07).
LEGACY_MODEL_DEFAULTS: dict[str, Any] = {"image_skip": False}


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain model inside a ``DistributedDataParallel`` / ``DataParallel`` wrapper (or itself)."""
    return (
        model.module
        if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel)
        else model
    )


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` with every tensor detached and copied to the CPU (exact values)."""
    return {
        key: value.detach().to("cpu", copy=True)
        for key, value in unwrap_model(model).state_dict().items()
    }


def make_checkpoint(
    model: nn.Module,
    *,
    classes: Sequence[str],
    palette: Sequence[Sequence[int]],
    config: Mapping[str, Any] | None = None,
    iteration: int = 0,
    metrics: Mapping[str, Any] | None = None,
    **resume_state: Any,
) -> dict[str, Any]:
    """Assemble a checkpoint payload from a model built by ``pdn.models.build_model``.

    Args:
        model: the model (a DDP wrapper is unwrapped); it must have ``model_config`` and
            ``normalization``.
        classes: ``num_classes`` class names.
        palette: ``num_classes`` RGB triples (0..255).
        config: the resolved training config as plain containers, or None.
        iteration: optimizer steps taken so far.
        metrics: the latest validation result (plain dict) or None.
        resume_state: optional ``optimizer``, ``scheduler``, ``scaler``, ``rng`` state dicts.
    """
    model = unwrap_model(model)
    model_config = dict(model.model_config)
    num_classes = model_config.get("num_classes")
    if num_classes is not None and len(classes) != num_classes:
        raise CheckpointError(f"{len(classes)} class names for a model with {num_classes} classes")
    payload: dict[str, Any] = {
        "format": FORMAT,
        "model": cpu_state_dict(model),
        "model_config": model_config,
        "classes": [str(name) for name in classes],
        "palette": [[int(c) for c in colour] for colour in palette],
        "normalization": model.normalization.to_dict(),
        "config": dict(config) if config is not None else None,
        "iteration": int(iteration),
        "metrics": dict(metrics) if metrics is not None else None,
    }
    unknown = set(resume_state) - {"optimizer", "scheduler", "scaler", "rng"}
    if unknown:
        raise TypeError(f"make_checkpoint: unexpected keys {sorted(unknown)}")
    payload.update(resume_state)
    return payload


def save_checkpoint(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically and return the path.

    The data go to a temporary file in the same directory, which is flushed, fsynced and then
    renamed over ``path`` with ``os.replace``: a reader (or a crash) sees either the old file or the
    new one, never a partial file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp_name, 0o666 & ~current_umask())  # mkstemp makes 0600; give the usual file mode
        with os.fdopen(fd, "wb") as handle:
            torch.save(dict(payload), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(path.parent)
    return path


def current_umask() -> int:
    """The process umask, read without changing it."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Raises:
        CheckpointError: one line naming the file, when it is missing, unreadable or corrupt, or
            not a pdn checkpoint of this format.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    payload = load_data_file(path, "checkpoint", map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: not a {FORMAT} file (format: {found!r})")
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    problem = metadata_problem(payload)
    if problem:
        raise CheckpointError(f"{path}: checkpoint metadata is inconsistent: {problem}")
    return payload


def metadata_problem(payload: Mapping[str, Any]) -> str | None:
    """What is wrong with a checkpoint's metadata (class names against the classifier, palette,
    normalisation), naming the field; None when it is consistent."""
    config, classes, palette = payload["model_config"], payload["classes"], payload["palette"]
    if not isinstance(config, Mapping) or not isinstance(config.get("num_classes"), int):
        return "model_config has no integer num_classes"
    count = config["num_classes"]
    if not isinstance(classes, list | tuple) or not all(isinstance(c, str) for c in classes):
        return "classes must be a list of names"
    if len(classes) != count:
        return f"classes names {len(classes)} classes, the classifier has {count}"
    if not isinstance(palette, list | tuple) or len(palette) != count:
        return f"palette must hold one colour per class ({count})"
    for index, colour in enumerate(palette):
        if not (
            isinstance(colour, list | tuple)
            and len(colour) == 3
            and all(isinstance(v, int) and 0 <= v <= 255 for v in colour)
        ):
            return f"palette[{index}] must be 3 integers in 0..255, got {colour!r}"
    normalization = payload["normalization"]
    if not isinstance(normalization, Mapping):
        return "normalization must be a mapping with mean and std"
    mean, std = normalization.get("mean"), normalization.get("std")
    for name, values in (("mean", mean), ("std", std)):
        if not isinstance(values, list | tuple) or len(values) != 3:
            return f"normalization.{name} must be 3 numbers, got {values!r}"
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            return f"normalization.{name} must be finite numbers, got {list(values)}"
    if not all(v > 0 for v in std):
        return f"normalization.std must be positive, got {list(std)}"
    return None


def saved_model_config(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    """The checkpoint's ``build_model`` arguments, with the keys older checkpoints lack filled in
    with the values those checkpoints were built with (:data:`LEGACY_MODEL_DEFAULTS`)."""
    return {**LEGACY_MODEL_DEFAULTS, **dict(ckpt.get("model_config") or {})}


def check_compatible(ckpt: Mapping[str, Any], model_config: Mapping[str, Any]) -> None:
    """Refuse a checkpoint whose weights do not belong to a model built from ``model_config``.

    Architecture, backbone and class count are compared first, so the message names the real
    difference; then every other architecture option (``backbone_weights`` is ignored: it only
    says where the initial weights came from).

    Raises:
        CheckpointError: one line, e.g. ``checkpoint is for arch 'fcn', the config asks for 'pdn'``.
    """
    saved = saved_model_config(ckpt)
    wanted = {**LEGACY_MODEL_DEFAULTS, **model_config}
    for key in _IDENTITY_KEYS:
        if key in saved and key in wanted and saved[key] != wanted[key]:
            what = "class count" if key == "num_classes" else key
            raise CheckpointError(
                f"checkpoint is for {what} {saved[key]!r}, the config asks for {wanted[key]!r}"
            )
    differing = [
        f"{key}: checkpoint {_plain(saved.get(key))!r} vs config {_plain(wanted.get(key))!r}"
        for key in sorted(set(saved) | set(wanted))
        if key not in _IDENTITY_KEYS
        and key != "backbone_weights"
        and _plain(saved.get(key)) != _plain(wanted.get(key))
    ]
    if differing:
        raise CheckpointError(f"checkpoint was made for another model ({'; '.join(differing)})")


def _plain(value: Any) -> Any:
    """Tuples and lists compare equal after a YAML / JSON round trip."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _finite(value: torch.Tensor) -> bool:
    return not value.is_floating_point() or bool(torch.isfinite(value).all())


def model_from_checkpoint(
    ckpt: Mapping[str, Any] | str | Path, device: str | torch.device | None = None
) -> nn.Module:
    """Rebuild the model a checkpoint was saved from and load its weights (strict), in eval mode.

    Args:
        ckpt: a payload from :func:`load_checkpoint`, or a path to one.
        device: where to put the model (default CPU).
    """
    from ..models import build_model

    if not isinstance(ckpt, Mapping):
        ckpt = load_checkpoint(ckpt)
    model_config = saved_model_config(ckpt)
    model_config["backbone_weights"] = None  # the checkpoint has the weights; never fetch any
    model = build_model(**model_config)
    try:
        model.load_state_dict(ckpt["model"], strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint weights do not fit its model_config ({first})") from None
    broken = [name for name, value in model.state_dict().items() if not _finite(value)]
    if broken:
        more = f" and {len(broken) - 1} more" if len(broken) > 1 else ""
        raise CheckpointError(
            f"checkpoint weights are not finite (NaN or inf in {broken[0]}{more}); "
            "this model cannot give a result"
        )
    model.eval()
    return model.to(device) if device is not None else model
