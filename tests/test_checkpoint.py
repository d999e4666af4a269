"""The checkpoint format: plain data readable with weights_only=True, atomic writes, clear refusals."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pdn.engine import checkpoint as ck
from pdn.errors import CheckpointError
from pdn.models.backbones import IMAGENET_NORMALIZATION


class _Model(nn.Module):
    """Stands in for a built model: weights, ``model_config`` and ``normalization``."""

    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(3, num_classes, 1)
        self.bn = nn.BatchNorm2d(num_classes)
        self.model_config = {
            "arch": "pdn",
            "num_classes": num_classes,
            "backbone": "tiny",
            "rates": (1, 2),
        }
        self.normalization = IMAGENET_NORMALIZATION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def _payload(**kw):
    model = _Model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.rand(2, 3, 4, 4)).sum().backward()
    opt.step()
    return ck.make_checkpoint(
        model,
        classes=["a", "b", "c"],
        palette=[(0, 0, 0), (255, 0, 0), (0, 255, 0)],
        config={"train": {"lr": 0.1}},
        iteration=7,
        optimizer=opt.state_dict(),
        rng={"torch": torch.get_rng_state()},
        **kw,
    )


def test_round_trip_is_plain_data(tmp_path):
    payload = _payload()
    path = ck.save_checkpoint(tmp_path / "last.pt", payload)
    raw = torch.load(path, weights_only=True)  # the contract: data, not code
    assert raw["format"] == ck.FORMAT
    loaded = ck.load_checkpoint(path)
    assert loaded["iteration"] == 7 and loaded["classes"] == ["a", "b", "c"]
    assert loaded["palette"][1] == [255, 0, 0]
    assert loaded["normalization"] == IMAGENET_NORMALIZATION.to_dict()
    for key, value in payload["model"].items():
        assert torch.equal(loaded["model"][key], value)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_class_names_must_match_model():
    with pytest.raises(CheckpointError, match="2 class names"):
        ck.make_checkpoint(_Model(3), classes=["a", "b"], palette=[(0, 0, 0)] * 2)


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    path = ck.save_checkpoint(tmp_path / "last.pt", _payload())
    before = path.read_bytes()

    def broken_save(obj, handle):
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        ck.save_checkpoint(path, _payload())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        ck.load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt") as info:
        ck.load_checkpoint(bad)
    assert "\n" not in str(info.value)
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a pdn-checkpoint/1"):
        ck.load_checkpoint(tmp_path / "other.pt")
    truncated = tmp_path / "trunc.pt"
    full = ck.save_checkpoint(tmp_path / "full.pt", _payload()).read_bytes()
    truncated.write_bytes(full[: len(full) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        ck.load_checkpoint(truncated)


def test_code_in_checkpoint_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": ck.FORMAT, "model": _Model()}, path)  # a pickled module, not data
    with pytest.raises(CheckpointError, match="plain data"):
        ck.load_checkpoint(path)


def test_check_compatible():
    payload = _payload()
    config = dict(payload["model_config"])
    ck.check_compatible(payload, {**config, "rates": [1, 2], "backbone_weights": "x.pth"})
    with pytest.raises(CheckpointError, match="arch 'pdn', the config asks for 'fcn'"):
        ck.check_compatible(payload, {**config, "arch": "fcn"})
    with pytest.raises(CheckpointError, match="class count 3, the config asks for 5"):
        ck.check_compatible(payload, {**config, "num_classes": 5})
    with pytest.raises(CheckpointError, match="backbone 'tiny'"):
        ck.check_compatible(payload, {**config, "backbone": "resnet50"})
    with pytest.raises(CheckpointError, match="rates"):
        ck.check_compatible(payload, {**config, "rates": [1, 2, 4]})
