"""``pdn data check`` on good and broken copies of a dataset."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import layouts
from pdn.cli.main import main


def test_check_a_good_voc_copy(tmp_path, capsys):
    raw = np.zeros((10, 12), dtype=np.uint8)
    raw[:, 6:] = 15
    raw[0] = 255
    layouts.write_voc(tmp_path, "val", [("2007_000001", layouts.random_image(10, 12, 0), raw)])
    layouts.write_voc(
        tmp_path,
        "val",
        [("2007_000002", layouts.random_image(8, 9, 1), np.zeros((8, 9), np.uint8))],
    )
    assert (
        main(["data", "check", "--dataset", "voc", "--root", str(tmp_path), "--split", "val"]) == 0
    )
    out = capsys.readouterr().out
    assert "samples: 2 (2 good, 0 bad)" in out
    assert "image sizes: height 8..10, width 9..12" in out
    assert "classes present: 2 of 21" in out
    # 120 + 72 pixels: background 54 + 72, person 54, ignore 12.
    assert "background" in out and f"{100 * 126 / 192:8.3f} %" in out
    assert "person" in out and f"{100 * 54 / 192:8.3f} %" in out
    assert f"{100 * 12 / 192:8.3f} %" in out
    assert "bad files" not in out


def test_check_a_broken_copy_reports_every_bad_file_and_fails(tmp_path, capsys):
    layout = layouts.LAYOUTS["ade20k"]
    pairs = layout.write(tmp_path, "train", layout.samples(count=5))
    (image0, _), (_, mask1), (image2, _), (_, mask3) = pairs[:4]
    image0.write_bytes(b"garbage")
    mask1.unlink()
    layouts.save_mask(pairs[2][1], np.zeros((5, 5), np.uint8))
    bad = np.full((12, 16), 1, np.uint8)
    bad[0, 0] = 200
    layouts.save_mask(mask3, bad)
    code = main(["data", "check", "--dataset", "ade20k", "--root", str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1
    assert "samples: 5 (1 good, 4 bad)" in out
    assert f"{image0}: cannot read image" in out
    assert f"{mask1}: mask file not found" in out
    assert f"{pairs[2][1]}: mask is 5x5 (HxW) but its image {image2} is 12x16" in out
    assert f"{mask3}: label values 200 are not labels of this dataset" in out


def test_check_passes_dataset_options_and_scans_generated_data(capsys):
    assert (
        main(
            [
                "data",
                "check",
                "--dataset",
                "context",
                "--split",
                "val",
                "-o",
                "size=48",
                "-o",
                "num_samples=20",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "samples: 20 (20 good, 0 bad)" in out and "height 48..48, width 48..48" in out
    assert "classes present: 5 of 5" in out or "classes present: 4 of 5" in out


def test_check_with_a_missing_root_or_unknown_option_exits_2_with_one_line(tmp_path, capsys):
    assert main(["data", "check", "--dataset", "cityscapes", "--root", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "expected ROOT/leftImg8bit/" in err
    assert (
        main(["data", "check", "--dataset", "voc", "--root", str(tmp_path), "-o", "augment=true"])
        == 2
    )
    assert "did you mean aug" in capsys.readouterr().err
    assert main(["data", "check", "--dataset", "voc", "--root", str(tmp_path), "-o", "aug"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_help_explains_every_option():
    result = subprocess.run(
        [sys.executable, "-m", "pdn", "data", "check", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for option in ("--dataset", "--root", "--split", "--option", "--no-progress", "Exit status"):
        assert option in result.stdout
    for name in ("ade20k", "voc", "pascal_context59", "cityscapes", "folder", "nuclei", "context"):
        assert name in result.stdout


# The values follow pdn train's data.options.KEY=VALUE rule (YAML): null, not none, is None.
@pytest.mark.parametrize(
    ("text", "value"),
    [("aug=true", True), ("size=64", 64), ("x=0.5", 0.5), ("n=null", None), ("p=a/b", "a/b")],
)
def test_option_values_are_typed(text, value):
    from pdn.cli.data import parse_option

    assert parse_option(text) == (text.split("=")[0], value)


def test_show_writes_samples_that_read_back_as_a_folder_dataset(tmp_path, capsys):
    """``pdn data show`` writes what the dataset returns, and its folder is a ``folder`` dataset
    whose samples are the same pixels and labels."""
    import pdn

    options = ["-o", "size=96", "-o", "pairs=3", "-o", "turns=1", "-o", "num_samples=4"]
    out = tmp_path / "shown"
    argv = ["data", "show", "--dataset", "paths", "--split", "val", *options, "--out", str(out)]
    assert main([*argv, "--index", "3", "1"]) == 0
    assert "read back as --dataset folder" in capsys.readouterr().out
    source = pdn.build_dataset("paths", split="val", size=96, pairs=3, turns=1, num_samples=4)
    copy = pdn.build_dataset("folder", root=out, split="all")
    assert list(copy.classes) == list(source.classes) and len(copy) == 2
    for k, index in enumerate((1, 3)):  # the folder dataset lists its stems sorted
        image, mask = copy[k]
        assert np.array_equal(image.numpy(), source[index][0].numpy())
        assert np.array_equal(mask.numpy(), source[index][1].numpy())
    assert main(["data", "show", "--dataset", "fashion_scenes", "--root", str(tmp_path)]) == 2
    assert "fashion_scenes" in capsys.readouterr().err
    assert (
        main(
            [
                "data",
                "show",
                "--dataset",
                "paths",
                *options,
                "--out",
                str(tmp_path / "bad"),
                "--index",
                "4",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "--index 4" in err and "0..3" in err and "\n" not in err.strip()
    assert main(["data", "show", "--dataset", "paths", "--count", "0"]) == 2


def test_show_with_a_config_writes_what_that_config_trains_on(tmp_path, capsys):
    """``--config paths`` takes the packaged config's dataset and options (256 px scenes of 8 px
    cells, not the dataset's own 128 px defaults), and ``-o`` changes them."""
    import pdn
    from pdn.engine.config import load_config

    out = tmp_path / "shown"
    argv = ["data", "show", "--config", "paths", "--split", "test", "-o", "turns=0"]
    assert main([*argv, "--index", "1", "--out", str(out)]) == 0
    options = {**load_config("paths").data.options, "turns": 0}
    assert options["size"] == 256 and options["cell"] == 8
    image, mask = pdn.build_dataset("folder", root=out, split="all")[0]
    source = pdn.build_dataset("paths", split="test", **options)[1]
    assert image.shape == (3, 256, 256)
    assert np.array_equal(image.numpy(), source[0].numpy())
    assert np.array_equal(mask.numpy(), source[1].numpy())
    capsys.readouterr()
    for wrong in (["--config", "paths", "--dataset", "paths"], []):
        assert main(["data", "show", *wrong, "--out", str(tmp_path / "no")]) == 2
        err = capsys.readouterr().err
        assert "--dataset NAME or --config CONFIG" in err and "\n" not in err.strip()
    assert not (tmp_path / "no").exists()
