"""``pdn bench``: ``speed`` (the diffusion stack against the other heads and the machine's limit),
``ablation`` (the claim, on held-out data) and ``latency`` (one model's forward pass)."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Mapping
from typing import Any

from ..vocabulary import DIFFUSION_MODES, MIN_INPUT_SIZE, PRECISIONS
from .predict import add_runtime_arguments

HELP = "benchmarks: speed (stack vs heads vs the machine), ablation (the claim), latency (a model)"

LATENCY_DESCRIPTION = (
    "Build a model with random weights (eval mode, no auxiliary head) and time "
    "its forward pass on random normalised input of --batch x 3 x H x W: --warmup untimed "
    "runs, then --repeats timed runs (CUDA synchronised). Prints one line: median and "
    "quartiles in ms per batch, and images per second at the median."
)
SPEED_DESCRIPTION = (
    "Measure in one process, with warm-up and medians: (heads) the 2-layer "
    "diffusion stack and the PDN, ASPP and PPM heads on B x C x s x s feature maps, forward, "
    "forward+backward and training memory (CUDA: the allocator's peak; CPU: the tensors "
    "autograd saves); (efficiency) the stack's achieved GFLOP/s over a dense 3x3 conv's of "
    "the same width; (e2e) PDN against ASPP end to end; (scaling) PDN's latency at several "
    "input sizes, beside fcn on the same backbone, and the fitted exponents of latency ~ "
    "pixels ** a. What a table compares (the modules on one map; the stack, the conv and "
    "the GEMM; the models at one input size) is timed round by round against each other, so "
    "a slow stretch of the machine falls on all of them alike. Prints Markdown tables."
)
ABLATION_DESCRIPTION = (
    "Train every variant on TASK with the same backbone, data, optimizer, "
    "iterations and seeds (each run is 'pdn train' in a subprocess, into OUT/TASK-BACKBONE/"
    "VARIANT/seedN), score the final weights on held-out data, time the deployed models on one "
    "held-out image on the CPU, round by round against each other, and print a Markdown table "
    "(also written to OUT/TASK-BACKBONE/results.json and table.md, which keep the rows of "
    "earlier calls with other variants and the same seeds; a budget other than the config's "
    "gets the folder OUT/TASK-BACKBONE-Niters, a recipe changed with --set the folder "
    "OUT/TASK-BACKBONE-KEY=VALUE, runs started with --init-from the folder "
    "OUT/TASK-BACKBONE-from-NAME). Finished runs are reused and interrupted ones "
    "resumed, so running the command again continues an interrupted ablation, and running it "
    "again with every variant re-times them all under the same conditions. "
    "Variants: {variants}."
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench",
        help=HELP,
        description="Benchmarks of pdn models. Actions: speed (the diffusion stack against the "
        "ASPP and PPM heads and a dense convolution, PDN against ASPP end to end, latency against "
        "input size), ablation (baseline heads and PDN variants trained with the same budget and "
        "seeds), latency (one model's forward pass). Record results in BENCHMARKS.md with the "
        "command and the machine.",
    )
    parser.set_defaults(func=lambda args: _usage(parser))
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    _register_latency(actions)
    _register_speed(actions)
    _register_ablation(actions)


def _add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device``, the same for every action that runs on a device of the user's choice."""
    parser.add_argument(
        "--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)"
    )


def _register_latency(actions: Any) -> None:
    latency = actions.add_parser(
        "latency",
        help="time model(x): median latency over repeats, after warm-up",
        description=LATENCY_DESCRIPTION,
    )
    latency.add_argument("--arch", default="pdn", help="pdn, fcn, aspp or ppm (default: pdn)")
    latency.add_argument("--backbone", default="resnet50", help="backbone name (default: resnet50)")
    latency.add_argument("--output-stride", type=int, default=8, help="8, 16 or 32 (default: 8)")
    latency.add_argument("--classes", type=int, default=150, help="output classes (default: 150)")
    latency.add_argument("--mode", choices=DIFFUSION_MODES, default=None, help="pdn diffusion mode")
    latency.add_argument("--channels", type=int, default=None, help="head width (default: arch's)")
    latency.add_argument(
        "--size", nargs=2, type=int, default=(512, 512), metavar=("H", "W"), help="input size"
    )
    latency.add_argument("--batch", type=int, default=1, help="images per forward pass")
    latency.add_argument("--warmup", type=int, default=3, help="untimed runs first (default: 3)")
    latency.add_argument("--repeats", type=int, default=10, help="timed runs (default: 10)")
    _add_device_argument(latency)
    add_runtime_arguments(latency, default_precision="fp32")
    latency.set_defaults(func=run_latency)


