"""How many sweep layers does a path of the paths benchmark need, per number of turns?

    .venv/bin/python benchmarks/paths_layers.py [--turns 0 1 2] [--layers 1 2 3 4 6 8]
        [--lateral 1] [--split test] [--scenes 200]

For each ``turns`` setting, draws the split's scenes at the packaged config's layout (256 px,
8 px cells: one cell per site of the stride-8 map, 4 pairs) and counts, for every object, the
fewest sweep layers that carry its cue's colour along its own path
(:func:`pdn.data.paths.sweep_layers_needed`: one straight or diagonal run per layer, taps
reaching ``--lateral`` sites sideways). Prints a Markdown table: the share of objects whose path
``L`` layers can follow, and the expected mIoU of a model that follows those and guesses blind on
the rest (:func:`pdn.data.paths.sweep_follower_miou`), the ceiling of path following alone for a
PDN of that depth. For comparison, a blind guess scores 0.314 and the scene's most frequent cue
colour 0.49. No model is run; about 15 s per setting.
"""

from __future__ import annotations

import argparse

import numpy as np

from pdn import build_dataset
from pdn.data import paths
from pdn.errors import ConfigError


def layers_needed(turns: int, split: str, scenes: int, lateral: int) -> list[int]:
    """:func:`~pdn.data.paths.sweep_layers_needed` of every object of ``scenes`` scenes of the
    packaged config's layout with ``turns`` waypoints per path."""
    dataset = build_dataset(
        "paths", split=split, size=256, cell=8, pairs=4, turns=turns, num_samples=scenes
    )
    return [
        paths.sweep_layers_needed(dataset.layout(index), k, lateral=lateral)
        for index in range(scenes)
        for k in range(dataset.pairs)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2, 3, 4, 6, 8])
    parser.add_argument("--lateral", type=int, default=1)
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--scenes", type=int, default=200)
    args = parser.parse_args()

    header = " | ".join(f"L={layers}" for layers in args.layers)
    print(f"| turns | median layers needed | {header} |")
    print("|---|---|" + "---|" * len(args.layers))
    for turns in args.turns:
        try:
            needed = layers_needed(turns, args.split, args.scenes, args.lateral)
        except ConfigError as error:  # too many turns for 4 pairs on a 32 x 32 grid
            print(f"| {turns} | {error} |")
            continue
        cells = " | ".join(
            f"{np.mean(np.asarray(needed) <= layers):.2f} / "
            f"{100 * paths.sweep_follower_miou(needed, layers):.1f}"
            for layers in args.layers
        )
        print(f"| {turns} | {np.median(needed):g} | {cells} |")


if __name__ == "__main__":
    main()
