"""A new user's round trip through the command line, on their own classes in the folder layout:
``pdn train`` -> ``pdn eval`` -> ``pdn predict`` -> ``pdn export`` (checked with onnxruntime)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pdn.cli.main import main

CLASSES = ["ground", "leaf", "flower"]


@pytest.fixture
def folder_dataset(tmp_path):
    """``images/{train,val}/*.png``, ``masks/{train,val}/*.png``, ``classes.txt``: 40x48 images of
    random rectangles, the mask holding the rectangle's class (255 on a thin border)."""
    root = tmp_path / "mydata"
    rng = np.random.default_rng(0)
    colours = {1: (40, 160, 40), 2: (220, 60, 160)}
    for split, count in (("train", 6), ("val", 3)):
        (root / "images" / split).mkdir(parents=True)
        (root / "masks" / split).mkdir(parents=True)
        for i in range(count):
            image = rng.integers(0, 60, size=(40, 48, 3), dtype=np.uint8)
            mask = np.zeros((40, 48), dtype=np.uint8)
            for cls in (1, 2):
                top, left = rng.integers(0, 24), rng.integers(0, 30)
                image[top : top + 14, left : left + 16] = colours[cls]
                mask[top : top + 14, left : left + 16] = cls
            mask[0, :] = 255
            Image.fromarray(image).save(root / "images" / split / f"img{i}.png")
            Image.fromarray(mask).save(root / "masks" / split / f"img{i}.png")
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    return root


def test_train_eval_predict_export_on_my_own_folder(folder_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    args = [
        "train",
        "person_part",  # the folder-layout config, pointed at this data
        f"data.root={folder_dataset}",
        "model.backbone=tiny",
        "model.channels=16",
        "data.crop_size=32",
        "data.num_workers=0",
        "train.batch_size=2",
        "train.iters=3",
        "train.eval_interval=0",
        "train.device=cpu",
        "--out",
        str(run),
    ]
    assert main(args) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert list(metrics["per_class"]) == CLASSES
    capsys.readouterr()

    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(run / "last.pt"),
                "--out",
                str(tmp_path / "eval"),
                "--quiet",
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    # the same val images, ignore honoured, and the same scores as training's final evaluation
    assert {key: report[key] for key in metrics} == metrics
    assert (tmp_path / "eval" / "confusion.npy").is_file()

    photos = folder_dataset / "images" / "val"
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(run / "best.pt"),
                "--out",
                str(tmp_path / "pred"),
                "--quiet",
                str(photos),
            ]
        )
        == 0
    )
    label = Image.open(tmp_path / "pred" / "img0.png")
    assert label.mode == "P" and label.size == (48, 40)
    assert set(np.unique(np.asarray(label))) <= {0, 1, 2}

    onnx_file = tmp_path / "model.onnx"
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(run / "last.pt"),
                "--format",
                "onnx",
                "--out",
                str(onnx_file),
                "--size",
                "40",
                "48",
            ]
        )
        == 0
    )
    import onnxruntime
    import torch

    from pdn.engine.checkpoint import model_from_checkpoint

    model = model_from_checkpoint(run / "last.pt")
    x = torch.rand(1, 3, 40, 48)
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(logits, model(x).numpy(), atol=1e-3)
