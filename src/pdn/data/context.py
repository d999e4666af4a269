"""The context benchmark: objects whose class only a cue far away in the image can tell.

PDN's claim is that diffusing information across the whole feature map lets a site use context
far beyond its local receptive field. This generated dataset (``build_dataset("context")``)
measures exactly that, on a CPU, in minutes: every object looks the same whatever its class, and
the class is written only in a coloured stripe at least half the image away.

**A sample.** A ``size x size`` RGB image (default 128x128) and its mask, 5 classes:

- *background* (class 0): a random base colour with smooth low-frequency variation and per-pixel
  noise, every channel within ``[15, 115]``;
- *the cue* (class 0 too, locally recognisable): a stripe ``cue_width = round(3 * size / 32)``
  pixels wide (12 at 128) along one side of the image (top, left, bottom or right), painted in
  one of 4 saturated colours (red, green, blue, yellow);
- *the objects* (class ``1 + cue colour``): 3 to 6 flat grey ``(180, 180, 180)`` squares or discs,
  sides ``size/12 .. size/5`` (10-25 px at 128), placed at random in the band on the far side of
  the image whose every pixel is at least ``size / 2`` (64 px) from every cue pixel.

**Generation.** Sample ``i`` of a split draws from two independent random streams seeded by
``(seed, split, i)``: one gives the cue colour (uniform over the 4), the other everything else
(the side, the background, the number, shapes, sizes and places of the objects). Outside the cue
stripe the image therefore does not depend on the colour at all: the same layout painted with
two colours differs only in the stripe, while the objects' labels differ. Side and colour are
independent, so nothing local (position, count, size, appearance) says anything about the class.
Generation is deterministic, on the fly in ``ds[i]``, vectorised with numpy; the ``train``,
``val`` and ``test`` splits use different streams and never coincide.

**The best a purely local model can do.** Call a model *local* if its prediction at a pixel
depends only on a window that contains no cue pixel (any window narrower than ``size / 2``
around an object pixel qualifies). On object pixels its predictions are then independent of
their class. Let ``pi_j`` be class ``j``'s share of the object pixels (``1/4`` in expectation,
since the colour is uniform and independent of the layout) and ``q_j`` the share of object pixels
the model labels ``j``. Independence gives ``TP_j = q_j pi_j N`` for ``N`` object pixels, so

    IoU_j = q_j pi_j / (pi_j + q_j - q_j pi_j)     (= q_j / (1 + 3 q_j) for pi_j = 1/4).

Labelling object pixels as background or background pixels as objects can only lower the scores,
so ``sum_j q_j = 1``. The sum of the concave ``IoU_j`` is largest at ``q_j`` proportional to
``pi_j / (1 - pi_j)``, where ``sum_j IoU_j = s / (1 + s)`` with ``s = sum_j pi_j / (1 - pi_j)``.
With ``pi_j = 1/4``: ``q_j = 1/4`` and ``IoU_j = 1/7`` for each of the 4 object classes. The
background can be perfect (grey objects are easy to tell from the background), so the best mIoU
over the 5 classes is

    (1 + 4/7) / 5 = 11/35 ~= 0.314        (a local model's ceiling; a model that reads the cue: 1.0)

and always labelling objects with the same class scores ``(1 + 1/4) / 5 = 0.25``. The ceiling
holds in expectation over the colour draws. On a finite split the realised shares differ a little
from 1/4 (``local_miou_ceiling(pixel_counts)`` gives the bound for given shares: 0.3144 on the
default 200-sample ``val`` split) and a local model's score fluctuates around its expectation by
chance: measured on that split, a standard deviation of 0.0004 when its guesses are independent
per pixel and 0.017 when one guess is shared by all objects of an image (the worst case). A
validation mIoU above about 0.37 (three of those deviations) therefore needs long-range context.

**Segmented cues** (option ``cue_segments=K``). With one colour per scene the class is a property
of the whole image, which a head that pools the whole image (PPM's 1x1 bin, ASPP's image pooling)
reads without carrying anything from the cue to the object. With ``K > 1`` the stripe is cut into
``K`` equal runs of columns (cue on top), each with a colour drawn independently and uniformly,
and an object pixel is labelled ``1 + `` the colour of the run in line with its column: the class
is then tied to a place in the image, and the image's colour summary leaves ``K`` candidates. The
local ceiling above is unchanged (each object pixel's class is still uniform and independent of
everything in a window without cue pixels).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from ..vocabulary import MIN_INPUT_SIZE
from .base import JointTransform, Sample, SegmentationDataset
from .registry import check_int_options, check_split, register_dataset

CUE_COLORS = ((220, 40, 40), (40, 190, 40), (50, 90, 230), (225, 205, 40))
OBJECT_GREY = 180
CONTEXT_CLASSES = (
    "background",
    "red-cue object",
    "green-cue object",
    "blue-cue object",
    "yellow-cue object",
)
CONTEXT_PALETTE = [(0, 0, 0), *CUE_COLORS]
SIDES = ("top", "left", "bottom", "right")  # np.rot90(canonical, k) puts the top stripe on SIDES[k]
SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2}
DEFAULT_NUM_SAMPLES = {"train": 2000, "val": 200, "test": 200}
CONTEXT_LOCAL_MIOU_CEILING = 11 / 35
MIN_SIZE = MIN_INPUT_SIZE  # the smallest scene the networks accept


def cue_width_for(size: int) -> int:
    """The cue stripe's width for an image of ``size`` pixels: ``round(3 * size / 32)``."""
    return max(2, round(3 * size / 32))


