"""``pdn bench``: benchmarks. ``speed`` times the forward pass of a freshly built model."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "benchmarks: 'speed' times model(x) for an architecture, backbone and input size"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench",
        help=HELP,
        description="Benchmarks of pdn models. Actions: speed (forward-pass latency).",
    )
    parser.set_defaults(func=lambda args: _usage(parser))
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    speed = actions.add_parser(
        "speed",
        help="time model(x): median latency over repeats, after warm-up",
        description="Build a model with random weights (eval mode, no auxiliary head) and time "
        "its forward pass on random normalised input of --batch x 3 x H x W: --warmup untimed "
        "runs, then --repeats timed runs (CUDA synchronised). Prints one line: median and "
        "quartiles in ms per batch, and images per second at the median.",
    )
    speed.add_argument("--arch", default="pdn", help="pdn, fcn, aspp or ppm (default: pdn)")
    speed.add_argument("--backbone", default="resnet50", help="backbone name (default: resnet50)")
    speed.add_argument("--output-stride", type=int, default=8, help="8, 16 or 32 (default: 8)")
    speed.add_argument("--classes", type=int, default=150, help="output classes (default: 150)")
    speed.add_argument(
        "--mode", choices=("sweep", "layerwise"), default=None, help="pdn diffusion mode"
    )
    speed.add_argument("--channels", type=int, default=None, help="head width (default: arch's)")
    speed.add_argument(
        "--size", nargs=2, type=int, default=(512, 512), metavar=("H", "W"), help="input size"
    )
    speed.add_argument("--batch", type=int, default=1, help="images per forward pass")
    speed.add_argument("--warmup", type=int, default=3, help="untimed runs first (default: 3)")
    speed.add_argument("--repeats", type=int, default=10, help="timed runs (default: 10)")
    speed.add_argument(
        "--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)"
    )
    speed.set_defaults(func=run_speed)
    _register_ablation(actions)


def _register_ablation(actions: Any) -> None:
    from ..bench.ablation import BACKBONE_OVERRIDES, TASKS, VARIANTS

    variants = "; ".join(f"{v.key}: {v.name}" for v in VARIANTS)
    ablation = actions.add_parser(
        "ablation",
        help="train baseline heads and PDN variants with the same budget and seeds, table mIoU",
        description="Train every variant on TASK with the same backbone, data, optimizer, "
        "iterations and seeds (each run is 'pdn train' in a subprocess, into OUT/TASK-BACKBONE/"
        "VARIANT/seedN), score the final weights on held-out data, time the deployed model on one "
        "held-out image on the CPU, and print a Markdown table (also written to OUT/TASK-BACKBONE/"
        "results.json and table.md). Finished runs are reused and interrupted ones resumed, so "
        f"running the command again continues an interrupted ablation. Variants: {variants}.",
    )
    ablation.add_argument(
        "task", choices=sorted(TASKS), help="context (the generated benchmark) or nuclei"
    )
    ablation.add_argument(
        "--backbone",
        default="tiny",
        choices=sorted(BACKBONE_OVERRIDES),
        help="tiny (from scratch) or efficientnet_lite0 (packaged ImageNet weights); default tiny",
    )
    ablation.add_argument(
        "--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds (default: 0 1 2)"
    )
    ablation.add_argument(
        "--variants", nargs="+", default=None, metavar="KEY", help="a subset of the variants"
    )
    ablation.add_argument(
        "--iters", type=int, default=None, help="training iterations (default: the config's)"
    )
    ablation.add_argument(
        "--out", default="runs/ablation", metavar="DIR", help="default: runs/ablation"
    )
    ablation.set_defaults(func=run_ablation)


def run_ablation(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..bench.ablation import TASKS, markdown_table
    from ..bench.ablation import run_ablation as ablate

    rows = ablate(
        args.task,
        backbone=args.backbone,
        seeds=args.seeds,
        variants=args.variants,
        iters=args.iters,
        out=args.out,
    )
    table = markdown_table(rows)
    (Path(args.out) / f"{args.task}-{args.backbone}" / "table.md").write_text(table + "\n")
    print(f"\n{TASKS[args.task].description}; backbone {args.backbone}\n\n{table}")
    return 0


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def run_speed(args: argparse.Namespace) -> int:
    import torch

    from ..bench.timing import time_forward
    from ..engine.segmenter import default_device
    from ..errors import ConfigError
    from ..models import build_model

    if args.repeats < 1 or args.warmup < 0 or args.batch < 1 or min(args.size) < 32:
        raise ConfigError("need --repeats >= 1, --warmup >= 0, --batch >= 1 and --size >= 32 32")
    options = {k: v for k, v in {"mode": args.mode, "channels": args.channels}.items() if v}
    device = default_device(args.device)
    model = build_model(
        args.arch,
        args.classes,
        backbone=args.backbone,
        output_stride=args.output_stride,
        aux=False,
        **options,
    )
    model = model.to(device).eval()
    x = torch.randn(args.batch, 3, *args.size, device=device)
    timing = time_forward(model, x, warmup=args.warmup, repeats=args.repeats)
    median, (q1, q3) = timing.median, timing.quartiles
    where = f"{device}" + (f" ({torch.get_num_threads()} threads)" if device.type == "cpu" else "")
    mode = f" {args.mode}" if args.mode else ""
    print(
        f"speed: {args.arch}{mode}/{args.backbone} os{args.output_stride}, batch {args.batch} x "
        f"{args.size[0]}x{args.size[1]} on {where}: median {1000 * median:.1f} ms/batch "
        f"(quartiles {1000 * q1:.1f}-{1000 * q3:.1f}, {len(timing.seconds)} runs after {args.warmup} "
        f"warm-up), {args.batch / median:.1f} img/s"
    )
    return 0
