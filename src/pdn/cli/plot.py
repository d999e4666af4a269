"""``pdn plot``: the curves of one or more training runs as one PNG."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "draw loss, learning rate, val mIoU and cue share of runs against iteration (PNG)"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plot",
        help=HELP,
        description="Read RUN_DIR/log.jsonl of each run and draw, on shared axes, the training "
        "loss (main head; auxiliary head thin), the learning rate, the validation mIoU and, "
        "for the context benchmark, the cue share (how much of an object's decision comes from "
        "its cue, logged by pdn train), one colour per run.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories of pdn train")
    parser.add_argument("--out", default="runs.png", metavar="PNG", help="default: runs.png")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.plot import plot_runs

    print(f"wrote {plot_runs(args.runs, args.out)}")
    return 0
