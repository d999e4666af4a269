"""``pdn export``: ONNX (checked with onnxruntime) and TorchScript give the model's own logits, and
carry the classes, palette and normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import pdn
from pdn.cli.main import main
from pdn.engine import checkpoint as ck
from pdn.engine.export import ExportError, export_checkpoint, read_metadata, size_specific

ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.*:DeprecationWarning")

CLASSES = ["background", "road", "car"]
PALETTE = [[0, 0, 0], [128, 64, 128], [0, 0, 142]]
VARIANTS = {
    "pdn_sweep": ("pdn", {}),
    "pdn_layerwise": ("pdn", {"mode": "layerwise"}),
    "aspp": ("aspp", {}),
}


def _model(arch: str, options: dict) -> nn.Module:
    torch.manual_seed(0)
    model = pdn.build_model(arch, len(CLASSES), backbone="tiny", channels=16, **options)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def saved(request, tmp_path_factory):
    arch, options = VARIANTS[request.param]
    model = _model(arch, options)
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
    checkpoint, model = saved
    out = tmp_path / "dynamic.onnx"
    result = export_checkpoint(checkpoint, out, format="onnx", size=(64, 48), dynamic=True)
    fixed = size_specific(model) is not None
    assert result.dynamic_axes == (["batch"] if fixed else ["batch", "height", "width"])
    assert bool(result.notes) == fixed
    shape = (3, 3, 64, 48) if fixed else (2, 3, 40, 72)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(_onnx_logits(out, x), expected, atol=1e-4, rtol=0)


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


def test_cli_export_prints_the_difference(tmp_path, capsys):
    model = _model("fcn", {})
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


def test_export_errors_are_one_line(tmp_path, capsys):
    argv = ["export", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "x.onnx")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pdn export: error:") and "not found" in err and "\n" not in err
    model = _model("ppm", {})
    checkpoint = ck.save_checkpoint(
        tmp_path / "ppm.pt", ck.make_checkpoint(model, classes=CLASSES, palette=PALETTE)
    )
    with pytest.raises(ExportError, match="ppm") as error:  # bins 1 2 3 6 do not divide 7x6
        export_checkpoint(checkpoint, tmp_path / "ppm.onnx", size=(56, 48))
    assert "\n" not in str(error.value) and not (tmp_path / "ppm.onnx").exists()
    with pytest.raises(ExportError, match="32x32"):
        export_checkpoint(checkpoint, tmp_path / "ppm.onnx", size=(16, 64))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ppm.pt"]  # no temporary files left


def test_a_graph_beyond_tolerance_is_refused(tmp_path):
    model = _model("fcn", {})
    checkpoint = ck.save_checkpoint(
        tmp_path / "fcn.pt", ck.make_checkpoint(model, classes=CLASSES, palette=PALETTE)
    )
    with pytest.raises(ExportError, match="differs from the eager model"):
        export_checkpoint(checkpoint, tmp_path / "m.onnx", size=(32, 32), tolerance=-1.0)
    assert not (tmp_path / "m.onnx").exists()
