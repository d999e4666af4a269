"""``pdn eval``, ``pdn predict`` and ``pdn bench`` through the command line, on a tiny checkpoint and
a tiny folder-layout dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import pdn
from layouts import random_image
from pdn.cli.main import main
from pdn.engine import checkpoint as ck
from pdn.engine.evaluate import resolve_config
from pdn.engine.predict import collect_images
from pdn.errors import ConfigError
from pdn.metrics import SegmentationMetric

CLASSES = ["background", "cell", "edge"]
PALETTE = [(0, 0, 0), (220, 40, 40), (40, 220, 40)]
SIZES = [(40, 56), (37, 45), (64, 33)]


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    """``folder`` layout: images/val/*.png, masks/val/*.png (values 0..2 and 255), classes.txt."""
    root = tmp_path_factory.mktemp("folder_data")
    rng = np.random.default_rng(0)
    for sub in ("images/val", "masks/val"):
        (root / sub).mkdir(parents=True)
    for index, (h, w) in enumerate(SIZES):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            root / "images" / "val" / f"s{index}.png"
        )
        mask = rng.integers(0, 3, (h, w), dtype=np.uint8)
        mask[:3] = 255  # an ignored band
        Image.fromarray(mask).save(root / "masks" / "val" / f"s{index}.png")
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, dataset_root, tiny_model):
    config = {
        "model": {"arch": "pdn", "backbone": "tiny", "channels": 16},
        "data": {
            "name": "folder",
            "root": str(dataset_root),
            "val_split": "val",
            "crop_size": 32,
            "num_workers": 0,
        },
    }
    payload = ck.make_checkpoint(tiny_model(), classes=CLASSES, palette=PALETTE, config=config)
    return ck.save_checkpoint(tmp_path_factory.mktemp("run") / "best.pt", payload)


def _expected_confusion(checkpoint, dataset_root, **options) -> np.ndarray:
    seg = pdn.Segmenter.from_checkpoint(checkpoint, device="cpu")
    metric = SegmentationMetric(len(CLASSES))
    for index in range(len(SIZES)):
        labels = seg.predict(dataset_root / "images" / "val" / f"s{index}.png", **options)
        mask = np.asarray(Image.open(dataset_root / "masks" / "val" / f"s{index}.png"))
        metric.update(torch.from_numpy(labels), torch.from_numpy(mask.astype(np.int64)))
    return metric.confusion.numpy()


def test_eval_writes_metrics_and_confusion(checkpoint, dataset_root, capsys):
    assert main(["eval", "--checkpoint", str(checkpoint), "--quiet"]) == 0
    out_dir = checkpoint.parent / "eval"
    printed = capsys.readouterr().out
    assert "mIoU" in printed and "cell" in printed and "metrics.json" in printed
    metrics = json.loads((out_dir / "metrics.json").read_text())
    for key in ("aAcc", "mAcc", "mIoU", "fwIoU"):
        assert 0.0 <= metrics[key] <= 1.0
    for name in CLASSES:
        iou = metrics["per_class"][name]["IoU"]
        assert iou is None or 0.0 <= iou <= 1.0
    confusion = np.load(out_dir / "confusion.npy")
    labelled = sum(
        int((np.asarray(Image.open(p)) != 255).sum())
        for p in sorted((dataset_root / "masks" / "val").iterdir())
    )
    assert confusion.shape == (3, 3) and confusion.dtype == np.int64
    assert confusion.sum() == labelled == metrics["num_pixels"]
    np.testing.assert_array_equal(confusion, _expected_confusion(checkpoint, dataset_root))
    assert metrics["dataset"]["images"] == 3 and metrics["inference"]["mode"] == "whole"
    with Image.open(out_dir / "confusion.png") as image:
        assert image.mode == "RGB" and min(image.size) > 100


def test_eval_sliding_window_flip_and_overrides(checkpoint, dataset_root, tmp_path, capsys):
    out = tmp_path / "report"
    argv = ["eval", "--checkpoint", str(checkpoint), "--out", str(out), "--quiet"]
    argv += ["--mode", "slide", "--crop", "32", "32", "--stride", "20", "20", "--flip"]
    argv += [f"data.root={dataset_root}", "data.num_workers=0"]
    assert main(argv) == 0
    assert "slide 32x32 stride 20x20, flip" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["inference"]["mode"] == "slide" and metrics["inference"]["flip"] is True
    expected = _expected_confusion(
        checkpoint, dataset_root, mode="slide", crop_size=32, stride=20, flip=True
    )
    np.testing.assert_array_equal(np.load(out / "confusion.npy"), expected)


def test_eval_errors_are_one_line(checkpoint, tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(tmp_path / "none.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pdn eval: error:") and "not found" in err and "\n" not in err
    assert main(["eval", "--checkpoint", str(checkpoint), "data.roots=/x"]) == 2
    err = capsys.readouterr().err.strip()
    assert "data.roots" in err and "data.root" in err and "\n" not in err
    missing = tmp_path / "nowhere"
    argv = ["eval", "--checkpoint", str(checkpoint), f"data.root={missing}"]
    assert main([*argv, "data.options.num_classes=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(missing) in err and "\n" not in err


def test_resolve_config_needs_data_without_stored_config():
    with pytest.raises(ConfigError, match="data.name"):
        resolve_config(None)
    config = resolve_config(None, ["data.name=folder", "data.root=/x"])
    assert config["data"]["root"] == "/x" and config["eval"]["mode"] == "whole"


def test_predict_writes_label_maps_overlays_and_legend(checkpoint, dataset_root, tmp_path, capsys):
    inputs = tmp_path / "photos"
    (inputs / "nested").mkdir(parents=True)
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (41, 53, 3), dtype=np.uint8)).save(inputs / "a.jpg")
    Image.fromarray(rng.integers(0, 256, (35, 47), dtype=np.uint8)).save(
        inputs / "nested" / "b.png"
    )
    single = dataset_root / "images" / "val" / "s0.png"
    out = tmp_path / "out"
    argv = ["predict", "--checkpoint", str(checkpoint), "--out", str(out), "--quiet"]
    assert main([*argv, str(inputs), str(single)]) == 0
    printed = capsys.readouterr().out
    assert "labelled 3 image(s)" in printed and "with a model trained on folder" in printed
    seg = pdn.Segmenter.from_checkpoint(checkpoint, device="cpu")
    for name, source in [
        ("a", inputs / "a.jpg"),
        ("nested/b", inputs / "nested" / "b.png"),
        ("s0", single),
    ]:
        with Image.open(source) as original, Image.open(out / f"{name}.png") as labels:
            assert labels.mode == "P" and labels.size == original.size
            palette = labels.getpalette()[: 3 * len(PALETTE)]
            assert palette == [c for colour in PALETTE for c in colour]
            np.testing.assert_array_equal(np.asarray(labels), seg.predict(source))
        with Image.open(out / f"{name}_overlay.png") as blended:
            assert blended.mode == "RGB" and blended.size == original.size
    with Image.open(out / "legend.png") as legend:
        assert legend.mode == "RGB"


def test_predict_reports_each_bad_input_and_continues(checkpoint, tmp_path, capsys):
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(good)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "out"
    argv = ["predict", "--checkpoint", str(checkpoint), "--out", str(out), "--quiet"]
    assert main([*argv, str(corrupt), str(tmp_path / "missing.jpg"), str(good)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3
    assert any("corrupt.png" in line for line in err[:2])
    assert any("missing.jpg" in line for line in err[:2]) and "2 input(s)" in err[2]
    assert (out / "good.png").is_file() and (out / "legend.png").is_file()
    assert not (out / "corrupt.png").exists()
    assert (
        main(["predict", "--checkpoint", str(tmp_path / "x.pt"), "--out", str(out), str(good)]) == 2
    )
    assert "checkpoint not found" in capsys.readouterr().err


def test_collect_images_disambiguates_names(tmp_path):
    for name in ("x.png", "x.jpg", "legend.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    found, problems = collect_images([tmp_path, tmp_path / "gone"])
    assert sorted(name for _, name in found) == ["legend_png", "x", "x_png"]
    assert len(problems) == 1 and "gone" in problems[0]


def test_collect_images_keeps_overlay_names_apart(tmp_path):
    """An input named a_overlay.png must not take the name of a.jpg's overlay, in either order."""
    for name in ("a.jpg", "a_overlay.png"):
        (tmp_path / name).write_bytes(b"")
    found, _ = collect_images([tmp_path])
    files = [f"{name}{suffix}" for _, name in found for suffix in ("", "_overlay")]
    assert len(files) == len(set(files)) == 4
    reverse, _ = collect_images([tmp_path / "a_overlay.png", tmp_path / "a.jpg"])
    files = [f"{name}{suffix}" for _, name in reverse for suffix in ("", "_overlay")]
    assert len(files) == len(set(files)) == 4


def _photos(folder, count=2):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    for k in range(count):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(
            folder / f"p{k}.png"
        )
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_predict_never_writes_over_its_inputs(checkpoint, tmp_path, capsys):
    photos = tmp_path / "photos"
    before = _photos(photos)
    argv = ["predict", "--checkpoint", str(checkpoint), "--quiet"]
    for extra in ([], ["--overwrite"]):
        assert main([*argv, "--out", str(photos), *extra, str(photos)]) == 2
        err = capsys.readouterr().err
        assert "is one of the input images" in err and len(err.strip().splitlines()) == 1
        assert {p.name: p.read_bytes() for p in photos.iterdir()} == before

    # outputs inside the input folder: a second run does not label the first run's outputs
    out = photos / "labels"
    assert main([*argv, "--out", str(out), str(photos)]) == 0
    assert "labelled 2 image(s)" in capsys.readouterr().out
    assert main([*argv, "--out", str(out), str(photos)]) == 0  # replaces its own outputs
    assert "labelled 2 image(s)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        "legend.png",
        "p0.png",
        "p0_overlay.png",
        "p1.png",
        "p1_overlay.png",
    ]


def test_predict_replaces_a_foreign_file_only_with_overwrite(checkpoint, tmp_path, capsys):
    photos = tmp_path / "photos"
    _photos(photos, 1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "p0_overlay.png").write_bytes(b"my own picture")
    argv = ["predict", "--checkpoint", str(checkpoint), "--quiet", "--out", str(out), str(photos)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "p0_overlay.png exists and is not a pdn output" in err and "--overwrite" in err
    assert sorted(p.name for p in out.iterdir()) == ["p0_overlay.png"]  # nothing written
    assert (out / "p0_overlay.png").read_bytes() == b"my own picture"
    assert main([*argv, "--overwrite"]) == 0
    with Image.open(out / "p0_overlay.png") as replaced:
        assert replaced.size == (40, 40)


def test_bench_latency_prints_one_line(capsys):
    argv = ["bench", "latency", "--arch", "fcn", "--backbone", "tiny", "--size", "32", "48"]
    assert (
        main([*argv, "--classes", "3", "--warmup", "1", "--repeats", "2", "--device", "cpu"]) == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "ms/batch" in lines[0] and "32x48 on cpu" in lines[0]
    assert "fp32" in lines[0]
    fast = ["--precision", "bf16", "--channels-last"]
    assert main([*argv, "--classes", "3", "--warmup", "1", "--repeats", "2", *fast]) == 0
    assert "bf16, channels-last: median" in capsys.readouterr().out


def test_panel_shows_image_truth_prediction_overlay_and_the_classes_present(tmp_path, capsys):
    from pdn.engine.visualize import background_classes, overlay, panel_image

    rgb = random_image(40, 50, 3)
    prediction = np.zeros((40, 50), dtype=np.int64)
    prediction[10:20, 10:20] = 2
    two = panel_image(rgb, prediction, PALETTE, CLASSES)
    truth = prediction.copy()
    truth[30:, 30:] = 1
    truth[0] = 255
    three = panel_image(rgb, prediction, PALETTE, CLASSES, truth=truth)
    assert two.height >= 256 and three.height - two.height == 22  # one more legend row
    assert three.width > two.width >= 3 * 256 * 50 // 40  # 4 panels against 3, upscaled
    # the overlay leaves background pixels as they were and tints the others
    assert background_classes(["_background_", "cat", "Background"]) == [0, 2]
    blended = np.asarray(overlay(rgb, prediction, PALETTE, transparent=[0]))
    np.testing.assert_array_equal(blended[prediction == 0], rgb[prediction == 0])
    assert not np.array_equal(blended[prediction == 2], rgb[prediction == 2])


def test_predict_panel_writes_one_picture_per_image(checkpoint, tmp_path, capsys):
    photos = tmp_path / "photos"
    _photos(photos, 2)
    out = tmp_path / "out"
    argv = ["predict", "--checkpoint", str(checkpoint), "--quiet", "--panel", "--out", str(out)]
    assert main([*argv, str(photos)]) == 0
    for name in ("p0", "p1"):
        with Image.open(out / f"{name}_panel.png") as panel:
            assert panel.height > 256 and panel.width > 3 * 256
    assert main([*argv, str(photos)]) == 0  # its own panels are replaced, not refused


def test_channels_last_amp_and_compile_switches(
    checkpoint, dataset_root, tmp_path, capsys, monkeypatch
):
    """--channels-last gives the same labels; --amp is ignored on the CPU; --compile wraps the
    model with torch.compile in the mode asked for (stubbed here: compiling takes minutes)."""
    import pdn.engine.inference as inference

    compiled = []

    def fake_compile(model, mode=None):
        compiled.append(mode)
        return model

    monkeypatch.setattr(inference.torch, "compile", fake_compile)
    photos = tmp_path / "photos"
    _photos(photos, 2)
    base = ["predict", "--checkpoint", str(checkpoint), "--quiet", str(photos)]
    assert main([*base, "--out", str(tmp_path / "plain")]) == 0
    fast = ["--channels-last", "--amp", "--compile", "reduce-overhead"]
    assert main([*base, "--out", str(tmp_path / "fast"), *fast]) == 0
    printed = capsys.readouterr().out
    assert "channels-last" in printed and "fp16 autocast (CUDA only)" in printed
    assert compiled == ["reduce-overhead"]
    for name in ("p0.png", "p1.png"):
        with Image.open(tmp_path / "plain" / name) as a, Image.open(tmp_path / "fast" / name) as b:
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    argv = ["eval", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "ev"), "--quiet"]
    assert main([*argv, "--compile", "--channels-last"]) == 0
    assert compiled == ["reduce-overhead", "default"]
    assert main([*argv, "--compile", "fastest"]) == 2
    assert "compile mode must be one of" in capsys.readouterr().err


def test_bf16_precision_on_the_cpu_stays_close_to_fp32(checkpoint):
    """bf16 autocast on the CPU: probabilities within bf16's precision of fp32's, returned as
    float32; an unknown precision is refused."""
    from pdn.engine.inference import InferenceOptions, infer
    from pdn.errors import ConfigError

    segmenter = pdn.Segmenter.from_checkpoint(checkpoint, device="cpu")
    x = segmenter.prepare(random_image(48, 40, 5))
    exact = infer(segmenter.model, x[None], InferenceOptions())
    fast = infer(segmenter.model, x[None], InferenceOptions(precision="bf16"))
    assert fast.dtype == torch.float32
    assert float((fast - exact).abs().max()) < 0.05
    with pytest.raises(ConfigError, match="precision must be one of"):
        InferenceOptions(precision="int8")
