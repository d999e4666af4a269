"""The paths benchmark: deterministic scenes, paths that never touch, labels that only the cue at
the far end of an object's own path decides, and the bounds of the guesses that do not read it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import pdn
from pdn.data import paths as P
from pdn.errors import ConfigError


@pytest.fixture(scope="module")
def dataset():
    return pdn.build_dataset("paths", split="val", size=96, pairs=3, turns=1, num_samples=6)


def test_scenes_are_deterministic_and_labelled_by_their_own_cue(dataset):
    for index in range(3):
        image, mask = dataset[index]
        again, mask_again = dataset[index]  # the kept routes give the same sample
        assert torch.equal(image, again) and torch.equal(mask, mask_again)
        fresh, fresh_mask = pdn.build_dataset(
            "paths", split="val", size=96, pairs=3, turns=1, num_samples=6
        )[index]
        assert torch.equal(image, fresh) and torch.equal(mask, fresh_mask)
        assert image.shape == (3, 96, 96) and mask.dtype == torch.int64
        layout, colours = dataset.layout(index), dataset.colours(index)
        for k, (r, c) in enumerate(layout.objects):
            cell = layout.cell
            square = mask[r * cell : (r + 2) * cell, c * cell : (c + 2) * cell]
            assert torch.all(square == 1 + colours[k])
            cue = P.cue_mask(layout, k)
            assert tuple(image[:, cue][:, 0].tolist()) == P.CUE_COLORS[colours[k]]


def test_paths_keep_apart_and_the_own_cue_is_not_the_nearest_or_in_line(dataset):
    for index in range(len(dataset)):
        layout = dataset.layout(index)
        cells = [set(route) for route in layout.paths]
        for a in range(len(cells)):
            for b in range(a + 1, len(cells)):
                assert (
                    not P._dilate(cells[a], 96 // layout.cell) & cells[b]
                )  # one free cell between
        centres = np.stack([P._centre(c) for c in layout.cues])
        for k, obj in enumerate(layout.objects):
            offset = np.abs(centres - P._centre(obj))
            assert int(np.argmin(np.hypot(*offset.T))) != k
            assert int(np.argmin(offset.min(1))) != k
            distance, in_line = P.cue_places(layout.cues, obj)  # what the guesses rank by
            assert np.allclose(distance, np.hypot(*offset.T)) and np.allclose(
                in_line, offset.min(1)
            )
            route = layout.paths[k]
            assert all(
                abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1
                for a, b in zip(route, route[1:], strict=False)
            )


def test_the_same_local_patch_gets_different_labels(dataset):
    """Two colourings of one layout: every pixel away from the cues is identical, while the
    objects' labels differ, so no model that misses the cue can get both right."""
    layout = dataset.layout(0)
    first, mask_first = P.paint(layout, [0, 1, 2])
    second, mask_second = P.paint(layout, [3, 3, 0])
    cues = np.any([P.cue_mask(layout, k) for k in range(3)], axis=0)
    assert np.array_equal(first[:, ~cues], second[:, ~cues])
    objects = mask_first > 0
    assert (mask_first[objects] != mask_second[objects]).all()


def test_bounds_of_the_guesses_that_do_not_follow_the_path():
    assert P.guess_miou(0.25) == pytest.approx(P.LOCAL_MIOU_CEILING)  # a blind guess: 11/35
    assert P.guess_miou(1.0) == pytest.approx(1.0)
    # the most frequent cue colour: the own cue is among those counted, so above blind
    two = P.mode_guess_miou(2)  # right when both agree (1/4), half the time otherwise
    assert two == pytest.approx(P.guess_miou(0.25 + 0.75 * 0.5))
    assert P.LOCAL_MIOU_CEILING < P.mode_guess_miou(4) < two


def test_a_larger_cell_draws_the_same_scene_larger(dataset):
    """The routes depend only on the grid: 192 px scenes of 8 px cells are the 96 px scenes of
    4 px cells, every painted pixel (paths 4 px wide instead of 2) and every label doubled."""
    large = pdn.build_dataset(
        "paths", split="val", size=192, cell=8, pairs=3, turns=1, num_samples=6
    )
    for index in range(3):
        small_layout, large_layout = dataset.layout(index), large.layout(index)
        assert large_layout.paths == small_layout.paths and large_layout.cell == 8
        colours = dataset.colours(index)
        small_image, small_mask = P.paint(
            dataclasses.replace(small_layout, background=np.zeros_like(small_layout.background)),
            colours,
        )
        large_image, large_mask = P.paint(
            dataclasses.replace(large_layout, background=np.zeros_like(large_layout.background)),
            colours,
        )
        twice = np.ones((2, 2), dtype=np.uint8)
        assert np.array_equal(large_mask, np.kron(small_mask, twice))
        for channel in range(3):
            assert np.array_equal(large_image[channel], np.kron(small_image[channel], twice))
        path_pixels = (small_image[0] == P.PATH_GREY) & (small_mask == 0)
        assert path_pixels.sum() > 0