def _register_speed(actions: Any) -> None:
    speed = actions.add_parser(
        "speed",
        help="the diffusion stack against ASPP/PPM and a dense conv; PDN vs ASPP; size scaling",
        description=SPEED_DESCRIPTION,
    )
    _add_speed_feature_map_arguments(speed)
    _add_speed_model_arguments(speed)
    _add_speed_timing_arguments(speed)
    speed.set_defaults(func=run_speed)


def _add_speed_feature_map_arguments(speed: argparse.ArgumentParser) -> None:
    """The sections to run and the feature maps of the heads and efficiency sections."""
    from ..bench.speed import SECTIONS

    speed.add_argument(
        "--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="default: all"
    )
    speed.add_argument("--channels", type=int, default=512, help="feature width C (default: 512)")
    speed.add_argument(
        "--sizes", nargs="+", type=int, default=[32, 64, 128], help="heads: s (default: 32 64 128)"
    )
    speed.add_argument(
        "--batches", nargs="+", type=int, default=[1, 8], help="heads, efficiency: B (default: 1 8)"
    )
    speed.add_argument(
        "--efficiency-size", type=int, default=64, help="efficiency: s (default: 64)"
    )


def _add_speed_model_arguments(speed: argparse.ArgumentParser) -> None:
    """The whole models of the e2e and scaling sections and their input sizes."""
    speed.add_argument(
        "--backbone", default="resnet50", help="e2e and scaling backbone (default: resnet50)"
    )
    speed.add_argument("--e2e-size", type=int, default=512, help="e2e input side (default: 512)")
    speed.add_argument(
        "--scaling-sizes",
        nargs="+",
        type=int,
        default=[256, 384, 512, 640, 768],
        help="scaling input sides (default: 256 384 512 640 768)",
    )
    speed.add_argument(
        "--scaling-archs",
        nargs="+",
        default=["pdn", "fcn"],
        help="scaling models on --backbone; fcn shows what the backbone alone does (default: pdn fcn)",
    )


def _add_speed_timing_arguments(speed: argparse.ArgumentParser) -> None:
    """How long and how the competitors are timed, on which device, and where raw results go."""
    from ..engine.inference import COMPILE_MODES

    speed.add_argument(
        "--budget",
        type=float,
        default=5.0,
        help="seconds of timed calls per competitor, at least 3 rounds (default: 5)",
    )
    speed.add_argument(
        "--compile",
        nargs="?",
        const="default",
        default=None,
        choices=COMPILE_MODES,
        metavar="MODE",
        help="efficiency and e2e: time the models compiled by torch.compile in MODE, one of "
        f"{', '.join(COMPILE_MODES)} (default: default; reduce-overhead replays CUDA graphs, "
        "which a GPU needs for the sweep; compiling the stack's loop takes minutes)",
    )
    speed.add_argument(
        "--precision",
        nargs="+",
        choices=PRECISIONS,
        default=["fp32"],
        help="e2e and scaling: autocast dtype of the whole models, one or several (bf16 also on "
        "the CPU, fp16 on CUDA only; several are timed round by round against each other in one "
        "run, the same weights under each, and the e2e table gives each model's latency "
        "relative to the first; default: fp32)",
    )
    speed.add_argument("--json", default=None, metavar="FILE", help="also write the raw results")
    _add_device_argument(speed)


