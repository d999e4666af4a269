"""``fashion_scenes``: scenes of real garment photos (Fashion-MNIST), a garment's class on its pixels.

Fashion-MNIST (Xiao et al., 2017) holds 70,000 28 x 28 greyscale product photos of 10 kinds of
garment: 60,000 for training, 10,000 for testing. A scene here is a ``size x size`` canvas (default
256) with 2 to ``max_garments`` (default 4) of them at random positions, each upscaled (bilinear)
to a side drawn uniformly from ``[min_side, max_side]`` px (default 32-144), where the classes that
differ only in overall shape (T-shirt, shirt, pullover, coat) cannot be told apart from a small
window. Garments do not overlap (their boxes keep 4 px apart). The canvas is the context
benchmark's textured background; a garment's foreground (its upscaled intensity >= ``FOREGROUND``) is
pasted on it as it is.

**Labels**: 0 background, ``1 + k`` on the foreground of a garment of Fashion-MNIST class ``k``,
and 255 (ignored) on a 1 px band on either side of each foreground's edge, where thresholding an
upscaled photo is uncertain.

**Splits**: ``train`` scenes draw only training images; ``val`` only the first half of the test
images (0-4,999) and ``test`` only the second half (5,000-9,999), so no photo is in two splits.
Sample ``i`` of a split is drawn from a random stream seeded by ``(seed, split, i)``.

**Files**: the four standard IDX files, gzipped or not, in ``root`` (default
``/usr/share/datasets/fashion-mnist``, where Debian's and Ubuntu's ``apt-get install
dataset-fashion-mnist`` puts them): ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ...errors import DataError
from ..base import JointTransform, Sample, SegmentationDataset
from ..context import DEFAULT_NUM_SAMPLES, SPLIT_STREAMS, textured_background
from ..idx import find_idx, read_idx
from ..io import IGNORE_INDEX
from ..palettes import voc_colormap
from ..registry import check_int_options, check_split, register_dataset

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = (
    "background",
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
FOREGROUND = 32  # upscaled intensity (0-255) from which a pixel belongs to the garment
GAP = 4  # px between garment boxes
_FILES = {  # split -> (images, labels) stems
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_fashion_mnist(root: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``part`` (``"train"`` or ``"test"``) images ``uint8 (N, 28, 28)`` and labels
    ``uint8 (N,)`` from the IDX files in ``root``; a DataError names what is missing or wrong."""
    paths = [find_idx(root, stem) for stem in _FILES[part]]
    if None in paths:
        missing = [stem for stem, path in zip(_FILES[part], paths, strict=True) if path is None]
        raise DataError(
            f"fashion_scenes: {root} has no {' or '.join(missing)} (.gz or not); expected the "
            "four Fashion-MNIST IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
            "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte). On Debian or Ubuntu "
            "`apt-get install dataset-fashion-mnist` installs them in "
            f"{DEFAULT_ROOT}; elsewhere give their folder as data.root=DIR (in pdn data "
            "check: --root DIR)"
        )
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"fashion_scenes: {paths[0]} holds shape {list(images.shape)} and {paths[1]} "
            f"{list(labels.shape)}; expected (N, H, W) images and N labels"
        )
    if labels.size and int(labels.max()) > 9:
        raise DataError(f"fashion_scenes: {paths[1]} has label {int(labels.max())}, outside 0-9")
    return images, labels