def test_options_are_checked():
    with pytest.raises(ConfigError, match="pairs must be an integer in 2..6"):
        pdn.build_dataset("paths", split="train", pairs=9)
    with pytest.raises(ConfigError, match="takes no root"):
        pdn.build_dataset("paths", root="/data", split="train")
    with pytest.raises(ConfigError, match="cell must be a multiple of 4 that divides size 128"):
        pdn.build_dataset("paths", split="train", cell=6)


def test_a_layout_that_cannot_fit_is_a_config_error():
    crowded = pdn.build_dataset("paths", split="val", size=64, pairs=6, turns=8, num_samples=1)
    with pytest.raises(ConfigError, match="fewer pairs or turns, or a larger size / cell"):
        crowded.layout(0)


def _layout(cue, obj, route) -> P.PathsLayout:
    return P.PathsLayout(np.zeros((128, 128, 3), np.uint8), [cue], [obj], [route], cell=8)


def _run(start, end):
    """The cells from ``start`` to ``end`` along one row or one column, both included."""
    (r0, c0), (r1, c1) = start, end
    step_r, step_c = (r1 > r0) - (r1 < r0), (c1 > c0) - (c1 < c0)
    count = max(abs(r1 - r0), abs(c1 - c0)) + 1
    return [(r0 + k * step_r, c0 + k * step_c) for k in range(count)]


def test_sweep_layers_needed_counts_the_straight_runs_a_path_turns_between():
    """One layer per run along an axis: the colour turns from one sweep direction to another only
    between layers, and a rate-1 tap moves it one site sideways per step."""
    straight = _layout((0, 0), (10, 0), _run((2, 0), (9, 0)))
    bent = _layout((0, 0), (7, 9), _run((2, 0), (8, 0)) + _run((8, 1), (8, 8)))
    u_turn = _layout(
        (0, 0), (1, 6), _run((2, 0), (10, 0)) + _run((10, 1), (10, 6)) + _run((9, 6), (3, 6))
    )
    assert [P.sweep_layers_needed(x, 0) for x in (straight, bent, u_turn)] == [1, 2, 3]
    # a staircase of single steps is one diagonal run for a sweep with rate-1 taps
    stairs = [cell for k in range(5) for cell in ((2 + k, 1 + k), (3 + k, 1 + k))]
    assert P.sweep_layers_needed(_layout((0, 0), (7, 6), stairs), 0) == 1
    # wider taps cut corners: reaching 8 sites sideways, the rightward sweep jumps from the cue
    # onto the bottom run and follows it to the object in the same layer
    assert P.sweep_layers_needed(bent, 0, lateral=8) == 1
    broken = _layout((0, 0), (10, 0), _run((2, 0), (5, 0)) + _run((7, 0), (9, 0)))
    assert P.sweep_layers_needed(broken, 0, limit=5) == 6


def test_sweep_layers_needed_is_the_same_for_the_mirrored_scene(dataset):
    """Swapping rows and columns swaps the directions, so no path needs more or fewer layers."""
    for index in range(len(dataset)):
        layout = dataset.layout(index)

        def swap(cells):
            return [(c, r) for r, c in cells]

        mirrored = dataclasses.replace(
            layout,
            cues=swap(layout.cues),
            objects=swap(layout.objects),
            paths=[swap(route) for route in layout.paths],
        )
        for k in range(len(layout.paths)):
            needed = P.sweep_layers_needed(layout, k)
            assert 1 <= needed == P.sweep_layers_needed(mirrored, k)
            assert P.sweep_layers_needed(layout, k, lateral=2) <= needed


def test_the_ceiling_of_path_following_by_depth():
    needed = [1, 2, 2, 5]
    assert P.sweep_follower_miou(needed, 8) == pytest.approx(1.0)
    assert P.sweep_follower_miou(needed, 0) == pytest.approx(P.LOCAL_MIOU_CEILING)
    assert P.sweep_follower_miou(needed, 2) == pytest.approx(P.guess_miou(0.75 + 0.25 / 4))


def test_the_cell_map_is_the_painted_scene_read_at_the_cells_centres(dataset):
    """``cell_map`` (what ``benchmarks/paths_heads.py`` trains on) says of every cell what the
    painted scene shows at its centre: the mask's label, a cue's colour, path or object grey."""
    for index in range(3):
        layout, colours = dataset.layout(index), dataset.colours(index)
        image, mask = P.paint(layout, colours)
        features, labels = P.cell_map(layout, colours)
        centre = layout.cell // 2
        grid = image.shape[1] // layout.cell
        assert features.shape == (len(P.CELL_FEATURES), grid, grid)
        at_centres = image[:, centre :: layout.cell, centre :: layout.cell]
        assert np.array_equal(labels, mask[centre :: layout.cell, centre :: layout.cell])
        assert np.all(at_centres[:, features[0] == 1] == P.PATH_GREY)
        assert np.all(at_centres[:, features[1] == 1] == P.OBJECT_GREY)
        for colour, rgb in enumerate(P.CUE_COLORS):
            cells = features[3 + colour] == 1
            assert np.all(features[2][cells] == 1)
            assert np.all(rgb == at_centres[:, cells].T)
        assert features[3:].sum() == features[2].sum() == 4 * len(layout.cues)
        assert np.all(features[:3].sum(axis=0) <= 1)  # a cell is one thing at most