def run_speed(args: argparse.Namespace) -> int:
    import json

    import torch

    from ..bench import speed as bench
    from ..engine.segmenter import default_device
    from ..errors import ConfigError

    sizes = [*args.sizes, *args.scaling_sizes, args.e2e_size, args.efficiency_size]
    if min(sizes) < 1 or args.channels < 4 or min(args.batches) < 1 or args.budget <= 0:
        raise ConfigError("sizes, batches and --budget must be positive and --channels >= 4")
    if "scaling" in args.sections and len(set(args.scaling_sizes)) < 2:
        raise ConfigError("--scaling-sizes needs at least two different sizes to fit an exponent")
    device = default_device(args.device)
    if "fp16" in args.precision and device.type != "cuda":
        raise ConfigError(
            f"--precision fp16 needs a CUDA device, got {device}; use bf16 on the CPU"
        )
    timing = {"device": device, "budget": bench.Budget(seconds=args.budget)}
    print(_device_line(device))
    results: dict[str, Any] = {"device": str(device), "torch": torch.__version__}
    for section, run in _SPEED_SECTIONS.items():
        if section in args.sections:
            results[section] = run(args, timing)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0


def _device_line(device: Any) -> str:
    """``device: ...`` naming the device, its threads (CPU) or TF32 settings (CUDA), and torch."""
    import platform

    import torch

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    if device.type == "cpu":
        threads = f", {torch.get_num_threads()} threads"
    else:  # PyTorch's defaults: convolutions in TF32, matrix products in full fp32
        threads = (
            f", TF32 convolutions {'on' if torch.backends.cudnn.allow_tf32 else 'off'}, "
            f"TF32 matmul {'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}"
        )
    return f"device: {device} ({where or platform.machine()}{threads}), torch {torch.__version__}"


# Each section below takes the parsed arguments and ``timing``: the ``device`` and ``budget``
# keywords of every bench.speed.run_* function. It prints its table and returns its results.


def _speed_heads(args: argparse.Namespace, timing: Mapping[str, Any]) -> Any:
    from ..bench import speed as bench

    print(bench.heads_table([]), flush=True)  # the header; each row prints once measured
    rows = bench.run_heads(
        args.sizes,
        args.batches,
        channels=args.channels,
        num_classes=150,
        log=lambda line: print(line, flush=True),
        **timing,
    )
    print()
    return rows


def _speed_efficiency(args: argparse.Namespace, timing: Mapping[str, Any]) -> Any:
    from ..bench import speed as bench

    rows = bench.run_efficiency(
        args.efficiency_size,
        args.batches,
        channels=args.channels,
        compile_mode=args.compile,
        **timing,
    )
    print(bench.efficiency_table(rows) + "\n", flush=True)
    return rows


def _speed_end_to_end(args: argparse.Namespace, timing: Mapping[str, Any]) -> Any:
    from ..bench import speed as bench

    rows = bench.run_end_to_end(
        ("pdn", "aspp"),
        args.backbone,
        args.e2e_size,
        compile_mode=args.compile,
        precisions=args.precision,
        **timing,
    )
    print(bench.end_to_end_table(rows) + "\n", flush=True)
    return rows


def _speed_scaling(args: argparse.Namespace, timing: Mapping[str, Any]) -> Any:
    from ..bench import speed as bench

    scaling = bench.run_scaling(
        args.scaling_archs, args.backbone, args.scaling_sizes, precisions=args.precision, **timing
    )
    print(bench.scaling_table(scaling) + "\n", flush=True)
    return scaling


# Each section of ``pdn bench speed``, in the order it runs (and its results are written).
_SPEED_SECTIONS = {
    "heads": _speed_heads,
    "efficiency": _speed_efficiency,
    "e2e": _speed_end_to_end,
    "scaling": _speed_scaling,
}


def _ablation_tasks_help() -> str:
    """The tasks of ``pdn bench ablation``, one wrapped paragraph each, from their definitions."""
    from ..bench.ablation import TASKS

    lines = ["tasks:"]
    for name, task in TASKS.items():
        lines.append(
            textwrap.fill(
                f"{name}: {task.description} (config {task.config})",
                width=88,
                initial_indent="  ",
                subsequent_indent="    ",
            )
        )
    return "\n".join(lines)


