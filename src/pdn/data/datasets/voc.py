"""PASCAL VOC 2012 segmentation (21 classes), optionally with the SBD-augmented training set."""

from __future__ import annotations

from pathlib import Path

from ...errors import ConfigError
from ..base import FileSegmentationDataset, JointTransform
from ..io import LabelMap, locate_root, read_split_file
from ..palettes import voc_colormap
from ..registry import check_split, register_dataset

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip
EXPECTED = (
    "ROOT/VOCdevkit/VOC2012/JPEGImages/*.jpg, ROOT/VOCdevkit/VOC2012/SegmentationClass/*.png and "
    "ROOT/VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val,trainval}.txt"
)
EXPECTED_AUG = (
    "ROOT/VOCdevkit/VOC2012/SegmentationClassAug/*.png and "
    "ROOT/VOCdevkit/VOC2012/ImageSets/Segmentation/trainaug.txt (the SBD-augmented set)"
)


@register_dataset("voc")
def build_voc(
    *,
    root: str | Path | None = None,
    split: str = "train",
    transforms: JointTransform | None = None,
    aug: bool = False,
) -> FileSegmentationDataset:
    """PASCAL VOC 2012 semantic segmentation.

    Layout: ``ROOT/VOCdevkit/VOC2012/`` (``ROOT`` may also be ``VOCdevkit`` or ``VOC2012``) with
    ``JPEGImages/{id}.jpg``, ``SegmentationClass/{id}.png`` and
    ``ImageSets/Segmentation/{train,val,trainval}.txt`` (one id per line). Masks are palette PNGs
    whose pixel indices are the classes 0..20, with 255 (the cream border) as ignore; they are
    read as indices, never through their colours. ``palette`` is VOC's own colour map.

    ``aug=True`` trains on the SBD-augmented set used by the field (10,582 images): for the
    ``train`` split, ids come from ``ImageSets/Segmentation/trainaug.txt`` and masks from
    ``SegmentationClassAug/{id}.png`` (grayscale or palette PNGs of class indices). The ``val``
    split stays the official 1,449 images, so ``aug`` does not change it; ``trainval`` with
    ``aug=True`` is refused because the augmented set already contains it.
    """
    check_split("voc", split, ("train", "val", "trainval"))
    if not isinstance(aug, bool):
        raise ConfigError(f"voc option aug must be true or false, got {aug!r}")
    if aug and split == "trainval":
        raise ConfigError(
            "voc: aug=True selects the augmented train set; use split 'train' or 'val'"
        )
    use_aug = aug and split == "train"
    masks, list_name = (
        ("SegmentationClassAug", "trainaug") if use_aug else ("SegmentationClass", split)
    )
    base = locate_root(
        root,
        "PASCAL VOC 2012",
        ["VOCdevkit/VOC2012", "VOC2012", "."],
        ["JPEGImages", masks, f"ImageSets/Segmentation/{list_name}.txt"],
        EXPECTED_AUG if use_aug else EXPECTED,
    )
    ids = read_split_file(base / "ImageSets" / "Segmentation" / f"{list_name}.txt")
    return FileSegmentationDataset(
        [(base / "JPEGImages" / f"{id_}.jpg", base / masks / f"{id_}.png") for id_ in ids],
        root=base,
        split=split,
        classes=VOC_CLASSES,
        palette=voc_colormap(len(VOC_CLASSES)),
        label_map=LabelMap.identity(len(VOC_CLASSES)),
        transforms=transforms,
    )
