"""``fashion_scenes``: IDX reading (gzipped or not, with one-line errors), splits that never
share a photo, labels on each garment's own foreground with an ignored edge band, determinism."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import pdn
from pdn.data.datasets import fashion_scenes as F
from pdn.data.idx import read_idx
from pdn.errors import ConfigError, DataError


def _write_idx(path: Path, array: np.ndarray, *, gz: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if gz:
        with gzip.open(f"{path}.gz", "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)


def _photos(count: int, labels: list[int], shade: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` 28 x 28 photos: a filled square of intensity ``shade`` on black."""
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    images[:, 6:22, 4:24] = shade
    return images, np.array([labels[i % len(labels)] for i in range(count)], dtype=np.uint8)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """Train photos of classes 0-4 (shade 200), test photos of classes 5-9 whose first half has
    shade 120 and second half shade 250, so a scene shows which pool its garments came from."""
    root = tmp_path_factory.mktemp("fashion")
    train, train_labels = _photos(12, [0, 1, 2, 3, 4], 200)
    test, test_labels = _photos(10, [5, 6, 7, 8, 9], 120)
    test[5:, 6:22, 4:24] = 250
    _write_idx(root / "train-images-idx3-ubyte", train, gz=True)
    _write_idx(root / "train-labels-idx1-ubyte", train_labels, gz=False)
    _write_idx(root / "t10k-images-idx3-ubyte", test, gz=False)
    _write_idx(root / "t10k-labels-idx1-ubyte", test_labels, gz=True)
    return root


def _dataset(root: Path, split: str, **options):
    return pdn.build_dataset("fashion_scenes", root=root, split=split, num_samples=6, **options)


def test_idx_files_read_back_gzipped_or_not(root):
    images = read_idx(root / "train-images-idx3-ubyte.gz")
    assert images.shape == (12, 28, 28) and images.dtype == np.uint8 and images.max() == 200
    assert read_idx(root / "t10k-images-idx3-ubyte").shape == (10, 28, 28)


def test_splits_draw_only_their_own_photos(root):
    pools = {"train": ({1, 2, 3, 4, 5}, 200), "val": ({6, 7, 8, 9, 10}, 120)}
    pools["test"] = ({6, 7, 8, 9, 10}, 250)
    for split, (classes, shade) in pools.items():
        ds = _dataset(root, split, size=96, min_side=20, max_side=40)
        for index in range(len(ds)):
            image, mask = ds[index]
            labelled = set(torch.unique(mask).tolist()) - {0, 255}
            assert labelled and labelled <= classes
            garment = mask[(mask > 0) & (mask < 255)]
            assert garment.numel() > 0
            assert set(image[0][(mask > 0) & (mask < 255)].tolist()) == {shade}


def test_labels_follow_each_garment_with_an_ignored_edge(root):
    ds = _dataset(root, "train", size=96, min_side=28, max_side=28)  # no rescale: exact squares
    image, mask = ds[0]
    garments = ds.garments(0)
    assert 2 <= len(garments) <= 4
    for photo, row, col, side in garments:
        label = 1 + int(ds.photos[1][photo])
        window = mask[row : row + side, col : col + side]
        assert torch.all(window[7:21, 5:23] == label)  # the square's inside, 1 px in
        assert torch.all(window[6, 4:24] == 255) and torch.all(window[5, 4:24] == 255)
        assert torch.all(window[0:4] == 0)  # well outside the square: background
    again = _dataset(root, "train", size=96, min_side=28, max_side=28)[0]
    assert torch.equal(again[0], image) and torch.equal(again[1], mask)


def test_missing_files_name_the_package_and_the_files(tmp_path):
    with pytest.raises(DataError) as error:
        _dataset(tmp_path, "train")
    message = str(error.value)
    assert "apt-get install dataset-fashion-mnist" in message and "\n" not in message
    assert "train-images-idx3-ubyte" in message and str(tmp_path) in message


def test_corrupt_idx_and_bad_options_are_one_line_errors(root, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (bad / name).write_bytes((root / name).read_bytes() if (root / name).exists() else b"")
    (bad / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 20)
    with pytest.raises(DataError, match="train-images-idx3-ubyte: the header gives shape"):
        _dataset(bad, "train")
    (bad / "train-images-idx3-ubyte").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(DataError, match="not an IDX file"):
        _dataset(bad, "train")
    with pytest.raises(ConfigError, match="max_side must be an integer in 40..96"):
        _dataset(root, "train", size=96, min_side=40, max_side=120)
    assert F.FASHION_CLASSES[0] == "background" and len(F.FASHION_CLASSES) == 11