def _register_ablation(actions: Any) -> None:
    from ..bench.ablation import VARIANTS

    variants = "; ".join(f"{v.key}: {v.name}" for v in VARIANTS)
    ablation = actions.add_parser(
        "ablation",
        help="train baseline heads and PDN variants with the same budget and seeds, table mIoU",
        description=textwrap.fill(ABLATION_DESCRIPTION.format(variants=variants), width=88),
        epilog=_ablation_tasks_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_ablation_run_arguments(ablation)
    _add_ablation_recipe_arguments(ablation)
    ablation.set_defaults(func=run_ablation)


def _add_ablation_run_arguments(ablation: argparse.ArgumentParser) -> None:
    """What is trained: the task, the backbone, the variants, the seeds and the iterations."""
    from ..bench.ablation import BACKBONE_OVERRIDES, TASKS

    ablation.add_argument(
        "task",
        choices=sorted(TASKS),
        help="the task to train on (each is described after the options)",
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


def _add_ablation_recipe_arguments(ablation: argparse.ArgumentParser) -> None:
    """How every run trains (--set, --init-from) and where the runs go (--out)."""
    ablation.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="recipe",
        help="change the training recipe of every run, e.g. --set train.aux_weight=0 (repeat it "
        "for several keys; train.* or data.* keys, the variants set model.*)",
    )
    ablation.add_argument(
        "--init-from",
        default=None,
        metavar="DIR",
        help="start each run from the final weights of the run of the same variant and seed in "
        "the folder DIR of an earlier ablation (a curriculum: e.g. train on small scenes first)",
    )
    ablation.add_argument(
        "--out", default="runs/ablation", metavar="DIR", help="default: runs/ablation"
    )
    ablation.add_argument(
        "--costs-only",
        action="store_true",
        help="train nothing: print each variant's parameters and CPU latency on the task's "
        "held-out input (random weights, timed round by round against each other)",
    )


def run_ablation(args: argparse.Namespace) -> int:
    from ..bench.ablation import TASKS, markdown_table, variant_costs
    from ..bench.ablation import run_ablation as ablate

    if args.costs_only:
        costs = variant_costs(
            args.task, backbone=args.backbone, variants=args.variants, recipe=args.recipe
        )
        print(f"{TASKS[args.task].description}; backbone {args.backbone}\n\n{costs}")
        return 0
    rows = ablate(
        args.task,
        backbone=args.backbone,
        seeds=args.seeds,
        variants=args.variants,
        iters=args.iters,
        recipe=args.recipe,
        init_from=args.init_from,
        out=args.out,
    )
    recipe = f"; recipe {' '.join(args.recipe)}" if args.recipe else ""
    if args.init_from:
        recipe += f"; each run started from its run in {args.init_from}"
    print(
        f"\n{TASKS[args.task].description}; backbone {args.backbone}{recipe}\n\n"
        f"{markdown_table(rows)}"
    )
    return 0


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def run_latency(args: argparse.Namespace) -> int:
    import torch

    from ..bench.timing import time_forward
    from ..engine.inference import AutocastModel, prepare_model
    from ..engine.segmenter import default_device
    from ..errors import ConfigError
    from ..models import build_model

    if args.repeats < 1 or args.warmup < 0 or args.batch < 1 or min(args.size) < MIN_INPUT_SIZE:
        raise ConfigError(
            "need --repeats >= 1, --warmup >= 0, --batch >= 1 and --size >= "
            f"{MIN_INPUT_SIZE} {MIN_INPUT_SIZE}"
        )
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
    model = prepare_model(
        AutocastModel(model.to(device).eval(), args.precision),
        channels_last=args.channels_last,
        compile_mode=args.compile,
    )
    x = torch.randn(args.batch, 3, *args.size, device=device)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    timing = time_forward(model, x, warmup=args.warmup, repeats=args.repeats)
    median, (q1, q3) = timing.median, timing.quartiles
    where = f"{device}" + (f" ({torch.get_num_threads()} threads)" if device.type == "cpu" else "")
    mode = f" {args.mode}" if args.mode else ""
    extras = [args.precision] + (["channels-last"] if args.channels_last else [])
    extras += [f"compiled ({args.compile})"] if args.compile else []
    where += ", " + ", ".join(extras)
    print(
        f"latency: {args.arch}{mode}/{args.backbone} os{args.output_stride}, batch {args.batch} x "
        f"{args.size[0]}x{args.size[1]} on {where}: median {1000 * median:.1f} ms/batch "
        f"(quartiles {1000 * q1:.1f}-{1000 * q3:.1f}, {len(timing.seconds)} runs after {args.warmup} "
        f"warm-up), {args.batch / median:.1f} img/s"
    )
    return 0