def split_pool(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The photos a split draws from: images ``uint8 (N, 28, 28)`` and labels ``(N,)``."""
    images, labels = read_fashion_mnist(root, "train" if split == "train" else "test")
    if split != "train":
        half = len(images) // 2
        part = slice(0, half) if split == "val" else slice(half, None)
        images, labels = images[part], labels[part]
    if len(images) == 0:
        raise DataError(f"fashion_scenes: no images for split {split!r} in {root}")
    return images, labels


def _edge_band(foreground: np.ndarray) -> np.ndarray:
    """bool: pixels within 1 px (8-neighbourhood) of the edge of ``foreground``, on both sides."""
    padded = np.pad(foreground, 1)
    h, w = foreground.shape
    shifted = [padded[dr : dr + h, dc : dc + w] for dr in range(3) for dc in range(3)]
    grown = np.logical_or.reduce(shifted)
    shrunk = np.logical_and.reduce(shifted)
    return grown & ~shrunk


def _boxes(
    rng: np.random.Generator, size: int, count: int, sides: tuple[int, int]
) -> list[tuple[int, int, int]]:
    """Up to ``count`` non-overlapping squares ``(row, col, side)`` in a ``size`` canvas."""
    boxes: list[tuple[int, int, int]] = []
    for _ in range(50 * count):
        if len(boxes) == count:
            break
        side = int(rng.integers(sides[0], sides[1] + 1))
        row, col = (int(v) for v in rng.integers(0, size - side + 1, size=2))
        if all(
            row + side + GAP <= r
            or r + s + GAP <= row
            or col + side + GAP <= c
            or c + s + GAP <= col
            for r, c, s in boxes
        ):
            boxes.append((row, col, side))
    return boxes


@register_dataset("fashion_scenes")
class FashionScenesDataset(SegmentationDataset):
    """Scenes of Fashion-MNIST garments (see the module docstring).

    Options: ``size`` (64-1024,
    default 256), ``max_garments`` (2-8, default 4), ``min_side`` / ``max_side`` (garment side in
    px, default 32 / 144, at most ``size``), ``num_samples`` (2000 train, 200 val and test),
    ``seed``. ``ds[i]`` is ``(uint8 (3, size, size), int64 (size, size))``, the same for the same
    ``(root files, seed, split, i)``."""

    def __init__(
        self,
        *,
        root: str | Path | None = None,
        split: str = "train",
        transforms: JointTransform | None = None,
        size: int = 256,
        max_garments: int = 4,
        min_side: int = 32,
        max_side: int = 144,
        num_samples: int | None = None,
        seed: int = 0,
    ):
        super().__init__(transforms=transforms)
        self.split = check_split("fashion_scenes", split, tuple(SPLIT_STREAMS))
        check_int_options(
            "fashion_scenes",
            (
                ("size", size, 64, 1024),
                ("max_garments", max_garments, 2, 8),
                ("min_side", min_side, 8, size),
                ("max_side", max_side, min_side, size),
                ("seed", seed, 0, None),
                ("num_samples", num_samples, 1, None),
            ),
        )
        self.root = DEFAULT_ROOT if root is None else Path(root)
        self.size, self.max_garments, self.seed = size, max_garments, seed
        self.sides = (min_side, max_side)
        self.num_samples = DEFAULT_NUM_SAMPLES[split] if num_samples is None else num_samples
        self.classes = FASHION_CLASSES
        self.palette = voc_colormap(len(FASHION_CLASSES))
        self.photos = split_pool(self.root, self.split)

    def __len__(self) -> int:
        return self.num_samples

    def garments(self, index: int) -> list[tuple[int, int, int, int]]:
        """Sample ``index``'s garments: ``(photo index in the split's pool, row, col, side)``."""
        rng = np.random.default_rng([self.seed, SPLIT_STREAMS[self.split], index])
        count = int(rng.integers(2, self.max_garments + 1))
        boxes = _boxes(rng, self.size, count, self.sides)
        picks = rng.integers(len(self.photos[0]), size=len(boxes))
        return [(int(p), r, c, s) for p, (r, c, s) in zip(picks, boxes, strict=True)]

    def load(self, index: int) -> Sample:
        images, labels = self.photos
        rng = np.random.default_rng([self.seed, SPLIT_STREAMS[self.split], index, 1])
        canvas = textured_background(rng, self.size)
        mask = np.zeros((self.size, self.size), dtype=np.uint8)
        for photo, row, col, side in self.garments(index):
            scaled = np.asarray(Image.fromarray(images[photo]).resize((side, side), Image.BILINEAR))
            foreground = scaled >= FOREGROUND
            window = (slice(row, row + side), slice(col, col + side))
            canvas[window][foreground] = scaled[foreground, None]
            mask[window][foreground] = 1 + int(labels[photo])
        mask[_edge_band(mask > 0)] = IGNORE_INDEX  # garments never touch: one band each
        image = torch.from_numpy(np.ascontiguousarray(canvas.transpose(2, 0, 1)))
        return image, torch.from_numpy(mask).to(torch.int64)

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, size={self.size}, root={str(self.root)!r})"