def far_band_start(size: int) -> int:
    """First row of the object band when the cue is on top: every band pixel is >= size/2 from the cue."""
    return cue_width_for(size) - 1 + math.ceil(size / 2)


@functools.lru_cache(maxsize=8)
def _smoothing_matrix(size: int, knots: int = 5) -> np.ndarray:
    """``(size, knots)`` linear-interpolation weights: ``M @ C @ M.T`` upsamples a knot grid."""
    position = np.linspace(0, knots - 1, size)
    left = np.minimum(np.floor(position).astype(int), knots - 2)
    frac = position - left
    matrix = np.zeros((size, knots))
    matrix[np.arange(size), left] = 1 - frac
    matrix[np.arange(size), left + 1] = frac
    return matrix


@functools.lru_cache(maxsize=64)
def _disc(diameter: int) -> np.ndarray:
    """Boolean ``(d, d)`` disc inscribed in a ``d x d`` box."""
    centre = (diameter - 1) / 2
    yy, xx = np.ogrid[:diameter, :diameter]
    return (yy - centre) ** 2 + (xx - centre) ** 2 <= (diameter / 2) ** 2


@dataclass(frozen=True)
class ContextLayout:
    """Everything in a sample except the cue colour, in canonical orientation (cue on top).

    ``background``: ``uint8 (size, size, 3)``; ``objects``: ``bool (size, size)``; ``side``: index
    into :data:`SIDES`; ``cue_width``: stripe width in pixels.
    """

    background: np.ndarray
    objects: np.ndarray
    side: int
    cue_width: int


def textured_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """``uint8 (size, size, 3)``: a random base colour with smooth low-frequency variation and
    per-pixel noise, every channel within ``[15, 115]``."""
    base = rng.integers(45, 86, size=3)
    knots = rng.uniform(-18, 18, size=(5, 5))
    matrix = _smoothing_matrix(size)
    smooth = np.rint(matrix @ knots @ matrix.T).astype(np.int16)
    noise = rng.integers(-12, 13, size=(size, size), dtype=np.int16)
    return ((smooth + noise)[:, :, None] + base.astype(np.int16)).astype(np.uint8)


