"""The packaged nuclei image: column split, 16-bit conversion, nucleus share."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pdn import DataError, build_dataset
from pdn.data.datasets.nuclei import PACKAGED_ROOT


def raw_arrays(root: Path = PACKAGED_ROOT) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(Image.open(root / "image.tif")), np.asarray(Image.open(root / "mask.tif"))


def test_the_files_ship_inside_the_package_with_their_attribution():
    folder = resources.files("pdn.data") / "nuclei"
    for name in ("image.tif", "mask.tif", "SOURCE.md"):
        assert (folder / name).is_file()
    assert "Data Science Bowl" in (folder / "SOURCE.md").read_text()
    image, mask = raw_arrays()
    assert image.dtype == np.uint16 and image.shape == (512, 512) and image.max() == 235
    assert mask.dtype == np.uint16 and len(np.unique(mask)) == 1 + 125  # 125 nuclei, ids up to 183


def test_train_and_val_are_disjoint_column_blocks_that_cover_the_image():
    train = build_dataset("nuclei", split="train")
    val = build_dataset("nuclei", split="val")
    assert len(train) == len(val) == 1
    (train_image, train_mask), (val_image, val_mask) = train[0], val[0]
    assert train_image.shape == (3, 512, 384) and val_image.shape == (3, 512, 128)
    assert train_mask.shape == (512, 384) and val_mask.shape == (512, 128)
    raw_image, raw_mask = raw_arrays()
    full_mask = torch.cat([train_mask, val_mask], dim=1)
    np.testing.assert_array_equal(full_mask.numpy(), (raw_mask > 0).astype(np.int64))
    expected = np.rint(raw_image.astype(np.float64) * 255 / 235).astype(np.uint8)
    full_image = torch.cat([train_image, val_image], dim=2)
    for channel in range(3):
        np.testing.assert_array_equal(full_image[channel].numpy(), expected)


def test_about_twenty_percent_nucleus():
    train_mask = build_dataset("nuclei", split="train")[0][1]
    val_mask = build_dataset("nuclei", split="val")[0][1]
    total = (train_mask.sum() + val_mask.sum()).item() / (512 * 512)
    assert 0.18 < total < 0.22
    assert 0.15 < val_mask.float().mean().item() < 0.25
    assert set(train_mask.unique().tolist()) == {0, 1}


def test_metadata_and_a_copied_root(tmp_path):
    ds = build_dataset("nuclei", split="val")
    assert ds.classes == ("background", "nucleus") and ds.num_classes == 2 and len(ds.palette) == 2
    for name in ("image.tif", "mask.tif"):
        shutil.copy(PACKAGED_ROOT / name, tmp_path / name)
    copy = build_dataset("nuclei", root=tmp_path, split="val")
    assert torch.equal(copy[0][0], ds[0][0])
    (tmp_path / "mask.tif").unlink()
    with pytest.raises(DataError, match=r"mask\.tif: mask file not found"):
        build_dataset("nuclei", root=tmp_path, split="val")[0]


def test_size_mismatch_between_image_and_mask_is_refused(tmp_path):
    image, mask = raw_arrays()
    Image.fromarray(image).save(tmp_path / "image.tif")
    Image.fromarray(mask[:, :500]).save(tmp_path / "mask.tif")
    with pytest.raises(
        DataError, match=r"mask\.tif: mask is 512x500 \(HxW\) but its image .*image\.tif is 512x512"
    ):
        build_dataset("nuclei", root=tmp_path)[0]
