"""Which cue sides does a trained context-benchmark model read?

    .venv/bin/python benchmarks/context_sides.py CHECKPOINT [CHECKPOINT ...] [--split test]
        [--confusion]

For each checkpoint written by ``pdn train`` on the context benchmark, rebuilds the split it was
scored on (the dataset options come from the checkpoint's config) and prints the share of object
pixels labelled correctly, separately for the scenes whose cue lies on the top, left, bottom and
right side. A model that cannot see the cue scores about 0.25 on every side (one class of four);
a sweep that runs only down and right can carry a cue from the top and the left, not from the
bottom or the right. ``--confusion`` also prints, per checkpoint, where the object pixels of each
cue colour go (rows: the true colour; columns: background and the four colours; each row sums
to 1): a model that carries the cue but merges two colours shows two rows alike.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from pdn import build_dataset
from pdn.data.context import CONTEXT_CLASSES, SIDES, ContextDataset
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


def object_counts(checkpoint: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(correct, confusion)``: ``correct`` ``float (4, 2)``, per cue side (``SIDES``) the object
    pixels labelled right and all object pixels; ``confusion`` ``int (K, K)``, object pixels by
    true class (row) and predicted class (column), row 0 empty."""
    dataset, segmenter = load_context_run(checkpoint, split)
    correct = np.zeros((4, 2))
    num_classes = len(dataset.classes)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    for start in range(0, len(dataset), 16):
        indices = range(start, min(start + 16, len(dataset)))
        samples = [dataset[i] for i in indices]
        predictions = segmenter.predict_batch([image for image, _ in samples])
        for index, (_, mask), prediction in zip(indices, samples, predictions, strict=True):
            side = dataset.layout(index).side
            labels = mask.numpy()
            objects = labels > 0
            predicted = np.asarray(prediction)[objects]
            correct[side] += ((predicted == labels[objects]).sum(), objects.sum())
            np.add.at(confusion, (labels[objects], predicted), 1)
    return correct, confusion


def accuracy_by_side(checkpoint: str, split: str) -> np.ndarray:
    """``float (4,)``: object-pixel accuracy for the cues on ``SIDES`` (top, left, bottom, right)."""
    correct, _ = object_counts(checkpoint, split)
    return correct[:, 0] / correct[:, 1]


def confusion_table(confusion: np.ndarray, classes: list[str] | tuple[str, ...]) -> str:
    """The object rows of ``confusion`` as a markdown table of row shares."""
    lines = [f"| true \\ predicted | {' | '.join(classes)} |", f"|---|{'---|' * len(classes)}"]
    for k in range(1, len(classes)):
        shares = confusion[k] / max(int(confusion[k].sum()), 1)
        lines.append(f"| {classes[k]} | {' | '.join(f'{share:.2f}' for share in shares)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="last.pt or best.pt files of pdn train")
    parser.add_argument("--split", default="test", help="split to score (default: test)")
    parser.add_argument(
        "--confusion", action="store_true", help="also print each checkpoint's colour confusion"
    )
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    rows, confusions = [], []
    for checkpoint in args.checkpoints:
        try:
            correct, confusion = object_counts(checkpoint, args.split)
        except PdnError as error:  # already one line naming the file
            raise SystemExit(f"context_sides.py: error: {error}") from None
        shares = correct[:, 0] / correct[:, 1]
        rows.append(f"| {checkpoint} | {' | '.join(f'{share:.2f}' for share in shares)} |")
        confusions.append((checkpoint, confusion))
    print(f"| checkpoint | {' | '.join(SIDES)} |\n|---|{'---|' * len(SIDES)}")
    print("\n".join(rows))
    if args.confusion:
        for checkpoint, confusion in confusions:
            print(f"\n{checkpoint}:\n{confusion_table(confusion, CONTEXT_CLASSES)}")


if __name__ == "__main__":
    main()
