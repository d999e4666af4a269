"""PASCAL-Context in the 59-class setting the field reports (0 = background ignored)."""

from __future__ import annotations

from pathlib import Path

from ..base import FileSegmentationDataset, JointTransform
from ..io import LabelMap, locate_root, read_split_file
from ..palettes import voc_colormap
from ..registry import check_split, register_dataset

CONTEXT59_CLASSES = (
    "aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat", "book", "bottle",
    "building", "bus", "cabinet", "car", "cat", "ceiling", "chair", "cloth", "computer", "cow",
    "cup", "curtain", "dog", "door", "fence", "floor", "flower", "food", "grass", "ground", "horse",
    "keyboard", "light", "motorbike", "mountain", "mouse", "person", "plate", "platform",
    "pottedplant", "road", "rock", "sheep", "shelves", "sidewalk", "sign", "sky", "snow", "sofa",
    "table", "track", "train", "tree", "truck", "tvmonitor", "wall", "water", "window", "wood",
)  # fmt: skip
EXPECTED = (
    "ROOT/VOCdevkit/VOC2010/JPEGImages/*.jpg, ROOT/VOCdevkit/VOC2010/SegmentationClassContext/*.png "
    "and ROOT/VOCdevkit/VOC2010/ImageSets/SegmentationContext/{train,val}.txt"
)


@register_dataset("pascal_context59")
def build_pascal_context59(
    *,
    root: str | Path | None = None,
    split: str = "train",
    transforms: JointTransform | None = None,
) -> FileSegmentationDataset:
    """PASCAL-Context, 59 classes (4,996 train / 5,104 val images on VOC 2010).

    Layout (the one mmsegmentation's ``pascal_context.py`` converter writes from the official
    ``trainval_merged.json``, and the one most published 59-class numbers use):
    ``ROOT/VOCdevkit/VOC2010/`` (``ROOT`` may also be ``VOCdevkit`` or ``VOC2010``) with
    ``JPEGImages/{id}.jpg``, ``SegmentationClassContext/{id}.png`` and
    ``ImageSets/SegmentationContext/{train,val}.txt``.

    Masks are 8-bit PNGs with 0 = background (the ~400 rare classes merged) and 1..59 the
    classes: 0 becomes the ignore index 255 and 1..59 become train ids 0..58; 255 stays ignore.
    The palette is the VOC colour map shifted by one (train id ``k`` gets VOC colour ``k + 1``).
    """
    check_split("pascal_context59", split, ("train", "val"))
    base = locate_root(
        root,
        "PASCAL-Context",
        ["VOCdevkit/VOC2010", "VOC2010", "."],
        ["JPEGImages", "SegmentationClassContext", f"ImageSets/SegmentationContext/{split}.txt"],
        EXPECTED,
    )
    ids = read_split_file(base / "ImageSets" / "SegmentationContext" / f"{split}.txt")
    return FileSegmentationDataset(
        [
            (base / "JPEGImages" / f"{id_}.jpg", base / "SegmentationClassContext" / f"{id_}.png")
            for id_ in ids
        ],
        root=base,
        split=split,
        classes=CONTEXT59_CLASSES,
        palette=voc_colormap(len(CONTEXT59_CLASSES) + 1)[1:],
        label_map=LabelMap.reduce_zero(len(CONTEXT59_CLASSES), "background"),
        transforms=transforms,
    )
