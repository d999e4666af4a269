"""Bad input: every reader refuses it with a one-line DataError that names the file and the problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import layouts
from pdn import DataError, build_dataset
from pdn.data import read_image, read_label_array

LAYOUTS = layouts.LAYOUTS


def _break_missing_image(image: Path, mask: Path, layout) -> Path:
    image.unlink()
    return image


def _break_missing_mask(image: Path, mask: Path, layout) -> Path:
    mask.unlink()
    return mask


def _break_corrupt_image(image: Path, mask: Path, layout) -> Path:
    image.write_bytes(b"this is not an image at all")
    return image


def _break_truncated_image(image: Path, mask: Path, layout) -> Path:
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2])
    return image


def _break_corrupt_mask(image: Path, mask: Path, layout) -> Path:
    data = mask.read_bytes()
    mask.write_bytes(data[:40])
    return mask


def _break_size(image: Path, mask: Path, layout) -> Path:
    raw = read_label_array(mask)
    layouts.save_mask(mask, raw[:, :-3])
    return mask


def _break_label(image: Path, mask: Path, layout) -> Path:
    raw = read_label_array(mask).copy()
    raw[1, 2] = layout.bad_label
    layouts.save_mask(mask, raw)
    return mask


def _break_rgb_mask(image: Path, mask: Path, layout) -> Path:
    raw = read_label_array(mask)
    Image.fromarray(np.stack([raw] * 3, axis=-1)).save(mask)
    return mask


BREAKS = {
    "missing image": (_break_missing_image, "image file not found"),
    "missing mask": (_break_missing_mask, "mask file not found"),
    "corrupt image": (_break_corrupt_image, "cannot read image"),
    "truncated image": (_break_truncated_image, "cannot read image"),
    "corrupt mask": (_break_corrupt_mask, "cannot read mask"),
    "size mismatch": (_break_size, "mask is 12x13 (HxW) but its image"),
    "label outside the classes": (_break_label, "label values"),
    "rgb mask": (_break_rgb_mask, "mask has mode RGB"),
}


@pytest.mark.parametrize("key", sorted(LAYOUTS))
@pytest.mark.parametrize("problem", sorted(BREAKS))
def test_reader_refuses_bad_input_naming_the_file(tmp_path, key, problem):
    layout = LAYOUTS[key]
    pairs = layout.write(tmp_path, "train", layout.samples(count=2))
    ds = build_dataset(layout.dataset, root=tmp_path, **layout.options)
    index = [str(image) for image, _ in ds.samples].index(str(pairs[0][0]))
    breaker, problem_text = BREAKS[problem]
    culprit = breaker(*pairs[0], layout)
    with pytest.raises(DataError) as info:
        ds[index]
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "\n" not in message
    assert message.startswith(str(culprit)), message
    assert problem_text in message
    if problem == "label outside the classes":
        assert f"label values {layout.bad_label} " in message
    # The other sample is still readable: one bad file spoils only itself.
    image, mask = ds[1 - index]
    assert image.dtype == torch.uint8 and mask.dtype == torch.int64


def test_16_bit_mask_values_above_255_are_refused(tmp_path):
    path = tmp_path / "mask.png"
    Image.fromarray(np.array([[0, 1], [2, 300]], dtype=np.uint16)).save(path)
    raw = read_label_array(path)
    from pdn.data import LabelMap

    with pytest.raises(DataError, match=r"mask\.png: label values 300 are not labels"):
        LabelMap.identity(3)(raw, path)


def test_label_error_lists_every_bad_value_once(tmp_path):
    from pdn.data import LabelMap

    raw = np.array([[5, 7, 5], [0, 9, 255]], dtype=np.uint8)
    with pytest.raises(
        DataError,
        match=r"label values 5, 7, 9 are not labels of this dataset \(valid: 0\.\.2 and 255",
    ):
        LabelMap.identity(3)(raw, "m.png")


def test_read_image_refuses_nan_in_float_images(tmp_path):
    path = tmp_path / "nan.tif"
    Image.fromarray(np.array([[0.0, np.nan]], dtype=np.float32)).save(path)
    with pytest.raises(DataError, match=r"nan\.tif: image holds NaN"):
        read_image(path)


def test_split_list_naming_missing_files_fails_per_sample(tmp_path):
    layout = LAYOUTS["voc"]
    layout.write(tmp_path, "train", layout.samples(count=1))
    split_file = tmp_path / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "train.txt"
    split_file.write_text(split_file.read_text() + "2099_000001\n")
    ds = build_dataset("voc", root=tmp_path)
    assert len(ds) == 2
    ds[0]
    with pytest.raises(DataError, match=r"JPEGImages/2099_000001\.jpg: image file not found"):
        ds[1]


def test_empty_split_list_is_refused(tmp_path):
    layout = LAYOUTS["pascal_context59"]
    layout.write(tmp_path, "train", layout.samples(count=1))
    split_file = (
        tmp_path / "VOCdevkit" / "VOC2010" / "ImageSets" / "SegmentationContext" / "train.txt"
    )
    split_file.write_text("\n\n")
    with pytest.raises(DataError, match=r"train\.txt: split list is empty"):
        build_dataset("pascal_context59", root=tmp_path)


def test_a_folder_root_that_does_not_exist_says_so_first(tmp_path):
    with pytest.raises(DataError, match="no such folder; the folder layout expects"):
        build_dataset("folder", root=tmp_path / "nowhere", split="train")
