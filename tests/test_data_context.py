"""The context benchmark: deterministic, locally ambiguous, cues far away, and the stated local ceiling."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_edt

from pdn import ConfigError, build_dataset
from pdn.data.context import (
    CONTEXT_LOCAL_MIOU_CEILING,
    CUE_COLORS,
    OBJECT_GREY,
    cue_mask,
    draw_layout,
    local_miou_ceiling,
    paint,
)
from pdn.data.transforms import train_transforms
from pdn.models.backbones.base import IMAGENET_NORMALIZATION

NUM_CLASSES = 5


def miou(pred: np.ndarray, target: np.ndarray) -> float:
    """mIoU from one confusion matrix over the whole set (every class is present here)."""
    matrix = np.bincount(target.ravel() * NUM_CLASSES + pred.ravel(), minlength=NUM_CLASSES**2)
    matrix = matrix.reshape(NUM_CLASSES, NUM_CLASSES)
    tp = np.diag(matrix)
    return float(np.mean(tp / (matrix.sum(0) + matrix.sum(1) - tp)))


@pytest.fixture(scope="module")
def val_set():
    ds = build_dataset("context", split="val")
    images, masks = zip(*(ds[i] for i in range(len(ds))), strict=True)
    return ds, torch.stack(images).numpy(), torch.stack(masks).numpy()


def digest(image: torch.Tensor) -> str:
    return hashlib.sha1(image.numpy().tobytes()).hexdigest()


def test_samples_and_metadata():
    ds = build_dataset("context")
    assert len(ds) == 2000 and len(build_dataset("context", split="val")) == 200
    image, mask = ds[0]
    assert image.dtype == torch.uint8 and image.shape == (3, 128, 128)
    assert mask.dtype == torch.int64 and mask.shape == (128, 128)
    assert ds.num_classes == 5 and ds.classes[0] == "background" and len(ds.palette) == 5
    small = build_dataset("context", size=64, num_samples=7, seed=3)
    assert len(small) == 7 and small[6][0].shape == (3, 64, 64)
    with pytest.raises(IndexError):
        small[7]


def test_deterministic_from_seed_split_and_index():
    a = build_dataset("context", split="train", seed=11)
    b = build_dataset("context", split="train", seed=11)
    for index in (0, 5, 1999):
        assert torch.equal(a[index][0], b[index][0]) and torch.equal(a[index][1], b[index][1])
    assert torch.equal(a[-1][0], a[1999][0])
    other_seed = build_dataset("context", split="train", seed=12)
    assert not torch.equal(a[0][0], other_seed[0][0])
    train = {digest(build_dataset("context", split="train")[i][0]) for i in range(2000)}
    val = {digest(image) for image, _ in build_dataset("context", split="val")}
    test = {digest(image) for image, _ in build_dataset("context", split="test")}
    assert len(train) == 2000 and len(val) == 200 and not train & val and not val & test


def test_same_layout_with_two_cue_colours_differs_only_in_the_cue():
    layout = draw_layout(np.random.default_rng(4))
    image_red, mask_red = paint(layout, 0)
    image_blue, mask_blue = paint(layout, 2)
    cue = cue_mask(layout)
    assert np.array_equal(image_red[:, ~cue], image_blue[:, ~cue])
    assert not np.array_equal(image_red[:, cue], image_blue[:, cue])
    objects = mask_red > 0
    assert objects.sum() > 0 and (mask_red[objects] == 1).all() and (mask_blue[objects] == 3).all()


def test_two_samples_share_an_identical_local_patch_with_different_labels():
    ds = build_dataset("context", split="val")
    radius = 3  # a 7x7 patch
    found: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}
    for index in range(len(ds)):
        image, mask = (t.numpy() for t in ds[index])
        label = int(mask.max())
        objects = mask > 0
        inner = objects.copy()
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                inner &= np.roll(objects, (dy, dx), axis=(0, 1))
        inner[:radius] = inner[-radius:] = inner[:, :radius] = inner[:, -radius:] = False
        if label not in found and inner.any():
            y, x = np.argwhere(inner)[0]
            window = (slice(y - radius, y + radius + 1), slice(x - radius, x + radius + 1))
            found[label] = (index, image[(slice(None), *window)], mask[window])
        if len(found) == 4:
            break
    assert len(found) == 4
    (i, patch_a, labels_a), (j, patch_b, labels_b) = found[1], found[2]
    assert i != j
    assert np.array_equal(patch_a, patch_b) and (patch_a == OBJECT_GREY).all()
    assert (labels_a == 1).all() and (labels_b == 2).all()


@pytest.mark.parametrize("size", [128, 64, 32])
def test_every_object_pixel_is_at_least_half_the_image_from_every_cue_pixel(size):
    ds = build_dataset("context", size=size, num_samples=150, seed=1)
    sides = set()
    for index in range(len(ds)):
        image, mask = (t.numpy() for t in ds[index])
        layout = ds.layout(index)
        cue = cue_mask(layout)
        sides.add(layout.side)
        colour = np.array(CUE_COLORS[ds.colour(index)], dtype=np.uint8)
        assert (image[:, cue] == colour[:, None]).all() and (mask[cue] == 0).all()
        distance = distance_transform_edt(~cue)
        objects = mask > 0
        assert objects.any()
        assert distance[objects].min() >= size / 2
        assert set(np.unique(mask[objects]).tolist()) == {1 + ds.colour(index)}
    assert sides == {0, 1, 2, 3}


def test_side_and_colour_are_balanced_and_independent():
    ds = build_dataset("context", num_samples=1600)
    table = np.zeros((4, 4), dtype=int)
    for index in range(len(ds)):
        table[ds.layout(index).side, ds.colour(index)] += 1
    assert table.min() > 60 and table.max() < 145  # expected 100 per cell


def read_the_cue(image: np.ndarray) -> np.ndarray:
    """A non-local predictor using pixels only: grey pixels are objects, the stripe names the class."""
    objects = (image == OBJECT_GREY).all(axis=0)
    borders = [image[:, 0, :], image[:, :, 0], image[:, -1, :], image[:, :, -1]]
    colours = np.array(CUE_COLORS, dtype=float)
    distances = [np.abs(colours - border.mean(axis=1)).sum(axis=1) for border in borders]
    side = int(np.argmin([d.min() for d in distances]))
    return np.where(objects, 1 + int(np.argmin(distances[side])), 0)


def test_local_ceiling_formula():
    assert abs(CONTEXT_LOCAL_MIOU_CEILING - 11 / 35) < 1e-12
    assert local_miou_ceiling([5, 5, 5, 5]) == pytest.approx(11 / 35)
    # Unequal shares: check the closed form against a brute-force search over q.
    shares = np.array([0.4, 0.3, 0.2, 0.1])
    grid = np.linspace(0.0, 1.0, 101)
    best = 0.0
    for q1 in grid:
        for q2 in grid[grid <= 1 - q1 + 1e-9]:
            for q3 in grid[grid <= 1 - q1 - q2 + 1e-9]:
                q = np.array([q1, q2, q3, max(0.0, 1 - q1 - q2 - q3)])
                best = max(best, float(np.sum(q * shares / (shares + q * (1 - shares)))))
    assert local_miou_ceiling(shares * 1000) == pytest.approx((1 + best) / 5, abs=1e-4)
    with pytest.raises(ValueError):
        local_miou_ceiling([3, 0, 1, 1])


def test_local_predictors_reach_but_do_not_beat_the_ceiling_and_the_cue_solves_it(val_set):
    ds, images, masks = val_set
    objects = masks > 0
    counts = np.bincount(masks[objects], minlength=5)[1:]
    ceiling = local_miou_ceiling(counts)
    assert ceiling == pytest.approx(11 / 35, abs=0.003)
    # The best local rule: perfect background, object pixels labelled j with probability q_j
    # proportional to pi_j / (1 - pi_j), independently of anything the pixel's window shows.
    shares = counts / counts.sum()
    q = shares / (1 - shares)
    q /= q.sum()
    rng = np.random.default_rng(0)
    guesses = 1 + rng.choice(4, size=masks.shape, p=q)
    assert miou(np.where(objects, guesses, 0), masks) == pytest.approx(ceiling, abs=0.002)
    # Uniform guesses (q_j = 1/4) and one guess per image score about the same or less.
    uniform = 1 + rng.integers(0, 4, size=masks.shape)
    assert miou(np.where(objects, uniform, 0), masks) < ceiling + 0.002
    per_image = [
        miou(np.where(objects, 1 + rng.integers(0, 4, size=(len(ds), 1, 1)), 0), masks)
        for _ in range(40)
    ]
    assert np.mean(per_image) < ceiling + 0.01 and np.std(per_image) < 0.03
    # Always the same class: about (1 + 1/4) / 5.
    for label in range(1, 5):
        constant = miou(np.where(objects, label, 0), masks)
        assert constant == pytest.approx(0.25, abs=0.01) and constant < ceiling
    # Reading the cue, far away, solves the task from the pixels alone.
    predictions = np.stack([read_the_cue(image) for image in images])
    assert miou(predictions, masks) == 1.0


def test_bad_options_are_refused():
    with pytest.raises(ConfigError, match="size must be an integer >= 32"):
        build_dataset("context", size=16)
    with pytest.raises(ConfigError, match="num_samples"):
        build_dataset("context", num_samples=0)
    with pytest.raises(ConfigError, match="takes no root"):
        build_dataset("context", root="/data")
    with pytest.raises(ConfigError, match="no split 'vall'"):
        build_dataset("context", split="vall")
    with pytest.raises(ConfigError, match="no option 'sise'; did you mean size"):
        build_dataset("context", sise=64)


def test_dataset_applies_transforms_and_sample_takes_a_generator():
    transform = train_transforms(IMAGENET_NORMALIZATION, 64)
    ds = build_dataset("context", split="val", num_samples=4, transforms=transform)
    image, mask = ds[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32 and mask.shape == (64, 64)
    a = ds.sample(1, torch.Generator().manual_seed(9))
    b = ds.sample(1, torch.Generator().manual_seed(9))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert set(a[1].unique().tolist()) <= set(range(5)) | {255}


def test_segmented_cue_labels_each_object_pixel_by_the_run_in_line_with_it():
    ds = build_dataset("context", size=64, num_samples=40, seed=2, cue_segments=4)
    assert "cue_segments=4" in repr(ds)
    segment = np.arange(64) // 16
    mixed = 0
    for index in range(len(ds)):
        image, mask = (t.numpy() for t in ds[index])
        layout = ds.layout(index)
        colours = np.array(ds.colours(index))
        # Back to the canonical orientation: cue on top.
        image = np.rot90(image, -layout.side, axes=(1, 2))
        mask = np.rot90(mask, -layout.side)
        stripe = image[:, : layout.cue_width]
        expected = np.array(CUE_COLORS, dtype=np.uint8)[colours[segment]].T  # (3, 64)
        assert (stripe == expected[:, None, :]).all()
        rows, cols = np.nonzero(mask)
        assert (mask[rows, cols] == 1 + colours[segment[cols]]).all()
        mixed += len(set(colours.tolist())) > 1
    assert mixed > 30  # the runs do differ: a summary of the colours does not name the class
    with pytest.raises(ValueError, match="4 cue segments"):
        ds.colour(0)


def test_one_segment_is_the_single_cue_scene():
    layout = draw_layout(np.random.default_rng(6), 64)
    for a, b in zip(paint(layout, 3), paint(layout, [3]), strict=True):
        assert np.array_equal(a, b)
    plain = build_dataset("context", size=64, num_samples=3)
    one = build_dataset("context", size=64, num_samples=3, cue_segments=1)
    assert all(torch.equal(plain[i][1], one[i][1]) for i in range(3))
    assert [plain.colour(i) for i in range(3)] == [one.colours(i)[0] for i in range(3)]


def test_segmented_local_ceiling_still_holds_and_the_cue_still_solves_it():
    ds = build_dataset("context", size=64, split="val", cue_segments=4)
    masks = np.stack([ds[i][1].numpy() for i in range(len(ds))])
    objects = masks > 0
    counts = np.bincount(masks[objects], minlength=5)[1:]
    assert local_miou_ceiling(counts) == pytest.approx(11 / 35, abs=0.005)
    # The best scene-level rule: label every object pixel with one colour of its scene's cue.
    rng = np.random.default_rng(0)
    scene_guess = np.stack(
        [np.full((64, 64), 1 + ds.colours(i)[rng.integers(4)]) for i in range(len(ds))]
    )
    assert miou(np.where(objects, scene_guess, 0), masks) < 0.5


def test_cue_segments_is_validated():
    with pytest.raises(ConfigError, match="cue_segments must be at most"):
        build_dataset("context", size=64, cue_segments=20)
    with pytest.raises(ConfigError, match="cue_segments must be an integer >= 1"):
        build_dataset("context", cue_segments=0)
