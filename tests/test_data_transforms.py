"""Joint transforms: mask values preserved, sizes right, image and mask move together, seeded."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pdn.data.transforms import (
    ColorJitter,
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomRotation,
    RandomScale,
    Resize,
    eval_transforms,
    mean_colour,
    rotate,
    train_transforms,
)
from pdn.models.backbones.base import IMAGENET_NORMALIZATION, Normalization

LABELS = (0, 3, 7)


def blocky_sample(height: int = 48, width: int = 64, block: int = 8, seed: int = 0):
    """A mask of ``block``-sized squares with labels in LABELS (255 on a few) and an image derived from it."""
    rng = np.random.default_rng(seed)
    coarse = rng.choice(
        [*LABELS, 255],
        size=(math.ceil(height / block), math.ceil(width / block)),
        p=[0.3, 0.3, 0.3, 0.1],
    )
    mask = torch.from_numpy(
        np.kron(coarse, np.ones((block, block), dtype=np.int64))[:height, :width]
    )
    return encode(mask), mask


def encode(mask: torch.Tensor) -> torch.Tensor:
    """The image a mask implies: every channel is ``20 * label`` (255 -> 250), uint8 ``(3, H, W)``."""
    values = torch.where(mask == 255, 250, mask * 20)
    return values.to(torch.uint8).expand(3, *mask.shape).clone()


def interior(mask: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """Pixels away from the border whose neighbourhood has one label: bilinear and nearest agree there."""
    padded = torch.nn.functional.pad(mask[None, None].float(), (radius,) * 4, value=-1.0)
    low = -torch.nn.functional.max_pool2d(-padded, 2 * radius + 1, stride=1)[0, 0]
    high = torch.nn.functional.max_pool2d(padded, 2 * radius + 1, stride=1)[0, 0]
    return low == high


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("seed", range(12))
def test_train_pipeline_keeps_the_label_set_and_the_crop_size(seed):
    image, mask = blocky_sample(seed=seed)
    transform = train_transforms(IMAGENET_NORMALIZATION, crop_size=(40, 56), rotation=20)
    out_image, out_mask = transform(image, mask, seeded(seed))
    assert out_image.dtype == torch.float32 and out_image.shape == (3, 40, 56)
    assert out_mask.dtype == torch.int64 and out_mask.shape == (40, 56)
    assert set(out_mask.unique().tolist()) <= set(LABELS) | {255}


@pytest.mark.parametrize("seed", range(12))
def test_geometric_transforms_move_image_and_mask_together(seed):
    image, mask = blocky_sample(block=16, seed=seed)
    transform = Compose(
        [RandomScale((0.5, 2.0)), RandomCrop(32), RandomHorizontalFlip(), RandomRotation(15)]
    )
    out_image, out_mask = transform(image, mask, seeded(seed))
    valid = interior(out_mask) & (out_mask != 255)
    assert valid.sum() > 50
    difference = (out_image[0].int() - encode(out_mask)[0].int()).abs()
    assert difference[valid].max() <= 1


def test_flip_mirrors_both():
    image, mask = blocky_sample()
    out_image, out_mask = RandomHorizontalFlip(p=1.0)(image, mask)
    assert torch.equal(out_mask, mask.flip(-1)) and torch.equal(out_image, image.flip(-1))
    same_image, same_mask = RandomHorizontalFlip(p=0.0)(image, mask)
    assert torch.equal(same_mask, mask) and torch.equal(same_image, image)


def test_crop_pads_image_with_fill_and_mask_with_ignore():
    image = torch.full((3, 5, 7), 9, dtype=torch.uint8)
    mask = torch.ones(5, 7, dtype=torch.int64)
    out_image, out_mask = RandomCrop((8, 10), fill=(1, 2, 3))(image, mask, seeded(0))
    assert out_image.shape == (3, 8, 10) and out_mask.shape == (8, 10)
    assert (
        torch.equal(out_mask[:5, :7], mask)
        and (out_mask[5:] == 255).all()
        and (out_mask[:, 7:] == 255).all()
    )
    assert (out_image[:, :5, :7] == 9).all()
    assert out_image[:, 6, 8].tolist() == [1, 2, 3]


def test_crop_of_a_larger_image_is_the_same_window_of_both():
    mask = torch.arange(40 * 50).view(40, 50)  # every position has its own value
    image = torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8, generator=seeded(0))
    corners = set()
    for seed in range(8):
        out_image, out_mask = RandomCrop((16, 24))(image, mask, seeded(seed))
        top, left = divmod(int(out_mask[0, 0]), 50)
        assert torch.equal(out_mask, mask[top : top + 16, left : left + 24])
        assert torch.equal(out_image, image[:, top : top + 16, left : left + 24])
        corners.add((top, left))
    assert len(corners) > 4


def test_random_scale_sizes_and_nearest_mask():
    image, mask = blocky_sample(30, 40)
    sizes = set()
    for seed in range(20):
        out_image, out_mask = RandomScale((0.5, 2.0))(image, mask, seeded(seed))
        h, w = out_mask.shape
        assert out_image.shape == (3, h, w) and out_image.dtype == torch.uint8
        assert 15 <= h <= 60 and abs(w / h - 4 / 3) < 0.1
        assert set(out_mask.unique().tolist()) <= set(mask.unique().tolist())
        sizes.add((h, w))
    assert len(sizes) > 10


def test_rotation_fills_corners_with_ignore_and_keeps_labels():
    mask = torch.ones(32, 32, dtype=torch.int64) * 3
    image = torch.full((3, 32, 32), 200, dtype=torch.uint8)
    for seed in range(10):
        out_image, out_mask = RandomRotation(45, fill=(10, 20, 30))(image, mask, seeded(seed))
        assert set(out_mask.unique().tolist()) <= {3, 255}
        assert out_mask[16, 16] == 3 and out_image[:, 16, 16].tolist() == [200, 200, 200]
    out_image, out_mask = rotate(image, mask, 45.0, fill=(10, 20, 30))
    for row, col in ((0, 0), (0, 31), (31, 0), (31, 31)):
        assert out_mask[row, col] == 255 and out_image[:, row, col].tolist() == [10, 20, 30]
    assert (out_mask[14:18, :] == 3).all() and (out_mask[:, 14:18] == 3).all()
    identity_image, identity_mask = RandomRotation(0)(*blocky_sample(), seeded(0))
    assert torch.equal(identity_mask, blocky_sample()[1]) and torch.equal(
        identity_image, blocky_sample()[0]
    )


def test_rotation_of_a_wide_image_is_a_true_rotation():
    # A horizontal bar in a 20x60 image rotated by 90 degrees must become vertical (no aspect shear).
    mask = torch.zeros(20, 60, dtype=torch.int64)
    mask[9:11, 20:40] = 1
    _, out_mask = rotate(encode(mask), mask, 90.0)
    rows, cols = torch.nonzero(out_mask == 1, as_tuple=True)
    assert rows.max() - rows.min() + 1 == 20 and cols.max() - cols.min() + 1 == 2
    # Outside the rotated 20x60 frame (20 wide, 60 tall, centred), everything is ignore.
    assert (out_mask[:, :20] == 255).all() and (out_mask[:, 40:] == 255).all()
    # Counter-clockwise: the bar's right end goes to the top.
    marked = mask.clone()
    marked[9:11, 38:40] = 2
    _, turned = rotate(encode(marked), marked, 90.0)
    rows_two = torch.nonzero(turned == 2, as_tuple=True)[0]
    assert rows_two.max() < rows.float().mean()


def test_color_jitter_changes_only_the_image_and_keeps_greys_grey():
    grey = torch.full((3, 8, 8), 120, dtype=torch.uint8)
    mask = torch.zeros(8, 8, dtype=torch.int64)
    jitter = ColorJitter(
        p=1.0, brightness=0.0, contrast=(1.0, 1.0), saturation=(0.3, 0.3), hue=30.0
    )
    out, out_mask = jitter(grey, mask, seeded(0))
    assert out_mask is mask and out.dtype == torch.uint8
    assert (out == 120).all()
    colourful = torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8, generator=seeded(1))
    changed = [
        not torch.equal(ColorJitter()(colourful, mask, seeded(s))[0], colourful) for s in range(10)
    ]
    assert sum(changed) >= 7
    assert torch.equal(ColorJitter(p=0.0)(colourful, mask, seeded(0))[0], colourful)


def test_normalize_uses_the_backbone_statistics():
    norm = Normalization(mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    image = torch.tensor([255, 0, 51], dtype=torch.uint8).view(3, 1, 1).expand(3, 2, 2)
    out, _ = Normalize(norm)(image, torch.zeros(2, 2, dtype=torch.int64))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([1.0, -1.0, 0.2]))
    with pytest.raises(TypeError):
        Normalize(norm)(out, torch.zeros(2, 2, dtype=torch.int64))


def test_padding_with_the_mean_colour_normalises_to_about_zero():
    transform = train_transforms(
        IMAGENET_NORMALIZATION, 16, scale_range=None, flip=False, jitter=False
    )
    out, mask = transform(
        torch.zeros(3, 4, 4, dtype=torch.uint8), torch.zeros(4, 4, dtype=torch.int64), seeded(0)
    )
    padded = mask == 255
    assert padded.sum() == 16 * 16 - 16
    assert out[:, padded].abs().max() < 0.01
    assert mean_colour(IMAGENET_NORMALIZATION) == (124, 116, 104)


@pytest.mark.parametrize(("side", "expected"), [("short", (32, 48)), ("long", (21, 32))])
def test_eval_resize_keeps_the_aspect_ratio_and_the_mask(side, expected):
    image, mask = blocky_sample(40, 60)
    out, out_mask = eval_transforms(IMAGENET_NORMALIZATION, resize=32, side=side)(image, mask)
    assert out.shape == (3, *expected) and out.dtype == torch.float32
    assert out_mask is mask
    _, resized_mask = Resize(32, side=side, resize_mask=True)(image, mask)
    assert resized_mask.shape == expected
    assert set(resized_mask.unique().tolist()) <= set(mask.unique().tolist())
    same, _ = eval_transforms(IMAGENET_NORMALIZATION)(image, mask)
    assert same.shape == (3, 40, 60)


def test_seeded_generator_reproduces_and_global_rng_is_used_without_one():
    image, mask = blocky_sample()
    transform = train_transforms(IMAGENET_NORMALIZATION, 24, rotation=10)
    first = transform(image, mask, seeded(5))
    again = transform(image, mask, seeded(5))
    other = transform(image, mask, seeded(6))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])
    torch.manual_seed(3)
    global_first = transform(image, mask)
    torch.manual_seed(3)
    global_again = transform(image, mask)
    assert torch.equal(global_first[0], global_again[0]) and torch.equal(
        global_first[1], global_again[1]
    )
