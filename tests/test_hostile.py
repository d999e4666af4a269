"""Hostile inputs a later change must keep handling: each gives one ``pdn ...: error:`` line (exit
2), never a traceback, and changes nothing of the user's. The cases that need a trained run or a
second process live beside their feature (tests/test_train.py, test_train_processes.py,
test_cli_eval_predict.py, test_export.py); this module holds the rest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import pdn
from layouts import random_image, write_folder
from pdn.cli.main import main
from pdn.engine import checkpoint as ck

CLASSES = ["background", "a", "b"]
PALETTE = [(0, 0, 0), (220, 40, 40), (40, 220, 40)]


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"pdn {command}: error: "), err
    assert "\n" not in err and "Traceback" not in err, err
    return err


def _checkpoint(tmp_path, **changes):
    model = pdn.build_model("fcn", 3, backbone="tiny", channels=16)
    payload = ck.make_checkpoint(model, classes=CLASSES, palette=PALETTE)
    payload.update(changes)
    path = tmp_path / "tampered.pt"
    torch.save(payload, path)  # written as an attacker would, not through save_checkpoint
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"palette": [(0, 0, 0), (300, 0, 0), (0, 0, 0)]},
            "palette[1] must be 3 integers in 0..255",
        ),
        ({"palette": [(0, 0, 0)]}, "palette must hold one colour per class (3)"),
        ({"classes": ["only", "two"]}, "classes names 2 classes, the classifier has 3"),
        (
            {"normalization": {"mean": [0, 0, 0], "std": [1, 0, 1]}},
            "normalization.std must be positive",
        ),
        (
            {"normalization": {"mean": [0, 0], "std": [1, 1, 1]}},
            "normalization.mean must be 3 numbers",
        ),
    ],
)
def test_inconsistent_checkpoint_metadata_names_the_field(tmp_path, capsys, change, message):
    path = _checkpoint(tmp_path, **change)
    assert (
        main(["predict", "--checkpoint", str(path), "--out", str(tmp_path / "o"), str(path)]) == 2
    )
    err = _one_line_error(capsys, "predict")
    assert "checkpoint metadata is inconsistent" in err and message in err
    assert not (tmp_path / "o").exists()


def test_a_yaml_interpolation_that_does_not_resolve(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("data: {name: context}\ntrain:\n  iters: ${nope}\n")
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    err = _one_line_error(capsys, "train")
    assert "bad.yaml: an interpolation does not resolve" in err and "nope" in err
    assert main(["config", "demo", "train.iters=${nope}"]) == 2
    _one_line_error(capsys, "config")


def test_a_class_names_file_that_is_not_utf8(tmp_path, capsys):
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.txt").write_bytes(b"\xff\xfe b\x00a\x00d\x00\n")
    assert main(["data", "check", "--dataset", "folder", "--root", str(root)]) == 2
    err = _one_line_error(capsys, "data")
    assert "classes.txt: class-names file is not UTF-8 text" in err


def test_an_os_error_names_the_path(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    run = tmp_path / "run"
    (run).mkdir()
    (run / "log.jsonl").write_text('{"iter": 1, "kind": "train", "loss_main": 1.0}\n')
    assert main(["plot", str(run), "--out", str(blocker / "curves.png")]) == 2
    err = _one_line_error(capsys, "plot")
    assert str(blocker) in err and blocker.read_text() == "x"


def test_an_empty_config_file_is_refused(tmp_path, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert main(["train", str(empty), "--out", str(tmp_path / "run")]) == 2
    assert "the config is empty" in _one_line_error(capsys, "train")
    assert not (tmp_path / "run" / "last.pt").exists()


def _folder_dataset(root: Path, sizes: dict[str, list[tuple[int, int]]]) -> dict:
    rng = np.random.default_rng(0)
    written = {}
    for split, shapes in sizes.items():
        samples = [
            (f"{split}{k}", random_image(h, w, k), rng.integers(0, 3, (h, w), dtype=np.uint8))
            for k, (h, w) in enumerate(shapes)
        ]
        written[split] = write_folder(root, split, samples)
    return written


TRAIN = ["model.arch=fcn", "model.backbone=tiny", "data.name=folder", "data.options={}"]
TRAIN += ["data.crop_size=32", "train.iters=2", "train.batch_size=2", "data.num_workers=0"]


def test_train_scans_every_file_before_it_starts(tmp_path, capsys):
    """A bad file anywhere in the train split, or a val image below the 32 px minimum, stops
    pdn train before its first step, naming the file; the run directory gets no checkpoint."""
    files = _folder_dataset(
        tmp_path / "data", {"train": [(40, 40)] * 4, "val": [(40, 40), (24, 60)]}
    )
    base = ["train", *TRAIN, f"data.root={tmp_path / 'data'}"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 2
    err = _one_line_error(capsys, "train")
    assert "split 'val'" in err and "24" in err and "smaller than the 32x32" in err
    assert str(files["val"][1][0]) in err and not (tmp_path / "a" / "last.pt").exists()

    files["train"][2][1].write_bytes(b"broken mask")
    assert main([*base, "data.val_split=null", "--out", str(tmp_path / "b")]) == 2
    err = _one_line_error(capsys, "train")
    assert "split 'train'" in err and str(files["train"][2][1]) in err


def test_export_out_that_is_a_folder(tmp_path, capsys):
    path = _checkpoint(tmp_path)
    folder = tmp_path / "exports"
    folder.mkdir()
    assert (
        main(["export", "--checkpoint", str(path), "--out", str(folder), "--size", "32", "32"]) == 2
    )
    assert "is a folder" in _one_line_error(capsys, "export")
    assert list(folder.iterdir()) == []


def test_predict_out_that_is_a_file(tmp_path, capsys):
    path = _checkpoint(tmp_path)
    image = tmp_path / "photo.png"
    from PIL import Image

    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(image)
    blocker = tmp_path / "labels"
    blocker.write_text("mine")
    assert (
        main(["predict", "--checkpoint", str(path), "--out", str(blocker), "--quiet", str(image)])
        == 2
    )
    assert f"--out {blocker} is a file" in _one_line_error(capsys, "predict")
    assert blocker.read_text() == "mine"


@pytest.mark.parametrize(
    "error, shown",
    [
        (
            PermissionError(13, "Permission denied", "/data/private/classes.txt"),
            "/data/private/classes.txt: Permission denied",
        ),
        (IsADirectoryError(21, "Is a directory", "/data/set"), "/data/set: Is a directory"),
        (MemoryError(), "out of memory"),
    ],
)
def test_os_and_memory_errors_anywhere_are_one_line(monkeypatch, capsys, error, shown):
    """What the machine refuses (permissions, a folder for a file, memory) surfaces as one line
    from the top-level handler, whichever command hits it (running as root, the tests cannot
    make a real unreadable file)."""
    import pdn.cli.catalog as catalog

    def refuse(_):
        raise error

    monkeypatch.setattr(catalog, "run_list", refuse)
    from pdn.cli.main import build_parser

    parser = build_parser()
    args = parser.parse_args(["list"])
    assert args.func is refuse
    assert main(["list"]) == 2
    assert shown in _one_line_error(capsys, "list")
