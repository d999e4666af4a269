"""``pdn bench``: benchmarks. ``speed`` times the forward pass of a freshly built model."""

from __future__ import annotations

import argparse
import statistics
import time
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


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def time_forward(model: Any, x: Any, *, warmup: int, repeats: int) -> list[float]:
    """Seconds per ``model(x)`` call for ``repeats`` calls after ``warmup`` untimed ones."""
    import torch

    synchronize = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    times = []
    with torch.inference_mode():
        for index in range(warmup + repeats):
            synchronize()
            start = time.perf_counter()
            model(x)
            synchronize()
            if index >= warmup:
                times.append(time.perf_counter() - start)
    return times


def run_speed(args: argparse.Namespace) -> int:
    import torch

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
    times = time_forward(model, x, warmup=args.warmup, repeats=args.repeats)
    median = statistics.median(times)
    q1, _, q3 = statistics.quantiles(times, n=4) if len(times) > 1 else (median,) * 3
    where = f"{device}" + (f" ({torch.get_num_threads()} threads)" if device.type == "cpu" else "")
    mode = f" {args.mode}" if args.mode else ""
    print(
        f"speed: {args.arch}{mode}/{args.backbone} os{args.output_stride}, batch {args.batch} x "
        f"{args.size[0]}x{args.size[1]} on {where}: median {1000 * median:.1f} ms/batch "
        f"(quartiles {1000 * q1:.1f}-{1000 * q3:.1f}, {len(times)} runs after {args.warmup} "
        f"warm-up), {args.batch / median:.1f} img/s"
    )
    return 0
