"""ADE20K / SceneParsing (ADEChallengeData2016), the ImageNet Parsing benchmark: 150 classes."""

from __future__ import annotations

from pathlib import Path

from ..base import FileSegmentationDataset, JointTransform
from ..io import LabelMap, list_files, locate_root
from ..palettes import voc_colormap
from ..registry import check_split, register_dataset

ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain",
    "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing",
    "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink",
    "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs", "runway", "case",
    "pool table", "pillow", "screen door", "stairway", "river", "bridge", "bookcase", "blind",
    "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm",
    "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth",
    "television receiver", "airplane", "dirt track", "apparel", "pole", "land", "bannister",
    "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van", "ship", "fountain",
    "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool", "barrel", "basket",
    "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen",
    "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan",
    "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator", "glass",
    "clock", "flag",
)  # fmt: skip
_FOLDERS = {"train": "training", "val": "validation"}
EXPECTED = (
    "ROOT/ADEChallengeData2016/images/{training,validation}/*.jpg and "
    "ROOT/ADEChallengeData2016/annotations/{training,validation}/*.png"
)


@register_dataset("ade20k")
def build_ade20k(
    *,
    root: str | Path | None = None,
    split: str = "train",
    transforms: JointTransform | None = None,
) -> FileSegmentationDataset:
    """ADE20K as released for the SceneParsing challenge (``ADEChallengeData2016.zip``).

    Layout: ``ROOT/ADEChallengeData2016/images/{training,validation}/*.jpg`` and
    ``.../annotations/{training,validation}/*.png`` with the same stems (``ROOT`` may also be the
    ``ADEChallengeData2016`` folder itself). Splits ``train`` (20,210 images) and ``val`` (2,000).

    Annotations are 8-bit PNGs: 0 means "other" and becomes the ignore index 255; 1..150 become
    train ids 0..149 (any other value is an error). The palette is the VOC colour map shifted by
    one (train id ``k`` gets VOC colour ``k + 1``).
    """
    check_split("ade20k", split, tuple(_FOLDERS))
    folder = _FOLDERS[split]
    base = locate_root(
        root,
        "ADE20K",
        ["ADEChallengeData2016", "."],
        [f"images/{folder}", f"annotations/{folder}"],
        EXPECTED,
    )
    images = list_files(base / "images" / folder, "*.jpg", EXPECTED)
    annotations = base / "annotations" / folder
    return FileSegmentationDataset(
        [(image, annotations / f"{image.stem}.png") for image in images],
        root=base,
        split=split,
        classes=ADE20K_CLASSES,
        palette=voc_colormap(len(ADE20K_CLASSES) + 1)[1:],
        label_map=LabelMap.reduce_zero(len(ADE20K_CLASSES), "other"),
        transforms=transforms,
    )
