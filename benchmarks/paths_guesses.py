"""What do guesses that never follow a path score on the paths benchmark?

    .venv/bin/python benchmarks/paths_guesses.py [--turns 0 2] [--split test] [--scenes 200]

``pdn.data.paths`` derives the bound of a model that reads no cue or one unrelated cue (31.4)
and of guessing the scene's most frequent cue colour (49.0). The layouts make an object's own
cue never its nearest nor the one closest in line, so a guess can also *exclude* cues by their
place. This scores such guesses on the split's scenes at the packaged layout (``configs/paths.yaml``), as the other paths
scripts score models (one label per cell, so the mIoU is over cells): the mode of all cues; the
mode of the cues other than the nearest; the mode of those other than the nearest and the one in
line; and picking the one cue at the rank (by distance or closeness in line) most often the
object's own. For each: mIoU, the share of objects right (of all, and of those whose colour is
not their scene's mode) and the share that passes the own-cue test
(:func:`pdn.data.paths.own_cue_read`: right whichever colour its own cue is painted, the other
cues unchanged). Ties between modes go to the lowest colour index. No model is run.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
import torch

from pdn import build_dataset
from pdn.data import paths
from pdn.engine.config import load_config
from pdn.metrics import SegmentationMetric

Guess = Callable[[paths.PathsLayout, tuple[int, ...]], list[int]]
DISTANCE, IN_LINE = 0, 1  # the two orders of pdn.data.paths.cue_places


def _mode_of(colours: tuple[int, ...], keep: list[int]) -> int:
    return int(np.argmax(np.bincount([colours[j] for j in keep], minlength=4)))


def _excluding(*places: int) -> Guess:
    """The mode of the cues other than the first by each of ``places`` (indices into
    :func:`pdn.data.paths.cue_places`: 0 distance, 1 offset from in line)."""

    def guess(layout: paths.PathsLayout, colours: tuple[int, ...]) -> list[int]:
        labels = []
        for obj in layout.objects:
            ranked = paths.cue_places(layout.cues, obj)
            dropped = {int(np.argmin(ranked[place])) for place in places}
            labels.append(_mode_of(colours, [j for j in range(len(colours)) if j not in dropped]))
        return labels

    return guess


def _at_rank(place: int, rank: int) -> Guess:
    """The colour of the cue at ``rank`` (0 = first) by :func:`pdn.data.paths.cue_places`
    ``[place]``."""

    def guess(layout: paths.PathsLayout, colours: tuple[int, ...]) -> list[int]:
        return [
            colours[int(np.argsort(paths.cue_places(layout.cues, obj)[place])[rank])]
            for obj in layout.objects
        ]

    return guess


def guesses() -> dict[str, Guess]:
    """The guesses the module docstring lists, by name."""
    return {
        "mode of all cues": lambda layout, colours: (
            [_mode_of(colours, list(range(len(colours))))] * len(colours)
        ),
        "mode without the nearest": _excluding(DISTANCE),
        "mode without the nearest and the in-line": _excluding(DISTANCE, IN_LINE),
        "the 3rd nearest cue": _at_rank(DISTANCE, 2),
        "the cue farthest from in line": _at_rank(IN_LINE, 3),
    }


def cell_prediction(layout: paths.PathsLayout, labels: list[int]) -> np.ndarray:
    """int64 ``(g, g)``: object ``k``'s cells ``1 + labels[k]``, the rest background."""
    grid = layout.background.shape[0] // layout.cell
    prediction = np.zeros((grid, grid), np.int64)
    for obj, label in zip(layout.objects, labels, strict=True):
        for r, c in paths.block_cells(obj):
            prediction[r, c] = 1 + label
    return prediction


def score(guess: Guess, scenes: list[tuple[paths.PathsLayout, tuple[int, ...]]]) -> list[float]:
    """mIoU, objects right, off-mode objects right and own-cue passes of ``guess`` (shares)."""
    metric = SegmentationMetric(len(paths.PATHS_CLASSES))
    right, off_mode, passed = [], [], []
    for layout, colours in scenes:
        prediction = cell_prediction(layout, guess(layout, colours))
        _, labels = paths.cell_map(layout, colours)
        metric.update(torch.from_numpy(prediction)[None], torch.from_numpy(labels)[None])
        right.extend(paths.objects_right(layout, colours, prediction))
        off_mode.extend(~paths.of_the_mode(colours))
        trials = paths.own_cue_trials(colours)
        predictions = [cell_prediction(layout, guess(layout, trial)) for _, trial in trials]
        passed.extend(paths.own_cue_read(layout, trials, predictions))
    right, off_mode = np.asarray(right), np.asarray(off_mode)
    return [metric.compute().mIoU, right.mean(), right[off_mode].mean(), np.mean(passed)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--scenes", type=int, default=200)
    args = parser.parse_args()
    print(
        "| turns | guess | mIoU % | objects right % (all / colour not the scene's mode) | "
        "own-cue test passed % |\n|---|---|---|---|---|"
    )
    for turns in args.turns:
        options = dict(load_config("paths").data.options, turns=turns)
        dataset = build_dataset("paths", split=args.split, num_samples=args.scenes, **options)
        scenes = [(dataset.layout(i), dataset.colours(i)) for i in range(args.scenes)]
        for name, guess in guesses().items():
            miou, right, off, passed = score(guess, scenes)
            print(
                f"| {turns} | {name} | {100 * miou:.1f} | {100 * right:.0f} / {100 * off:.0f} | "
                f"{100 * passed:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
