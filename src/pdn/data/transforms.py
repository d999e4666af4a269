"""Joint image-and-mask transforms of the standard segmentation recipe, seeded and reproducible.

Every transform is called as ``transform(image, mask, generator=None) -> (image, mask)``:

- ``image``: ``uint8 (3, H, W)`` (as datasets return it) until :class:`Normalize`, which turns it
  into ``float32 (3, H, W)``; geometric transforms also accept a float image;
- ``mask``: ``int64 (H, W)`` of train ids with 255 as ignore. Masks are only ever copied, padded
  or sampled with nearest-neighbour lookups, so a mask never holds a value it did not hold
  before, except the ignore label 255 where padding or rotation brings in pixels from outside;
- ``generator``: every random draw comes from it (the global torch RNG when ``None``), so a
  training loop that seeds a ``torch.Generator`` per sample (e.g. from ``(seed, epoch, index)``)
  and calls ``dataset.sample(index, generator)`` gets the same crops, flips and colours on every
  run, whatever the number of workers.

The ready-made pipelines are :func:`train_transforms` and :func:`eval_transforms`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

from ..models.backbones.base import Normalization
from .base import JointTransform, Sample
from .io import IGNORE_INDEX


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _randint(high: int, generator: torch.Generator | None) -> int:
    """Uniform integer in ``[0, high)``."""
    return int(torch.randint(high, (), generator=generator))


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if height < 1 or width < 1:
        raise ValueError(f"size must be positive, got {size}")
    return int(height), int(width)


def _fill_colour(fill: float | Sequence[float], image: torch.Tensor) -> torch.Tensor:
    """``fill`` as a ``(C, 1, 1)`` tensor of the image's dtype."""
    values = torch.as_tensor(fill, dtype=torch.float32).flatten()
    values = values.expand(image.shape[0]) if values.numel() == 1 else values
    return values.to(image.dtype).view(-1, 1, 1)


def _to_float(image: torch.Tensor) -> torch.Tensor:
    return image.to(torch.float32) if image.dtype == torch.uint8 else image


def _like(result: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Back to ``image``'s dtype: uint8 images are rounded (they never leave [0, 255] here)."""
    if image.dtype == torch.uint8:
        return result.round().clamp_(0, 255).to(torch.uint8)
    return result


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) resize of ``(3, H, W)`` to ``size = (h, w)``."""
    if tuple(image.shape[-2:]) == size:
        return image
    resized = F.interpolate(
        _to_float(image)[None], size=size, mode="bilinear", align_corners=False, antialias=True
    )
    return _like(resized[0], image)


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of an ``(H, W)`` mask to ``size``: values are copied, never mixed."""
    if tuple(mask.shape) == size:
        return mask
    resized = F.interpolate(mask[None, None].to(torch.float32), size=size, mode="nearest-exact")
    return resized[0, 0].to(mask.dtype)


