"""Does a trained paths model follow the paths, or guess its scene's most frequent colour?

    .venv/bin/python benchmarks/paths_objects.py CHECKPOINT [CHECKPOINT ...] [--split test]

For each checkpoint written by ``pdn train`` on the paths benchmark (``target: colour``), rebuilds
the split it was scored on (the dataset options come from the checkpoint's config), labels every
scene, and prints the mIoU and the share of objects most of whose pixels get the right class
(:func:`pdn.data.paths.objects_right`): of all; of those whose colour is not the most frequent of
their scene's cues (:func:`pdn.data.paths.of_the_mode`: guessing that colour, which pooling can
do, is always wrong there, and chance is 25 %); and of those whose path two sweep layers can or
cannot carry (:func:`pdn.data.paths.sweep_layers_needed`); and the share of objects that pass
the own-cue test (:func:`pdn.data.paths.own_cue_read`: each object's own cue painted in each of
the 4 colours, the other cues unchanged, 16 scenes per scene; right every time). mIoU alone does
not tell following a path from a guess: the mode guess scores about 49, and guesses that pick
cues by their place up to 53 (``benchmarks/paths_guesses.py``), which also get up to 41 % of the
off-mode objects right but pass the own-cue test for at most 40 % of the objects.
The same split as ``benchmarks/paths_heads.py`` reports for heads trained on an ideal input.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from pdn import build_dataset
from pdn.data import paths
from pdn.engine.checkpoint import load_checkpoint
from pdn.engine.segmenter import Segmenter
from pdn.errors import PdnError
from pdn.metrics import SegmentationMetric

LAYERS_SPLIT = 2  # objects are scored apart by whether this many sweep layers carry their cue


def object_scores(checkpoint: str, split: str) -> tuple[float, dict[str, float]]:
    """mIoU over ``split`` and the share of objects right in each group of the module docstring
    (keys ``all``, ``off the mode``, ``<= 2 layers``, ``> 2 layers``), and of objects that pass
    the own-cue test (``own-cue test passed``)."""
    ckpt = load_checkpoint(checkpoint)
    data = ckpt["config"]["data"]
    options = dict(data.get("options") or {})
    if data["name"] != "paths" or options.get("target", "colour") != "colour":
        raise SystemExit(
            f"paths_objects.py: error: {checkpoint}: trained on {data['name']!r} "
            f"(options {options}), not the paths benchmark's colour target"
        )
    dataset = build_dataset("paths", split=split, **options)
    segmenter = Segmenter.from_checkpoint(ckpt, device="cpu")
    metric = SegmentationMetric(len(dataset.classes))
    right, off_mode, needed, passed = [], [], [], []
    for start in range(0, len(dataset), 16):
        indices = range(start, min(start + 16, len(dataset)))
        samples = [dataset[i] for i in indices]
        predictions = segmenter.predict_batch([image for image, _ in samples])
        for index, (_, mask), prediction in zip(indices, samples, predictions, strict=True):
            metric.update(torch.from_numpy(prediction)[None], mask[None])
            layout, colours = dataset.layout(index), dataset.colours(index)
            right.extend(paths.objects_right(layout, colours, prediction))
            off_mode.extend(~paths.of_the_mode(colours))
            needed.extend(paths.sweep_layers_needed(layout, k) for k in range(len(colours)))
            trials = paths.own_cue_trials(colours)
            images = [paths.paint(layout, trial)[0] for _, trial in trials]
            recoloured = segmenter.predict_batch([torch.from_numpy(image) for image in images])
            passed.extend(paths.own_cue_read(layout, trials, recoloured))
    right, off_mode, short = (
        np.asarray(right),
        np.asarray(off_mode),
        np.asarray(needed) <= LAYERS_SPLIT,
    )
    groups = {
        "all": np.ones_like(right),
        "off the mode": off_mode,
        f"<= {LAYERS_SPLIT} layers": short,
        f"> {LAYERS_SPLIT} layers": ~short,
    }
    passed = np.asarray(passed)
    shares = {
        name: float(right[group].mean()) if group.any() else float("nan")
        for name, group in groups.items()
    }
    shares["own-cue test passed"] = float(passed.mean())
    return metric.compute().mIoU, shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="last.pt or best.pt files of pdn train")
    parser.add_argument("--split", default="test", help="split to score (default: test)")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    header = None
    for checkpoint in args.checkpoints:
        try:
            miou, shares = object_scores(checkpoint, args.split)
        except PdnError as error:  # already one line naming the file
            raise SystemExit(f"paths_objects.py: error: {error}") from None
        passed = shares.pop("own-cue test passed")
        if header is None:
            header = " / ".join(shares)
            print(
                f"| checkpoint | mIoU % | objects right % ({header}) | own-cue test passed % |\n"
                "|---|---|---|---|"
            )
        objects = " / ".join(f"{100 * share:.0f}" for share in shares.values())
        print(f"| {checkpoint} | {100 * miou:.1f} | {objects} | {100 * passed:.0f} |", flush=True)


if __name__ == "__main__":
    main()
