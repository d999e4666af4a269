"""Which cue sides does a trained context-benchmark model read?

    .venv/bin/python benchmarks/context_sides.py CHECKPOINT [CHECKPOINT ...] [--split test]

For each checkpoint written by ``pdn train`` on the context benchmark, rebuilds the split it was
scored on (the dataset options come from the checkpoint's config) and prints the share of object
pixels labelled correctly, separately for the scenes whose cue lies on the top, left, bottom and
right side. A model that cannot see the cue scores about 0.25 on every side (one class of four);
a sweep that runs only down and right can carry a cue from the top and the left, not from the
bottom or the right.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from pdn import build_dataset
from pdn.data.context import SIDES, ContextDataset
from pdn.engine.checkpoint import load_checkpoint
from pdn.engine.segmenter import Segmenter
from pdn.errors import PdnError


def load_context_run(checkpoint: str, split: str) -> tuple[ContextDataset, Segmenter]:
    """The ``split`` of the context benchmark a checkpoint was trained on (its data options) and
    the checkpoint's model on the CPU; exits with a message for another dataset."""
    ckpt = load_checkpoint(checkpoint)
    data = ckpt["config"]["data"]
    if data["name"] != "context":
        raise SystemExit(f"{checkpoint}: trained on {data['name']!r}, not the context benchmark")
    dataset = build_dataset("context", split=split, **dict(data.get("options") or {}))
    return dataset, Segmenter.from_checkpoint(ckpt, device="cpu")


def accuracy_by_side(checkpoint: str, split: str) -> np.ndarray:
    """``float (4,)``: object-pixel accuracy for the cues on ``SIDES`` (top, left, bottom, right)."""
    dataset, segmenter = load_context_run(checkpoint, split)
    correct, total = np.zeros(4), np.zeros(4)
    for start in range(0, len(dataset), 16):
        indices = range(start, min(start + 16, len(dataset)))
        samples = [dataset[i] for i in indices]
        predictions = segmenter.predict_batch([image for image, _ in samples])
        for index, (_, mask), prediction in zip(indices, samples, predictions, strict=True):
            side = dataset.layout(index).side
            labels = mask.numpy()
            objects = labels > 0
            correct[side] += (prediction[objects] == labels[objects]).sum()
            total[side] += objects.sum()
    return correct / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="last.pt or best.pt files of pdn train")
    parser.add_argument("--split", default="test", help="split to score (default: test)")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    print(f"| checkpoint | {' | '.join(SIDES)} |\n|---|{'---|' * len(SIDES)}")
    for checkpoint in args.checkpoints:
        try:
            shares = accuracy_by_side(checkpoint, args.split)
        except PdnError as error:  # already one line naming the file
            raise SystemExit(f"context_sides.py: error: {error}") from None
        print(f"| {checkpoint} | {' | '.join(f'{share:.2f}' for share in shares)} |")


if __name__ == "__main__":
    main()