class Compose:
    """Apply ``transforms`` in order, passing the same generator to each."""

    def __init__(self, transforms: Sequence[JointTransform]):
        self.transforms = list(transforms)

    def __call__(
        self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> Sample:
        for transform in self.transforms:
            image, mask = transform(image, mask, generator)
        return image, mask

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


class RandomScale:
    """Resize by a factor drawn uniformly from ``scale_range``: bilinear image, nearest mask.

    ``(3, H, W), (H, W) -> (3, h, w), (h, w)`` with ``h = max(1, round(s * H))`` (same for ``w``).
    """

    def __init__(self, scale_range: tuple[float, float] = (0.5, 2.0)):
        low, high = scale_range
        if not 0 < low <= high:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {scale_range}")
        self.scale_range = (float(low), float(high))

    def __call__(
        self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> Sample:
        scale = _uniform(*self.scale_range, generator)
        height, width = mask.shape
        size = (max(1, round(scale * height)), max(1, round(scale * width)))
        return resize_image(image, size), resize_mask(mask, size)

    def __repr__(self) -> str:
        return f"RandomScale({self.scale_range})"


class RandomCrop:
    """Crop ``size = (h, w)`` at a uniformly random place, padding first where the image is smaller.

    Padding goes to the bottom and right: the image gets ``fill`` (a value or an RGB triple, e.g.
    the normalisation's mean colour so that padding normalises to zero), the mask gets
    ``ignore_index`` so that padded pixels never count in the loss. Output ``(3, h, w), (h, w)``.
    """

    def __init__(
        self,
        size: int | Sequence[int],
        *,
        fill: float | Sequence[float] = 0,
        ignore_index: int = IGNORE_INDEX,
    ):
        self.size = _pair(size)
        self.fill = fill
        self.ignore_index = ignore_index

    def __call__(
        self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> Sample:
        crop_h, crop_w = self.size
        height, width = mask.shape
        if height < crop_h or width < crop_w:
            padded_h, padded_w = max(height, crop_h), max(width, crop_w)
            padded = (
                _fill_colour(self.fill, image).expand(image.shape[0], padded_h, padded_w).clone()
            )
            padded[:, :height, :width] = image
            padded_mask = mask.new_full((padded_h, padded_w), self.ignore_index)
            padded_mask[:height, :width] = mask
            image, mask, height, width = padded, padded_mask, padded_h, padded_w
        top = _randint(height - crop_h + 1, generator)
        left = _randint(width - crop_w + 1, generator)
        return image[:, top : top + crop_h, left : left + crop_w], mask[
            top : top + crop_h, left : left + crop_w
        ]

    def __repr__(self) -> str:
        return f"RandomCrop({self.size}, fill={self.fill})"


class RandomHorizontalFlip:
    """Mirror image and mask left-right together with probability ``p``."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(
        self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> Sample:
        if float(torch.rand((), generator=generator)) < self.p:
            return image.flip(-1), mask.flip(-1)
        return image, mask

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


def _hue_rotation(degrees: float) -> torch.Tensor:
    """3x3 rotation of RGB space about the grey axis by ``degrees`` (greys stay put)."""
    angle = math.radians(degrees)
    axis = torch.full((3,), 1 / math.sqrt(3))
    cross = torch.tensor(
        [[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]]
    )
    return (
        math.cos(angle) * torch.eye(3)
        + math.sin(angle) * cross
        + (1 - math.cos(angle)) * torch.outer(axis, axis)
    )


class ColorJitter:
    """Photometric distortion of a ``uint8 (3, H, W)`` image; the mask passes through.

    Each of these is applied with probability ``p``, in this order, on values in ``[0, 255]``:
    brightness (add ``U(-brightness, brightness)``), contrast (blend with the image's mean grey by
    a factor ``U(contrast)``), saturation (blend with the pixel's grey by ``U(saturation)``), and
    a light hue shift (rotate the colour about the grey axis by ``U(-hue, hue)`` degrees). The
    result is rounded and saturated to ``[0, 255]`` like any colour adjustment of an 8-bit image.
    """

    def __init__(
        self,
        brightness: float = 32.0,
        contrast: tuple[float, float] = (0.5, 1.5),
        saturation: tuple[float, float] = (0.5, 1.5),
        hue: float = 18.0,
        p: float = 0.5,
    ):
        self.brightness, self.contrast, self.saturation, self.hue, self.p = (
            brightness,
            contrast,
            saturation,
            hue,
            p,
        )

    def __call__(
        self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> Sample:
        if image.dtype != torch.uint8:
            raise TypeError("ColorJitter expects a uint8 image; put it before Normalize")
        draws = torch.rand(8, generator=generator).tolist()
        x = image.to(torch.float32)
        weights = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
        if draws[0] < self.p:
            x = x + (2 * draws[1] - 1) * self.brightness
        if draws[2] < self.p:
            factor = self.contrast[0] + (self.contrast[1] - self.contrast[0]) * draws[3]
            x = factor * x + (1 - factor) * (x * weights).sum(0).mean()
        if draws[4] < self.p:
            factor = self.saturation[0] + (self.saturation[1] - self.saturation[0]) * draws[5]
            x = factor * x + (1 - factor) * (x * weights).sum(0, keepdim=True)
        if draws[6] < self.p:
            x = torch.einsum("ij,jhw->ihw", _hue_rotation((2 * draws[7] - 1) * self.hue), x)
        return x.round().clamp_(0, 255).to(torch.uint8), mask

    def __repr__(self) -> str:
        return f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, saturation={self.saturation}, hue={self.hue}, p={self.p})"


def rotate(
    image: torch.Tensor,
    mask: torch.Tensor,
    degrees: float,
    *,
    fill: float | Sequence[float] = 0,
    ignore_index: int = IGNORE_INDEX,
) -> Sample:
    """Rotate ``(3, H, W)`` and ``(H, W)`` about the centre by ``degrees`` (counter-clockwise).

    Same size out. Image bilinear, mask nearest; pixels from outside the input get ``fill`` in the
    image (blended at the edge) and ``ignore_index`` in the mask.
    """
    angle = math.radians(degrees)
    height, width = mask.shape
    cos, sin = math.cos(angle), math.sin(angle)
    # grid_sample works in [-1, 1] coordinates, where a pixel-space rotation picks up the aspect ratio.
    theta = torch.tensor([[cos, -sin * height / width, 0.0], [sin * width / height, cos, 0.0]])
    grid = F.affine_grid(theta[None], [1, 1, height, width], align_corners=False)
    ones = torch.ones(1, 1, height, width)
    weight = F.grid_sample(ones, grid, mode="bilinear", align_corners=False)[0]
    rotated = F.grid_sample(_to_float(image)[None], grid, mode="bilinear", align_corners=False)[0]
    rotated = rotated + (1 - weight) * _fill_colour(fill, rotated)
    inside = F.grid_sample(ones, grid, mode="nearest", align_corners=False)[0, 0] > 0.5
    sampled = F.grid_sample(
        mask[None, None].to(torch.float32), grid, mode="nearest", align_corners=False
    )[0, 0]
    rotated_mask = torch.where(inside, sampled.to(mask.dtype), torch.full_like(mask, ignore_index))
    return _like(rotated, image), rotated_mask


class RandomRotation:
    """Rotate image and mask about the centre by an angle drawn from ``U(-degrees, degrees)``.

    The output keeps the input size ``(3, H, W), (H, W)``. The image is sampled bilinearly, the
    mask by nearest neighbour; pixels that come from outside the input get ``fill`` in the image
    (blended at the edge) and ``ignore_index`` in the mask.
    """

    def __init__(
        self, degrees: float, *, fill: float | Sequence[float] = 0, ignore_index: int = IGNORE_INDEX
    ):
        if degrees < 0:
            raise ValueError(f"degrees must be >= 0, got {degrees}")
        self.degrees, self.fill, self.ignore_index = float(degrees), fill, ignore_index

    def __call__(
        self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> Sample:
        angle = _uniform(-self.degrees, self.degrees, generator)
        return rotate(image, mask, angle, fill=self.fill, ignore_index=self.ignore_index)

    def __repr__(self) -> str:
        return f"RandomRotation({self.degrees}, fill={self.fill})"


class Normalize:
    """``uint8 (3, H, W)`` -> ``float32 (3, H, W)``: scale to ``[0, 1]``, then ``(x - mean) / std``."""

    def __init__(self, normalization: Normalization):
        self.normalization = normalization

    def __call__(
        self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> Sample:
        if image.dtype != torch.uint8:
            raise TypeError(f"Normalize expects a uint8 image, got {image.dtype}")
        return self.normalization(image.to(torch.float32) / 255.0), mask

    def __repr__(self) -> str:
        return f"Normalize({self.normalization})"


class Resize:
    """Resize keeping the aspect ratio: the ``side`` ("short" or "long") becomes ``size`` pixels.

    The other side is rounded (``round(W * size / H)`` for a landscape image's short side ``H``).
    The image is resized bilinearly. The mask keeps its size unless ``resize_mask=True`` (nearest):
    evaluation scores at the annotation's own resolution, so the caller upsamples logits to the
    mask's size, as the field reports results.
    """

    def __init__(
        self, size: int, *, side: Literal["short", "long"] = "short", resize_mask: bool = False
    ):
        if side not in ("short", "long"):
            raise ValueError(f"side must be 'short' or 'long', got {side!r}")
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        self.size, self.side, self.resize_mask = int(size), side, resize_mask

    def target_size(self, height: int, width: int) -> tuple[int, int]:
        reference = min(height, width) if self.side == "short" else max(height, width)
        scale = self.size / reference
        return max(1, round(height * scale)), max(1, round(width * scale))

    def __call__(
        self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> Sample:
        size = self.target_size(*image.shape[-2:])
        return resize_image(image, size), (resize_mask(mask, size) if self.resize_mask else mask)

    def __repr__(self) -> str:
        return f"Resize({self.size}, side={self.side!r}, resize_mask={self.resize_mask})"


def mean_colour(normalization: Normalization) -> tuple[int, int, int]:
    """The normalisation's mean as an 8-bit RGB colour: padding with it normalises to about zero."""
    return tuple(round(255 * m) for m in normalization.mean)  # type: ignore[return-value]


def train_transforms(
    normalization: Normalization,
    crop_size: int | Sequence[int],
    scale_range: tuple[float, float] | None = (0.5, 2.0),
    flip: bool = True,
    jitter: bool = True,
    rotation: float = 0.0,
) -> Compose:
    """The standard training pipeline: ``uint8 (3, H, W), (H, W) -> float32 (3, h, w), (h, w)``.

    Random scale in ``scale_range`` (skipped if ``None``), random rotation by up to ``rotation``
    degrees (if > 0), random crop to ``crop_size`` padded with the mean colour / 255, horizontal
    flip (if ``flip``), photometric jitter (if ``jitter``), then normalisation by
    ``normalization`` (the backbone's own ``.normalization``).
    """
    fill = mean_colour(normalization)
    steps: list[JointTransform] = []
    if scale_range is not None:
        steps.append(RandomScale(scale_range))
    if rotation > 0:
        steps.append(RandomRotation(rotation, fill=fill))
    steps.append(RandomCrop(crop_size, fill=fill))
    if flip:
        steps.append(RandomHorizontalFlip())
    if jitter:
        steps.append(ColorJitter())
    steps.append(Normalize(normalization))
    return Compose(steps)


def eval_transforms(
    normalization: Normalization,
    resize: int | None = None,
    *,
    side: Literal["short", "long"] = "short",
) -> Compose:
    """The evaluation pipeline: optional aspect-keeping :class:`Resize` of the image, then normalisation.

    ``resize=None`` keeps the image's size: ``uint8 (3, H, W) -> float32 (3, H, W)``. With
    ``resize=n``, the ``side`` ("short" or "long") of the image becomes ``n`` pixels while the mask
    keeps its own size (upsample logits to ``mask.shape`` before scoring).
    """
    steps: list[JointTransform] = [] if resize is None else [Resize(resize, side=side)]
    steps.append(Normalize(normalization))
    return Compose(steps)
