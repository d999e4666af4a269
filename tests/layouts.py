"""Writers of small datasets in the exact on-disk layouts pdn reads, for the data tests.

Each ``write_<layout>(root, split, samples)`` takes ``samples = [(stem, image, raw_mask)]`` with
``image`` ``uint8 (H, W, 3)`` and ``raw_mask`` ``uint8 (H, W)`` holding the values exactly as the
dataset stores them on disk, writes the files (and split lists), and returns the
``[(image_path, mask_path)]`` it wrote. ``LAYOUTS`` describes each layout for parametrised tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from pdn.data.palettes import flat_palette, voc_colormap

Samples = list[tuple[str, np.ndarray, np.ndarray]]
Pairs = list[tuple[Path, Path]]


def random_image(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def save_image(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, **({"quality": 95} if path.suffix == ".jpg" else {}))
    return path


def save_mask(path: Path, labels: np.ndarray, *, palette: bool = False) -> Path:
    """A single-channel 8-bit PNG; with ``palette`` a mode-P PNG carrying VOC's colour map."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(labels.astype(np.uint8))
    if palette:
        image.putpalette(flat_palette(voc_colormap(256)))
        assert image.mode == "P"
    image.save(path)
    return path


def _append_ids(path: Path, stems: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.writelines(f"{stem}\n" for stem in stems)


def write_ade20k(root: Path, split: str, samples: Samples) -> Pairs:
    base = root / "ADEChallengeData2016"
    folder = {"train": "training", "val": "validation"}[split]
    return [
        (
            save_image(base / "images" / folder / f"{stem}.jpg", image),
            save_mask(base / "annotations" / folder / f"{stem}.png", raw),
        )
        for stem, image, raw in samples
    ]


def write_voc(root: Path, split: str, samples: Samples, *, aug: bool = False) -> Pairs:
    base = root / "VOCdevkit" / "VOC2012"
    masks, list_name = ("SegmentationClassAug", "trainaug") if aug else ("SegmentationClass", split)
    pairs = [
        (
            save_image(base / "JPEGImages" / f"{stem}.jpg", image),
            # SegmentationClass holds palette PNGs; the SBD-augmented masks are grayscale PNGs.
            save_mask(base / masks / f"{stem}.png", raw, palette=not aug),
        )
        for stem, image, raw in samples
    ]
    _append_ids(
        base / "ImageSets" / "Segmentation" / f"{list_name}.txt", [s for s, _, _ in samples]
    )
    return pairs


def write_pascal_context59(root: Path, split: str, samples: Samples) -> Pairs:
    base = root / "VOCdevkit" / "VOC2010"
    pairs = [
        (
            save_image(base / "JPEGImages" / f"{stem}.jpg", image),
            save_mask(base / "SegmentationClassContext" / f"{stem}.png", raw),
        )
        for stem, image, raw in samples
    ]
    _append_ids(
        base / "ImageSets" / "SegmentationContext" / f"{split}.txt", [s for s, _, _ in samples]
    )
    return pairs


def write_cityscapes(root: Path, split: str, samples: Samples, *, train_ids: bool = False) -> Pairs:
    """Stems are ``city_000000_000019``-style names; the city is their first part."""
    suffix = "_gtFine_labelTrainIds.png" if train_ids else "_gtFine_labelIds.png"
    pairs = []
    for stem, image, raw in samples:
        city = stem.split("_")[0]
        pairs.append(
            (
                save_image(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", image),
                save_mask(root / "gtFine" / split / city / f"{stem}{suffix}", raw),
            )
        )
    return pairs


def write_cityscapes_train_ids(root: Path, split: str, samples: Samples) -> Pairs:
    return write_cityscapes(root, split, samples, train_ids=True)


FOLDER_CLASSES = ("background", "head", "torso")


def write_folder(root: Path, split: str, samples: Samples) -> Pairs:
    """``images/``, ``masks/`` (palette PNGs), ``classes.txt`` and ``{split}.txt`` listing the stems."""
    (root / "classes.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("\n".join(FOLDER_CLASSES) + "\n")
    _append_ids(root / f"{split}.txt", [s for s, _, _ in samples])
    return [
        (
            save_image(root / "images" / f"{stem}.png", image),
            save_mask(root / "masks" / f"{stem}.png", raw, palette=True),
        )
        for stem, image, raw in samples
    ]


@dataclass(frozen=True)
class Layout:
    """A layout for parametrised tests.

    ``raw_to_train`` lists valid on-disk values and the train id each must become; ``bad_label``
    is an on-disk value the dataset must refuse; ``stem`` makes a valid file stem from a number.
    """

    dataset: str
    write: Callable[[Path, str, Samples], Pairs]
    raw_to_train: dict[int, int]
    bad_label: int
    options: dict = field(default_factory=dict)
    stem: Callable[[int], str] = "{:06d}".format

    def samples(self, count: int = 2, height: int = 12, width: int = 16, seed: int = 0) -> Samples:
        """``count`` samples whose masks cycle through every valid raw value, in varied positions."""
        raw_values = np.array(sorted(self.raw_to_train), dtype=np.uint8)
        rng = np.random.default_rng(seed)
        result = []
        for k in range(count):
            order = rng.integers(0, len(raw_values), size=(height, width))
            order.flat[: len(raw_values)] = np.arange(len(raw_values))
            result.append((self.stem(k), random_image(height, width, seed + k), raw_values[order]))
        return result

    def expected(self, raw: np.ndarray) -> np.ndarray:
        lut = np.zeros(256, dtype=np.int64)
        for value, train_id in self.raw_to_train.items():
            lut[value] = train_id
        return lut[raw]


CITYSCAPES_RAW = {i: 255 for i in range(34)} | {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
    26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip

LAYOUTS = {
    "ade20k": Layout("ade20k", write_ade20k, {0: 255, 1: 0, 2: 1, 75: 74, 150: 149}, 151, stem="ADE_train_{:08d}".format),
    "voc": Layout("voc", write_voc, {0: 0, 1: 1, 15: 15, 20: 20, 255: 255}, 21, stem="2007_{:06d}".format),
    "pascal_context59": Layout("pascal_context59", write_pascal_context59, {0: 255, 1: 0, 30: 29, 59: 58, 255: 255}, 60, stem="2008_{:06d}".format),
    "cityscapes": Layout("cityscapes", write_cityscapes, CITYSCAPES_RAW, 34, stem="aachen_{:06d}_000019".format),
    "cityscapes_train_ids": Layout("cityscapes", write_cityscapes_train_ids, {0: 0, 10: 10, 18: 18, 255: 255}, 19, stem="bremen_{:06d}_000019".format),
    "folder": Layout("folder", write_folder, {0: 0, 1: 1, 2: 2, 255: 255}, 3, stem="person{:03d}".format),
}  # fmt: skip