def test_the_parts_target_labels_what_is_painted_and_not_the_colour(dataset):
    """``target="parts"`` labels the same scenes background / path / object / cue: exactly the
    pixels painted as each, the colour target's objects, and the same mask for every colouring."""
    parts = pdn.build_dataset(
        "paths", split="val", size=96, pairs=3, turns=1, num_samples=6, target="parts"
    )
    assert parts.classes == P.PARTS_CLASSES and len(parts.palette) == len(P.PARTS_CLASSES)
    for index in range(3):
        image, labels = parts[index]
        colour_image, colour_mask = dataset[index]
        assert torch.equal(image, colour_image)
        layout = parts.layout(index)
        background = torch.from_numpy(layout.background).permute(2, 0, 1)
        assert torch.equal(image[:, labels == 0], background[:, labels == 0])
        assert torch.all(image[:, labels == 1] == P.PATH_GREY)
        assert torch.equal(labels == 2, colour_mask > 0)
        for k, colour in enumerate(parts.colours(index)):
            cue = torch.from_numpy(P.cue_mask(layout, k))
            assert torch.all(labels[cue] == 3)
            assert torch.all(
                torch.tensor(P.CUE_COLORS[colour], dtype=torch.uint8) == image[:, cue].T
            )
        assert int((labels == 3).sum()) == len(layout.cues) * (2 * layout.cell) ** 2
        recoloured = P.paint(layout, [(c + 1) % 4 for c in parts.colours(index)], "parts")[1]
        assert np.array_equal(recoloured, labels.numpy())
    with pytest.raises(
        ConfigError, match="target must be one of colour, parts.*did you mean parts"
    ):
        pdn.build_dataset("paths", split="train", target="part")


def test_objects_are_scored_by_the_majority_of_their_pixels_or_cells(dataset):
    layout, colours = dataset.layout(0), dataset.colours(0)
    _, mask = P.paint(layout, colours)
    _, labels = P.cell_map(layout, colours)
    assert P.objects_right(layout, colours, mask).all()
    assert P.objects_right(layout, colours, labels).all()
    (row, col), cell = layout.objects[1], layout.cell
    wrong = mask.copy()
    wrong[row * cell : (row + 1) * cell, col * cell : (col + 2) * cell] = 0  # half of object 1
    assert P.objects_right(layout, colours, wrong).tolist() == [True, False, True]
    wrong[row * cell, col * cell] = 1 + colours[1]  # one pixel more than half
    assert P.objects_right(layout, colours, wrong).tolist() == [True, True, True]
    recoloured = [(c + 1) % 4 for c in colours]
    assert not P.objects_right(layout, recoloured, mask).any()


def test_of_the_mode_marks_the_objects_a_mode_guess_gets_right():
    assert P.of_the_mode((0, 0, 1, 2)).tolist() == [True, True, False, False]
    assert P.of_the_mode((3, 1, 1, 3)).tolist() == [True, True, True, True]
    assert P.of_the_mode((2, 0, 1, 3)).all()


def test_the_own_cue_test_passes_a_path_follower_and_fails_a_guess(dataset):
    """A model that labels every object with its own cue's colour passes for every object; one
    that ignores the own cue (here: the first scene's labels whatever the colours) passes for
    none, as it cannot give four answers to one set of other cues."""
    layout, colours = dataset.layout(0), dataset.colours(0)
    trials = P.own_cue_trials(colours)
    assert len(trials) == 4 * len(colours)
    for k, trial in trials:
        assert [c for j, c in enumerate(trial) if j != k] == [
            c for j, c in enumerate(colours) if j != k
        ]
    assert {trial[k] for k, trial in trials if k == 0} == {0, 1, 2, 3}
    followed = [P.paint(layout, trial)[1] for _, trial in trials]
    assert P.own_cue_read(layout, trials, followed).all()
    cells = [P.cell_map(layout, trial)[1] for _, trial in trials]
    assert P.own_cue_read(layout, trials, cells).all()
    fixed = [P.paint(layout, colours)[1]] * len(trials)
    assert not P.own_cue_read(layout, trials, fixed).any()
    one_wrong = list(followed)
    one_wrong[5] = fixed[5] * 0  # object 1, colour 1: its square left background
    assert P.own_cue_read(layout, trials, one_wrong).tolist() == [True, False, True]
