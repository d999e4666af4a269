"""Cityscapes fine annotations, evaluated on the 19 trainIds."""

from __future__ import annotations

from pathlib import Path

from ..base import FileSegmentationDataset, JointTransform
from ..io import IGNORE_INDEX, LabelMap, list_files, locate_root
from ..registry import check_split, register_dataset

CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)  # fmt: skip
CITYSCAPES_PALETTE = [
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32),
]  # fmt: skip
# labelId -> trainId for the 19 evaluated classes (cityscapesScripts' labels.py); every other
# labelId in 0..33 (unlabeled, ego vehicle, ground, parking, rail track, guard rail, bridge,
# tunnel, polegroup, caravan, trailer, ...) is ignored.
LABEL_ID_TO_TRAIN_ID = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
    26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip
LABEL_IDS = LabelMap.from_pairs(
    [(label_id, LABEL_ID_TO_TRAIN_ID.get(label_id, IGNORE_INDEX)) for label_id in range(34)],
    len(CITYSCAPES_CLASSES),
    "labelIds 0..33",
)
TRAIN_IDS = LabelMap.identity(len(CITYSCAPES_CLASSES))
EXPECTED = (
    "ROOT/leftImg8bit/{train,val}/CITY/*_leftImg8bit.png and "
    "ROOT/gtFine/{train,val}/CITY/*_gtFine_labelIds.png (or *_gtFine_labelTrainIds.png)"
)


class CityscapesDataset(FileSegmentationDataset):
    """Cityscapes pairs whose masks are ``*_labelTrainIds.png`` (as is) or ``*_labelIds.png`` (mapped)."""

    def label_map_for(self, mask_path: Path) -> LabelMap:
        return TRAIN_IDS if mask_path.name.endswith("_labelTrainIds.png") else LABEL_IDS


@register_dataset("cityscapes")
def build_cityscapes(
    *,
    root: str | Path | None = None,
    split: str = "train",
    transforms: JointTransform | None = None,
) -> CityscapesDataset:
    """Cityscapes with fine annotations (2,975 train / 500 val images of 1024x2048).

    Layout: ``ROOT/leftImg8bit/{split}/{city}/{name}_leftImg8bit.png`` and
    ``ROOT/gtFine/{split}/{city}/{name}_gtFine_labelIds.png``, as unpacked from
    ``leftImg8bit_trainvaltest.zip`` and ``gtFine_trainvaltest.zip``. Splits ``train`` and ``val``
    (the test labels are withheld).

    Where ``{name}_gtFine_labelTrainIds.png`` exists (written by cityscapesScripts'
    ``createTrainIdLabelImgs.py``) it is used as is: values 0..18 and 255. Otherwise the labelIds
    (0..33) are mapped to the 19 trainIds with the official table, every other id to 255. The
    palette is Cityscapes' own.
    """
    check_split("cityscapes", split, ("train", "val"))
    base = locate_root(
        root,
        "Cityscapes",
        [".", "cityscapes"],
        [f"leftImg8bit/{split}", f"gtFine/{split}"],
        EXPECTED,
    )
    images = list_files(base / "leftImg8bit" / split, "*/*_leftImg8bit.png", EXPECTED)
    labels = base / "gtFine" / split
    train_id_masks = {path.name for path in labels.glob("*/*_gtFine_labelTrainIds.png")}
    samples = []
    for image in images:
        name = image.name[: -len("_leftImg8bit.png")]
        train_ids = f"{name}_gtFine_labelTrainIds.png"
        mask = train_ids if train_ids in train_id_masks else f"{name}_gtFine_labelIds.png"
        samples.append((image, labels / image.parent.name / mask))
    return CityscapesDataset(
        samples,
        root=base,
        split=split,
        classes=CITYSCAPES_CLASSES,
        palette=CITYSCAPES_PALETTE,
        label_map=LABEL_IDS,
        transforms=transforms,
    )
