"""``pdn train [CONFIG] [KEY=VALUE ...] [--out DIR] [--resume]``."""

from __future__ import annotations

import argparse
import sys

from ..engine.config import DEFAULT_CONFIG

EPILOG = """\
examples:
  pdn train                                   # the embedded default (demo: PDN, tiny backbone, CPU)
  pdn train nuclei train.iters=300            # a packaged config by name, with an override
  pdn train my.yaml data.root=/data/ADE --out runs/ade
  pdn train --out runs/ade --resume           # continue runs/ade/last.pt with its own config
  torchrun --nproc_per_node 4 -m pdn train ade20k_pdn_r101 data.root=/data   # DDP

Overrides are dotted KEY=VALUE pairs (values parse as YAML: numbers, null, [1,2]); an unknown key is
an error that lists the close matches. Sections: model, data, train, eval (see pdn/engine/config.py).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model (the config's optimizer: SGD for pretrained backbones, AdamW for the "
        "from-scratch configs; poly lr, aux loss; resumable; torchrun for DDP)",
        description="Train a segmentation model with the standard recipe. Writes the run directory: "
        "config.yaml (resolved config), last.pt and best.pt (checkpoints), log.jsonl (scalars) and "
        "metrics.json (final evaluation).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "items",
        nargs="*",
        metavar="[CONFIG] [KEY=VALUE ...]",
        help=f"a YAML config file or the name of a packaged one (default: {DEFAULT_CONFIG}), "
        "then dotted overrides such as train.iters=1000 data.root=/data",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="run directory (default: runs/<config name>); refused if it already holds last.pt "
        "unless --resume is given",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue DIR/last.pt: restores weights, optimizer, scheduler, iteration, RNG states "
        "and AMP scaler (starts fresh when there is no last.pt yet)",
    )
    parser.set_defaults(func=run)


def split_items(items: list[str]) -> tuple[str | None, list[str]]:
    """``[CONFIG] [KEY=VALUE ...]`` -> (CONFIG or None, overrides)."""
    if items and "=" not in items[0]:
        return items[0], items[1:]
    return None, items


def run(args: argparse.Namespace) -> int:
    from ..engine.rundir import run_directory_lock
    from ..engine.trainer import default_run_dir, prepare_run, train

    config, overrides = split_items(args.items)
    stray = [item for item in overrides if "=" not in item]
    if stray:
        print(f"pdn train: error: expected KEY=VALUE, got {stray[0]!r}", file=sys.stderr)
        return 2
    out = args.out if args.out is not None else default_run_dir(config)
    with run_directory_lock(out):
        cfg, run_dir, ckpt = prepare_run(config, overrides, out, resume=args.resume)
        result = train(cfg, run_dir, resume=ckpt)
    if result.stopped_by is not None:
        return 130 if result.stopped_by == "SIGINT" else 143
    return 0
