"""Each dataset layout, written in its exact on-disk format and read back value by value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import layouts
import pdn
from pdn import ConfigError, DataError, build_dataset
from pdn.data.palettes import voc_colormap

LAYOUTS = layouts.LAYOUTS


def pillow_rgb(path: Path) -> np.ndarray:
    """What the file decodes to, ``(3, H, W)``: the reference the reader must match exactly."""
    return np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1)


@pytest.mark.parametrize("key", sorted(LAYOUTS))
@pytest.mark.parametrize("split", ["train", "val"])
def test_layout_reads_back_value_by_value(tmp_path, key, split):
    layout = LAYOUTS[key]
    samples = layout.samples(count=3, seed=len(split))
    pairs = layout.write(tmp_path, split, samples)
    ds = build_dataset(layout.dataset, root=tmp_path, split=split, **layout.options)
    assert len(ds) == 3
    assert ds.ignore_index == 255
    assert len(ds.palette) == ds.num_classes == len(ds.classes)
    by_image = {
        str(image_path): (raw, image_path)
        for (_, _, raw), (image_path, _) in zip(samples, pairs, strict=True)
    }
    for index in range(len(ds)):
        image, mask = ds[index]
        image_path, mask_path = ds.samples[index]
        raw, written_path = by_image[str(image_path)]
        assert image.dtype == torch.uint8 and image.shape == (3, *raw.shape)
        assert mask.dtype == torch.int64 and mask.shape == raw.shape
        np.testing.assert_array_equal(image.numpy(), pillow_rgb(written_path))
        np.testing.assert_array_equal(mask.numpy(), layout.expected(raw))
        values = set(mask.unique().tolist())
        assert values <= set(range(ds.num_classes)) | {255}


def test_png_images_keep_their_exact_pixels(tmp_path):
    layout = LAYOUTS["folder"]
    samples = layout.samples(count=1)
    layout.write(tmp_path, "train", samples)
    image, _ = build_dataset("folder", root=tmp_path)[0]
    np.testing.assert_array_equal(image.numpy(), samples[0][1].transpose(2, 0, 1))


def test_ade20k_zero_is_other_and_labels_shift_down(tmp_path):
    raw = np.array([[0, 1, 150], [2, 0, 149]], dtype=np.uint8)
    layouts.write_ade20k(
        tmp_path, "val", [("ADE_val_00000001", layouts.random_image(2, 3, 0), raw)]
    )
    ds = build_dataset("ade20k", root=tmp_path, split="val")
    assert ds.num_classes == 150 and ds.classes[0] == "wall" and ds.classes[149] == "flag"
    assert ds[0][1].tolist() == [[255, 0, 149], [1, 255, 148]]


def test_voc_palette_png_indices_are_read_as_indices_with_255_border(tmp_path):
    raw = np.zeros((10, 10), dtype=np.uint8)
    raw[2:8, 2:8] = 255  # the cream border VOC draws around objects
    raw[3:7, 3:7] = 15  # person
    raw[4:6, 4:6] = 12  # dog
    ((image_path, mask_path),) = layouts.write_voc(
        tmp_path, "train", [("2007_000032", layouts.random_image(10, 10, 1), raw)]
    )
    with Image.open(mask_path) as stored:
        assert stored.mode == "P"
        # The colours of the stored palette are VOC's, yet the reader must return the indices.
        assert stored.convert("RGB").getpixel((3, 3)) == (192, 128, 128)
    ds = build_dataset("voc", root=tmp_path)
    np.testing.assert_array_equal(ds[0][1].numpy(), raw.astype(np.int64))
    assert ds.palette == voc_colormap(21)
    assert ds.palette[15] == (192, 128, 128) and ds.classes[15] == "person"


def test_voc_aug_uses_segmentation_class_aug_and_trainaug(tmp_path):
    official = LAYOUTS["voc"].samples(count=1, seed=1)
    augmented = [
        (f"2008_{k:06d}", image, raw)
        for k, (_, image, raw) in enumerate(LAYOUTS["voc"].samples(count=3, seed=2))
    ]
    layouts.write_voc(tmp_path, "train", official)
    layouts.write_voc(tmp_path, "val", official)
    layouts.write_voc(tmp_path, "train", augmented, aug=True)
    plain = build_dataset("voc", root=tmp_path, split="train")
    aug = build_dataset("voc", root=tmp_path, split="train", aug=True)
    assert len(plain) == 1 and len(aug) == 3
    assert all(mask.parent.name == "SegmentationClassAug" for _, mask in aug.samples)
    np.testing.assert_array_equal(aug[2][1].numpy(), augmented[2][2].astype(np.int64))
    val = build_dataset("voc", root=tmp_path, split="val", aug=True)
    assert [m.parent.name for _, m in val.samples] == ["SegmentationClass"]
    with pytest.raises(ConfigError, match="aug"):
        build_dataset("voc", root=tmp_path, split="trainval", aug=True)
    with pytest.raises(ConfigError, match="true or false"):
        build_dataset("voc", root=tmp_path, aug="yes")


def test_voc_missing_trainaug_names_the_expected_layout(tmp_path):
    layouts.write_voc(tmp_path, "train", LAYOUTS["voc"].samples(count=1))
    with pytest.raises(DataError, match=r"SegmentationClassAug/\*\.png and .*trainaug\.txt"):
        build_dataset("voc", root=tmp_path, aug=True)


def test_pascal_context59_background_is_ignored(tmp_path):
    raw = np.array([[0, 1, 59, 255]], dtype=np.uint8)
    layouts.write_pascal_context59(
        tmp_path, "train", [("2008_000002", layouts.random_image(1, 4, 3), raw)]
    )
    ds = build_dataset("pascal_context59", root=tmp_path)
    assert ds.num_classes == 59 and ds.classes[0] == "aeroplane" and ds.classes[58] == "wood"
    assert ds[0][1].tolist() == [[255, 0, 58, 255]]


def test_cityscapes_label_ids_map_to_the_19_train_ids(tmp_path):
    raw = np.arange(34, dtype=np.uint8).reshape(2, 17)
    layouts.write_cityscapes(
        tmp_path, "train", [("zurich_000000_000019", layouts.random_image(2, 17, 4), raw)]
    )
    ds = build_dataset("cityscapes", root=tmp_path)
    expected = [layouts.CITYSCAPES_RAW[v] for v in range(34)]
    assert ds[0][1].flatten().tolist() == expected
    assert sorted(set(expected) - {255}) == list(range(19))
    assert ds.classes[13] == "car" and ds.palette[13] == (0, 0, 142)


def test_cityscapes_prefers_label_train_ids_where_present(tmp_path):
    raw_ids = np.full((4, 4), 26, dtype=np.uint8)  # labelId 26 = car = trainId 13
    raw_train = np.full(
        (4, 4), 5, dtype=np.uint8
    )  # trainId 5 as is (as labelId, 5 would be ignore)
    stems = ["ulm_000000_000019", "ulm_000001_000019"]
    layouts.write_cityscapes(tmp_path, "val", [(stems[0], layouts.random_image(4, 4, 0), raw_ids)])
    layouts.write_cityscapes(
        tmp_path, "val", [(stems[1], layouts.random_image(4, 4, 1), raw_train)]
    )
    layouts.write_cityscapes(
        tmp_path, "val", [(stems[1], layouts.random_image(4, 4, 1), raw_train)], train_ids=True
    )
    ds = build_dataset("cityscapes", root=tmp_path, split="val")
    assert [m.name for _, m in ds.samples] == [
        f"{stems[0]}_gtFine_labelIds.png",
        f"{stems[1]}_gtFine_labelTrainIds.png",
    ]
    assert set(ds[0][1].unique().tolist()) == {13}
    assert set(ds[1][1].unique().tolist()) == {5}


@pytest.mark.parametrize(
    ("key", "subdir"),
    [
        ("ade20k", "ADEChallengeData2016"),
        ("voc", "VOCdevkit/VOC2012"),
        ("voc", "VOCdevkit"),
        ("pascal_context59", "VOCdevkit/VOC2010"),
    ],
)
def test_root_may_also_be_the_dataset_folder_itself(tmp_path, key, subdir):
    layout = LAYOUTS[key]
    layout.write(tmp_path, "train", layout.samples(count=1))
    assert len(build_dataset(layout.dataset, root=tmp_path / subdir)) == 1


def test_folder_class_names_file_and_num_classes(tmp_path):
    layout = LAYOUTS["folder"]
    layout.write(tmp_path, "train", layout.samples(count=2))
    ds = build_dataset("folder", root=tmp_path)
    assert ds.classes == layouts.FOLDER_CLASSES
    names = tmp_path / "parts.txt"
    names.write_text("bg\nhead\ntorso\narm\n")
    assert build_dataset("folder", root=tmp_path, class_names="parts.txt").classes == (
        "bg",
        "head",
        "torso",
        "arm",
    )
    (tmp_path / "classes.txt").unlink()
    ds = build_dataset("folder", root=tmp_path, num_classes=3)
    assert ds.classes == ("class_0", "class_1", "class_2")
    with pytest.raises(ConfigError, match="num_classes"):
        build_dataset("folder", root=tmp_path)
    with pytest.raises(ConfigError, match="num_classes=5 but .*parts.txt names 4"):
        build_dataset("folder", root=tmp_path, num_classes=5, class_names=names)
    with pytest.raises(ConfigError, match="1..255"):
        build_dataset("folder", root=tmp_path, num_classes=0)


def test_folder_split_subfolders_and_all(tmp_path):
    raw = np.array([[0, 1], [2, 255]], dtype=np.uint8)
    for split, stem in (("train", "a"), ("val", "b")):
        layouts.save_image(
            tmp_path / "images" / split / f"{stem}.png", layouts.random_image(2, 2, 0)
        )
        layouts.save_mask(tmp_path / "masks" / split / f"{stem}.png", raw)
    ds = build_dataset("folder", root=tmp_path, split="val", num_classes=3)
    assert len(ds) == 1 and ds.samples[0][0].name == "b.png"
    assert ds[0][1].tolist() == [[0, 1], [2, 255]]
    with pytest.raises(DataError, match="no split 'test'"):
        build_dataset("folder", root=tmp_path, split="test", num_classes=3)
    flat = tmp_path / "flat"
    layouts.save_image(flat / "images" / "x.jpg", layouts.random_image(2, 2, 0))
    layouts.save_mask(flat / "masks" / "x.png", raw)
    assert len(build_dataset("folder", root=flat, split="all", num_classes=3)) == 1


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("ade20k", "ROOT/ADEChallengeData2016/images/{training,validation}/*.jpg"),
        ("voc", "ROOT/VOCdevkit/VOC2012/JPEGImages/*.jpg"),
        ("pascal_context59", "ROOT/VOCdevkit/VOC2010/SegmentationClassContext/*.png"),
        ("cityscapes", "ROOT/leftImg8bit/{train,val}/CITY/*_leftImg8bit.png"),
        ("folder", "ROOT/images/STEM"),
    ],
)
def test_missing_root_says_which_layout_was_expected(tmp_path, key, expected):
    options = {"num_classes": 2} if key == "folder" else {}
    for root in (tmp_path / "does-not-exist", tmp_path):
        with pytest.raises(DataError) as info:
            build_dataset(key, root=root, **options)
        message = str(info.value)
        assert "\n" not in message and expected in message and str(root) in message


def test_empty_image_folder_is_refused(tmp_path):
    (tmp_path / "ADEChallengeData2016" / "images" / "training").mkdir(parents=True)
    (tmp_path / "ADEChallengeData2016" / "annotations" / "training").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no files matching \*\.jpg"):
        build_dataset("ade20k", root=tmp_path)


def test_registry_names_options_and_close_matches(tmp_path):
    names = {"ade20k", "cityscapes", "folder", "nuclei", "pascal_context59", "voc"}
    assert names <= set(pdn.list_datasets())
    with pytest.raises(ConfigError, match="did you mean cityscapes"):
        build_dataset("citscapes", root=tmp_path)
    with pytest.raises(ConfigError, match="no option 'num_clases'; did you mean num_classes"):
        build_dataset("folder", root=tmp_path, num_clases=3)
    with pytest.raises(ConfigError, match="no split 'vall'; did you mean val"):
        build_dataset("ade20k", root=tmp_path, split="vall")
    with pytest.raises(ConfigError, match="no option 'aug'"):
        build_dataset("ade20k", root=tmp_path, aug=True)