def draw_layout(rng: np.random.Generator, size: int = 128) -> ContextLayout:
    """Draw a sample's layout (side, background texture, objects) from ``rng``; never the colour."""
    cue_width = cue_width_for(size)
    side = int(rng.integers(4))
    background = textured_background(rng, size)

    objects = np.zeros((size, size), dtype=bool)
    count = int(rng.integers(3, 7))
    band = far_band_start(size)
    smallest, largest = max(2, size // 12), max(3, size // 5)
    diameters = rng.integers(smallest, largest + 1, size=count)
    tops = band + (rng.random(count) * (size - diameters + 1 - band)).astype(int)
    lefts = (rng.random(count) * (size - diameters + 1)).astype(int)
    discs = rng.random(count) < 0.5
    for d, top, left, disc in zip(
        diameters.tolist(), tops.tolist(), lefts.tolist(), discs.tolist(), strict=True
    ):
        if disc:
            objects[top : top + d, left : left + d] |= _disc(d)
        else:
            objects[top : top + d, left : left + d] = True
    return ContextLayout(background, objects, side, cue_width)


def segment_of_column(size: int, segments: int) -> np.ndarray:
    """``int (size,)``: which of ``segments`` equal cue segments each column (cue on top) lies under."""
    return np.arange(size) * segments // size


def paint(layout: ContextLayout, colours: int | Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Paint ``layout`` with cue colours: one colour (0..3), or one per cue segment.

    With ``K`` colours the stripe (cue on top) is cut into ``K`` equal runs of columns, run ``k``
    painted ``CUE_COLORS[colours[k]]``, and an object pixel is labelled ``1 + colours[k]`` for the
    run ``k`` above its column. Returns ``image`` ``uint8 (3, size, size)`` and ``mask``
    ``uint8 (size, size)`` (0 on background and cue), rotated so that the cue lies on
    ``SIDES[layout.side]``.
    """
    colours = np.atleast_1d(np.asarray(colours, dtype=np.uint8))
    size = layout.objects.shape[1]
    per_column = colours[segment_of_column(size, len(colours))]  # (size,)
    image = layout.background.copy()
    image[layout.objects] = OBJECT_GREY
    image[: layout.cue_width] = np.asarray(CUE_COLORS, dtype=np.uint8)[per_column]
    mask = layout.objects.astype(np.uint8) * (1 + per_column)[None, :]
    image = np.rot90(image, layout.side)
    mask = np.rot90(mask, layout.side)
    return np.ascontiguousarray(image.transpose(2, 0, 1)), np.ascontiguousarray(mask)


def cue_mask(layout: ContextLayout) -> np.ndarray:
    """``bool (size, size)``: the cue stripe's pixels, in the sample's (rotated) orientation."""
    stripe = np.zeros(layout.objects.shape, dtype=bool)
    stripe[: layout.cue_width] = True
    return np.ascontiguousarray(np.rot90(stripe, layout.side))


def local_miou_ceiling(object_pixels: Sequence[float]) -> float:
    """The best expected mIoU of a purely local model, given each object class's pixel count.

    ``object_pixels[j]``: pixels of object class ``j`` (``j = 0..3`` for classes 1..4); the
    background counts as perfect. Returns ``(1 + s / (1 + s)) / (K + 1)`` with
    ``s = sum_j pi_j / (1 - pi_j)`` and ``pi_j`` the shares (see the module docstring);
    ``11/35`` for equal shares.
    """
    counts = np.asarray(object_pixels, dtype=np.float64)
    if counts.ndim != 1 or len(counts) < 2 or (counts <= 0).any():
        raise ValueError("need a positive pixel count for each of at least two object classes")
    shares = counts / counts.sum()
    s = float(np.sum(shares / (1 - shares)))
    return (1 + s / (1 + s)) / (len(counts) + 1)


@register_dataset("context")
class ContextDataset(SegmentationDataset):
    """The generated context benchmark (see the module docstring for the design and the ceiling).

    Options: ``size`` (image side, >= 32, default 128), ``num_samples`` (default 2000 for
    ``train``, 200 for ``val`` and ``test``), ``seed`` (default 0), ``cue_segments`` (default 1:
    one cue colour per scene; ``K > 1``: the stripe is cut into ``K`` runs of columns with a
    colour each, and an object pixel takes the colour of the run in line with it, so a summary
    of the whole image no longer names its class). ``ds[i]`` is
    ``(uint8 (3, size, size), int64 (size, size))``, the same for the same ``(seed, split, i)``.
    ``root`` must be ``None``: nothing is read from disk.
    """

    def __init__(
        self,
        *,
        root: str | Path | None = None,
        split: str = "train",
        transforms: JointTransform | None = None,
        size: int = 128,
        num_samples: int | None = None,
        seed: int = 0,
        cue_segments: int = 1,
    ):
        super().__init__(transforms=transforms)
        self.split = check_split("context", split, tuple(SPLIT_STREAMS))
        if root is not None:
            raise ConfigError("dataset 'context' is generated; it takes no root")
        check_int_options(
            "context",
            (
                ("size", size, MIN_SIZE, None),
                ("seed", seed, 0, None),
                ("num_samples", num_samples, 1, None),
                ("cue_segments", cue_segments, 1, None),
            ),
        )
        if cue_segments > size // cue_width_for(size):
            raise ConfigError(
                f"context option cue_segments must be at most size / cue width = "
                f"{size // cue_width_for(size)} for size {size}, got {cue_segments}"
            )
        self.size = size
        self.seed = seed
        self.cue_segments = cue_segments
        self.num_samples = DEFAULT_NUM_SAMPLES[split] if num_samples is None else num_samples
        self.classes = CONTEXT_CLASSES
        self.palette = list(CONTEXT_PALETTE)

    def __len__(self) -> int:
        return self.num_samples

    def colours(self, index: int) -> tuple[int, ...]:
        """The cue colours (0..3) of sample ``index``, one per cue segment (see :func:`paint`)."""
        rng = np.random.default_rng([self.seed, SPLIT_STREAMS[self.split], index, 1])
        return tuple(int(c) for c in rng.integers(4, size=self.cue_segments))

    def colour(self, index: int) -> int:
        """The cue colour (0..3) of sample ``index`` with one cue segment: objects are ``1 + colour``."""
        if self.cue_segments != 1:
            raise ValueError(f"a scene with {self.cue_segments} cue segments has one colour each")
        return self.colours(index)[0]

    def layout(self, index: int) -> ContextLayout:
        """Everything of sample ``index`` but its colour (drawn from a stream of its own)."""
        return draw_layout(
            np.random.default_rng([self.seed, SPLIT_STREAMS[self.split], index, 0]), self.size
        )

    def load(self, index: int) -> Sample:
        image, mask = paint(self.layout(index), self.colours(index))
        return torch.from_numpy(image), torch.from_numpy(mask).to(torch.int64)

    def __repr__(self) -> str:
        segments = f", cue_segments={self.cue_segments}" if self.cue_segments > 1 else ""
        return f"{super().__repr__()[:-1]}, size={self.size}, seed={self.seed}{segments})"
