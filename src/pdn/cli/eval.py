"""``pdn eval``: score a checkpoint on the validation split of its run config."""

from __future__ import annotations

import argparse
from typing import Any

from .predict import add_inference_arguments, inference_overrides

HELP = "evaluate a checkpoint: aAcc, mAcc, mIoU, fwIoU, per-class IoU/Acc, confusion matrix"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "eval",
        help=HELP,
        description="Evaluate a checkpoint on the validation split named in its run config "
        "(data.name, data.root, data.val_split, data.options), at each image's own resolution. "
        "Prints the per-class table and aAcc/mAcc/mIoU/fwIoU (classes with no ground truth and no "
        "prediction are left out of mIoU and listed), and writes DIR/metrics.json (fractions in "
        "[0, 1]), DIR/confusion.npy (rows: ground truth, columns: prediction) and "
        "DIR/confusion.png (row-normalised).",
    )
    parser.add_argument(
        "--checkpoint", required=True, metavar="CKPT", help="checkpoint (.pt) from pdn train"
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="report folder (default: eval/ next to the checkpoint)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides, e.g. data.root=/data/VOCdevkit data.val_split=val eval.flip=true "
        "(give them before --scales, which takes every number that follows)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_inference_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.evaluate import evaluate_checkpoint

    outcome = evaluate_checkpoint(
        args.checkpoint,
        out_dir=args.out,
        overrides=args.overrides,
        inference=inference_overrides(args),
        device=args.device,
        progress=not args.quiet,
        compile_mode=args.compile,
    )
    result = outcome.result
    print(f"{outcome.dataset}; inference: {outcome.options.describe()}")
    print(result.table())
    print(f"{result.num_pixels} labelled pixels")
    files = outcome.files
    print(f"wrote {files['metrics']}, {files['confusion']}, {files['confusion_png']}")
    return 0
