"""``pdn export``: ONNX (checked with onnxruntime) and TorchScript give the model's own logits, and
carry the classes, palette and normalisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import pdn
from pdn.cli.main import main
from pdn.engine import checkpoint as ck
from pdn.engine.export import (
    ExportError,
    _compare,
    export_checkpoint,
    read_metadata,
    size_specific,
)
from pdn.errors import CheckpointError

ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.*:DeprecationWarning")

CLASSES = ["background", "road", "car"]
PALETTE = [[0, 0, 0], [128, 64, 128], [0, 0, 142]]
VARIANTS = {
    "pdn_sweep": ("pdn", {}),
    "pdn_layerwise": ("pdn", {"mode": "layerwise"}),
    "pdn_dilated": ("pdn", {"recurrent_dilations": [2]}),
    "pdn_gate_norm": ("pdn", {"gate_norm": True}),
    "aspp": ("aspp", {}),
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def saved(request, tmp_path_factory, tiny_model):
    arch, options = VARIANTS[request.param]
    model = tiny_model(arch, **options)
    payload = ck.make_checkpoint(model, classes=CLASSES, palette=PALETTE, iteration=5)
    path = ck.save_checkpoint(tmp_path_factory.mktemp(request.param) / "model.pt", payload)
    return path, model


def _onnx_logits(path, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    return session.run(["logits"], {"image": x.numpy()})[0]


def test_onnx_round_trip_matches_the_model(saved, tmp_path):
    checkpoint, model = saved
    out = tmp_path / "model.onnx"
    result = export_checkpoint(checkpoint, out, format="onnx", size=(64, 48))
    assert out.is_file() and result.max_abs_diff < 1e-4 and result.method == "trace"
    x = torch.randn(1, 3, 64, 48, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(_onnx_logits(out, x), expected, atol=1e-4, rtol=0)
    meta = read_metadata(out)
    assert meta["pdn.classes"] == CLASSES and meta["pdn.palette"] == PALETTE
    assert meta["pdn.normalization"] == model.normalization.to_dict()
    assert meta["pdn.model_config"] == model.model_config


def test_onnx_dynamic_axes(saved, tmp_path):
    """Every exported head, the sweep's loop over slices included, takes other batches and sizes
    (square and not, odd feature sizes) than the one it was traced at."""
    checkpoint, model = saved
    out = tmp_path / "dynamic.onnx"
    result = export_checkpoint(checkpoint, out, format="onnx", size=(64, 48), dynamic=True)
    assert result.dynamic_axes == ["batch", "height", "width"] and not result.notes
    for shape in [(2, 3, 40, 72), (1, 3, 96, 96), (3, 3, 33, 57)]:
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(4))
        with torch.no_grad():
            expected = model(x).numpy()
        np.testing.assert_allclose(_onnx_logits(out, x), expected, atol=1e-4, rtol=0)


def test_onnx_without_dynamic_fits_the_export_size_only(tmp_path, tiny_model):
    model = tiny_model("pdn")
    checkpoint = ck.save_checkpoint(
        tmp_path / "pdn.pt", ck.make_checkpoint(model, classes=CLASSES, palette=PALETTE)
    )
    out = tmp_path / "fixed.onnx"
    export_checkpoint(checkpoint, out, format="onnx", size=(64, 48))
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        _onnx_logits(out, torch.randn(1, 3, 40, 72))


def test_dynamic_onnx_is_refused_for_ppm_with_the_reason(tmp_path, tiny_model):
    model = tiny_model("ppm")
    assert size_specific(model) is not None
    checkpoint = ck.save_checkpoint(
        tmp_path / "ppm.pt", ck.make_checkpoint(model, classes=CLASSES, palette=PALETTE)
    )
    out = tmp_path / "ppm.onnx"
    with pytest.raises(ExportError, match="--dynamic is not possible.*pooling") as error:
        export_checkpoint(checkpoint, out, format="onnx", size=(48, 48), dynamic=True)
    assert "\n" not in str(error.value) and not out.exists()
    result = export_checkpoint(checkpoint, out, format="onnx", size=(48, 48))
    assert result.notes and "48x48 inputs only" in result.notes[0]


def test_torchscript_round_trip_is_size_generic(saved, tmp_path):
    checkpoint, model = saved
    out = tmp_path / "model.torchscript"
    result = export_checkpoint(checkpoint, out, format="torchscript", size=(64, 48))
    assert result.method == "script" and result.max_abs_diff < 1e-4
    loaded = torch.jit.load(str(out))
    for shape in [(1, 3, 64, 48), (2, 3, 37, 53)]:
        x = torch.randn(*shape)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), model(x), atol=1e-4, rtol=0)
    assert read_metadata(out)["pdn.classes"] == CLASSES


def test_cli_export_prints_the_difference(tmp_path, capsys, tiny_model):
    model = tiny_model("fcn")
    payload = ck.make_checkpoint(model, classes=CLASSES, palette=PALETTE)
    checkpoint = ck.save_checkpoint(tmp_path / "fcn.pt", payload)
    out = tmp_path / "fcn.onnx"
    argv = ["export", "--checkpoint", str(checkpoint), "--out", str(out), "--size", "40", "56"]
    assert main([*argv, "--opset", "17"]) == 0
    printed = capsys.readouterr().out
    assert "max abs diff" in printed and str(out) in printed
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        np.testing.assert_allclose(_onnx_logits(out, x), model(x).numpy(), atol=1e-4, rtol=0)


def test_export_errors_are_one_line(tmp_path, capsys, tiny_model):
    argv = ["export", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "x.onnx")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pdn export: error:") and "not found" in err and "\n" not in err
    model = tiny_model("ppm")
    checkpoint = ck.save_checkpoint(
        tmp_path / "ppm.pt", ck.make_checkpoint(model, classes=CLASSES, palette=PALETTE)
    )
    with pytest.raises(ExportError, match="ppm") as error:  # bins 1 2 3 6 do not divide 7x6
        export_checkpoint(checkpoint, tmp_path / "ppm.onnx", size=(56, 48))
    assert "\n" not in str(error.value) and not (tmp_path / "ppm.onnx").exists()
    with pytest.raises(ExportError, match="32x32"):
        export_checkpoint(checkpoint, tmp_path / "ppm.onnx", size=(16, 64))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ppm.pt"]  # no temporary files left


def test_a_graph_beyond_tolerance_is_refused(tmp_path, tiny_model):
    model = tiny_model("fcn")
    checkpoint = ck.save_checkpoint(
        tmp_path / "fcn.pt", ck.make_checkpoint(model, classes=CLASSES, palette=PALETTE)
    )
    with pytest.raises(ExportError, match="differs from the eager model"):
        export_checkpoint(checkpoint, tmp_path / "m.onnx", size=(32, 32), tolerance=-1.0)
    assert not (tmp_path / "m.onnx").exists()


def test_export_never_replaces_the_checkpoint_or_a_foreign_file(tmp_path, capsys, tiny_model):
    model = tiny_model("fcn")
    checkpoint = ck.save_checkpoint(
        tmp_path / "best.pt", ck.make_checkpoint(model, classes=CLASSES, palette=PALETTE)
    )
    saved = checkpoint.read_bytes()
    argv = ["export", "--checkpoint", str(checkpoint), "--size", "32", "32"]
    for extra in ([], ["--overwrite"]):
        assert main([*argv, "--out", str(checkpoint), *extra]) == 2
        assert "is the checkpoint being exported" in capsys.readouterr().err
    assert checkpoint.read_bytes() == saved
    foreign = tmp_path / "notes.onnx"
    foreign.write_text("mine")
    assert main([*argv, "--out", str(foreign)]) == 2
    assert "exists and is not a pdn export" in capsys.readouterr().err
    assert foreign.read_text() == "mine"
    assert main([*argv, "--out", str(foreign), "--overwrite"]) == 0
    assert foreign.stat().st_mode & 0o777 == 0o666 & ~ck.current_umask()  # not mkstemp's 0600
    assert main([*argv, "--out", str(foreign)]) == 0  # its own earlier export: replaced
    capsys.readouterr()


def test_non_finite_weights_or_outputs_fail_verification(tmp_path, capsys, tiny_model):
    model = tiny_model("fcn")
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    checkpoint = ck.save_checkpoint(
        tmp_path / "nan.pt", ck.make_checkpoint(model, classes=CLASSES, palette=PALETTE)
    )
    with pytest.raises(CheckpointError, match="not finite"):
        export_checkpoint(checkpoint, tmp_path / "m.onnx", size=(32, 32))
    assert not (tmp_path / "m.onnx").exists()
    five = pdn.build_model("fcn", 5, backbone="tiny", channels=16).eval()
    with torch.no_grad():
        next(five.parameters()).view(-1)[0] = float("inf")
    names = [f"c{k}" for k in range(5)]
    five_classes = ck.save_checkpoint(
        tmp_path / "inf.pt", ck.make_checkpoint(five, classes=names, palette=[(0, 0, 0)] * 5)
    )
    for command in (
        ["eval", "--checkpoint", str(five_classes), "data.name=context", "data.options={size: 32}"],
        ["predict", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o"), str(tmp_path)],
    ):
        assert main(command) == 2
        assert "not finite" in capsys.readouterr().err
    # a NaN difference is a failure, not "max abs diff 0"
    healthy = tiny_model("fcn")
    x = [torch.randn(1, 3, 32, 32)]
    assert math.isnan(_compare(healthy, lambda t: torch.full((1, 3, 32, 32), float("nan")), x, "g"))
