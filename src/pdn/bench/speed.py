"""``pdn bench speed``: how fast and how big PDN's diffusion stack is, against the heads it competes
with and against the machine's practical limit. Four sections, each a Markdown table:

- ``heads``: the diffusion stack (and the whole PDN head) against the ASPP and PPM heads on the same
  ``(B, C, s, s)`` feature map: forward latency, forward+backward latency, training memory.
- ``efficiency``: the stack's achieved GFLOP/s divided by that of a dense 3x3 convolution of the
  same width, measured in the same run (what the machine does at its best on this layer width),
  and by that of the matrix product a ``C -> 4C`` 1x1 convolution does on the same map (GEMM).
- ``e2e``: PDN against ASPP end to end (backbone included) at one input size.
- ``scaling``: PDN's end-to-end latency at several input sizes and the fitted exponent ``a`` of
  ``latency ~ pixels ** a``.

Latencies are medians after warm-up. What a table compares (the modules of one feature map, the
stack, the conv and the GEMM, the end-to-end models, the scaling models at one input size) is timed
round by round against each other, so a slow stretch of the machine falls on every one alike; the
number of rounds adapts to a time budget per call (at least ``min_repeats``). FLOPs count multiply
and add as two; the stack's are its useful FLOPs (the zero taps between the atrous rates, which the
grouped ``conv1d`` also multiplies, are not counted).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..models import build_model
from ..models.build import ARCHITECTURES
from ..models.diffusion import DiffusionStack, SweepDiffusion
from .timing import (
    Timing,
    count_parameters,
    forward_call,
    time_interleaved,
    training_call,
    training_memory,
)

SECTIONS = ("heads", "efficiency", "e2e", "scaling")
MIB = 2**20


@dataclass(frozen=True)
class Budget:
    """How long to time: ``warmup`` untimed rounds, then as many timed ones as fit in ``seconds``
    per call of a round (between ``min_repeats`` and ``max_repeats`` rounds)."""

    seconds: float = 5.0
    warmup: int = 2
    min_repeats: int = 3
    max_repeats: int = 20


def measure(
    calls: Mapping[str, Callable[[], object]], device: torch.device, budget: Budget
) -> dict[str, Timing]:
    """Median-ready timings of each of ``calls``, timed round by round against each other (see
    :func:`time_interleaved`); the first warm-up round sizes the number of timed rounds."""
    first = time_interleaved(calls, device, warmup=0, repeats=1)
    round_seconds = sum(timing.median for timing in first.values())
    fits = int(budget.seconds * len(calls) / max(round_seconds, 1e-6))
    repeats = max(budget.min_repeats, min(budget.max_repeats, fits))
    return time_interleaved(calls, device, warmup=max(0, budget.warmup - 1), repeats=repeats)


def context_modules(channels: int, num_classes: int) -> dict[str, nn.Module]:
    """The modules the ``heads`` section compares, each on a ``(B, channels, s, s)`` input."""
    modules: dict[str, nn.Module] = {"diffusion stack (L=2)": DiffusionStack(channels, 2)}
    for arch in ("pdn", "aspp", "ppm"):
        head_spec = ARCHITECTURES.get(arch)
        modules[f"{arch} head"] = head_spec.build(
            channels, num_classes, output_stride=8, channels=channels
        )
    return modules


def diffusion_flops(layer: SweepDiffusion, height: int, width: int) -> int:
    """Useful FLOPs of one ``sweep`` layer on one ``(C, height, width)`` map (multiply-add = 2).

    Input-to-state and fusion 1x1 convolutions over every site; the recurrent filters (their
    ``len(offsets)`` taps) over every site but those of each direction's first slice.
    """
    sites = height * width
    gates = 4 * layer.hidden
    flops = 2 * layer.channels * layer.streams * gates * sites  # input to state
    flops += 2 * layer.streams * layer.hidden * layer.channels * sites  # fusion
    for direction in layer.directions:
        first_slice = width if direction in ("down", "up") else height
        flops += 2 * gates * layer.hidden * len(layer.offsets) * (sites - first_slice)
    return flops


def dense_conv_flops(channels: int, height: int, width: int) -> int:
    """FLOPs of a 3x3 ``channels -> channels`` convolution on one ``(C, height, width)`` map."""
    return 2 * 9 * channels * channels * height * width


def _ms(timing: Timing) -> float:
    return 1000 * timing.median


def ms_text(ms: float) -> str:
    """A latency for a table: three significant digits below 100 ms (GPU timings), whole ms above."""
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.3g}"


def compiled_module(module: nn.Module, mode: str | None) -> nn.Module:
    """``module`` compiled by ``torch.compile`` in ``mode`` (static shapes), or as is for ``None``.

    ``reduce-overhead`` and ``max-autotune`` replay CUDA graphs, which removes the per-kernel launch
    cost of the sweep's loop on a GPU.
    """
    if mode is None:
        return module
    return torch.compile(module, mode=mode, dynamic=False)  # type: ignore[return-value]


def run_heads(
    sizes: Sequence[int],
    batches: Sequence[int],
    *,
    channels: int,
    num_classes: int,
    device: torch.device,
    budget: Budget,
    log: Callable[[str], None] = print,
    make_modules: Callable[[int, int], dict[str, nn.Module]] = context_modules,
) -> list[dict[str, Any]]:
    """One record per (module, size, batch): forward and training latency, training memory, of
    the modules ``make_modules(channels, num_classes)`` (default: :func:`context_modules`)."""
    # A process's first timed module pays one-time costs (thread pool, allocator, oneDNN kernels)
    # that the per-measurement warm-up does not absorb: run every module once before timing any.
    warm = torch.randn(batches[0], channels, sizes[0], sizes[0], device=device)
    for module in make_modules(channels, num_classes).values():
        for _ in range(2):
            training_call(module.to(device).train(), warm)()
    rows = []
    for size in sizes:
        for batch in batches:
            modules = {
                name: module.to(device)
                for name, module in make_modules(channels, num_classes).items()
            }
            torch.manual_seed(0)
            x = torch.randn(batch, channels, size, size, device=device)
            for module in modules.values():
                module.eval()
            forward = measure(
                {name: forward_call(module, x) for name, module in modules.items()}, device, budget
            )
            for module in modules.values():
                module.train()
            train = measure(
                {name: training_call(module, x) for name, module in modules.items()}, device, budget
            )
            for name, module in modules.items():
                row = {
                    "module": name,
                    "size": size,
                    "batch": batch,
                    "channels": channels,
                    "parameters": count_parameters(module),
                    "forward_ms": _ms(forward[name]),
                    "train_ms": _ms(train[name]),
                    "memory_mib": training_memory(module, x) / MIB,
                }
                rows.append(row)
                log(heads_table([row], header=False))
    return rows


def run_efficiency(
    size: int,
    batches: Sequence[int],
    *,
    channels: int,
    device: torch.device,
    budget: Budget,
    compile_mode: str | None = None,
) -> list[dict[str, Any]]:
    """Achieved GFLOP/s of the 2-layer stack and of a dense 3x3 conv, forward, same input; with
    ``compile_mode``, both run as compiled by ``torch.compile`` in that mode (compiled before
    timing)."""
    rows = []
    stack = DiffusionStack(channels, 2).to(device).eval()
    conv = nn.Conv2d(channels, channels, 3, padding=1).to(device).eval()
    layers = list(stack.layers)
    stack, conv = compiled_module(stack, compile_mode), compiled_module(conv, compile_mode)
    for batch in batches:
        x = torch.randn(batch, channels, size, size, device=device)
        if compile_mode:  # compile outside the timed calls, in the mode they run in
            forward_call(stack, x)()
            forward_call(conv, x)()
        # The matrix product a 1x1 conv (C -> 4C) does on this input: the GEMM reference.
        weight = torch.randn(4 * channels, channels, device=device)
        columns = torch.randn(channels, batch * size * size, device=device)
        calls = {
            "stack": forward_call(stack, x),
            "conv": forward_call(conv, x),
            "gemm": functools.partial(torch.matmul, weight, columns),
        }
        timings = measure(calls, device, budget)
        stack_time, conv_time = timings["stack"].median, timings["conv"].median
        gemm_time = timings["gemm"].median
        stack_flops = batch * sum(diffusion_flops(layer, size, size) for layer in layers)
        conv_flops = batch * dense_conv_flops(channels, size, size)
        gemm_flops = 2 * weight.shape[0] * columns.numel()
        stack_rate, conv_rate = stack_flops / stack_time / 1e9, conv_flops / conv_time / 1e9
        gemm_rate = gemm_flops / gemm_time / 1e9
        rows.append(
            {
                "size": size,
                "batch": batch,
                "stack_gflop": stack_flops / 1e9,
                "stack_ms": 1000 * stack_time,
                "stack_gflops": stack_rate,
                "conv_gflop": conv_flops / 1e9,
                "conv_ms": 1000 * conv_time,
                "conv_gflops": conv_rate,
                "ratio": stack_rate / conv_rate,
                "gemm_gflops": gemm_rate,
                "gemm_ratio": stack_rate / gemm_rate,
                "compiled": compile_mode,
            }
        )
    return rows


def _models(
    archs: Sequence[str], backbone: str, device: torch.device, precisions: Sequence[str]
) -> dict[tuple[str, str], nn.Module]:
    """Each ``arch`` on ``backbone`` for 150 classes in eval mode, once per precision: keyed by
    ``(arch, precision)``, the same weights under each precision's autocast (an arch or precision
    named twice is built once)."""
    from ..engine.inference import AutocastModel

    models: dict[tuple[str, str], nn.Module] = {}
    for arch in dict.fromkeys(archs):
        model = build_model(arch, 150, backbone=backbone, aux=False).to(device).eval()
        for precision in dict.fromkeys(precisions):
            wrapped = model if precision == "fp32" else AutocastModel(model, precision)
            models[arch, precision] = wrapped
    return models


def _precision_note(precision: str) -> str:
    return "" if precision == "fp32" else f" ({precision} autocast)"


def run_end_to_end(
    archs: Sequence[str],
    backbone: str,
    size: int,
    *,
    device: torch.device,
    budget: Budget,
    compile_mode: str | None = None,
    precisions: Sequence[str] = ("fp32",),
) -> list[dict[str, Any]]:
    """Forward latency of each ``arch`` on ``backbone`` (output stride 8), batch 1, ``size``²,
    under each of ``precisions``' autocast (``fp32`` is none; the same weights under each), all
    on one input and timed round by round against each other, so that a ratio between two rows
    (PDN to ASPP, bf16 to fp32) is measured in one run. With ``compile_mode`` every model runs
    compiled by ``torch.compile`` in that mode. Rows in the order precision, then arch."""
    models = _models(archs, backbone, device, precisions)
    runs = {key: compiled_module(model, compile_mode) for key, model in models.items()}
    x = torch.randn(1, 3, size, size, device=device)
    calls = {key: forward_call(model, x) for key, model in runs.items()}
    if compile_mode:
        for call in calls.values():
            call()
    timings = measure(calls, device, budget)
    order = [(arch, p) for p in dict.fromkeys(precisions) for arch in dict.fromkeys(archs)]
    return [
        {
            "model": f"{arch}-{backbone}{_compiled_note(compile_mode)}{_precision_note(precision)}",
            "arch": arch,
            "precision": precision,
            "size": size,
            "parameters": count_parameters(models[arch, precision]),
            "forward_ms": _ms(timings[arch, precision]),
        }
        for arch, precision in order
    ]


def fit_exponent(pixels: Sequence[float], seconds: Sequence[float]) -> float:
    """Least-squares slope of ``log(seconds)`` against ``log(pixels)``."""
    xs = [math.log(p) for p in pixels]
    ys = [math.log(s) for s in seconds]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    return covariance / sum((x - mean_x) ** 2 for x in xs)


def run_scaling(
    archs: Sequence[str],
    backbone: str,
    sizes: Sequence[int],
    *,
    device: torch.device,
    budget: Budget,
    precisions: Sequence[str] = ("fp32",),
) -> list[dict[str, Any]]:
    """Forward latency of each ``arch``-``backbone`` under each of ``precisions`` at each
    ``size``² (all of them timed round by round against each other at each size) and each one's
    fitted exponent; an arch or precision named twice is measured once."""
    models = _models(archs, backbone, device, precisions)
    points: dict[tuple[str, str], list[dict[str, Any]]] = {key: [] for key in models}
    for size in sizes:
        x = torch.randn(1, 3, size, size, device=device)
        timings = measure(
            {key: forward_call(model, x) for key, model in models.items()}, device, budget
        )
        for key, key_points in points.items():
            key_points.append({"size": size, "forward_ms": _ms(timings[key])})
    return [
        {
            "model": f"{arch}-{backbone}{_precision_note(precision)}",
            "points": key_points,
            "exponent": fit_exponent(
                [p["size"] ** 2 for p in key_points], [p["forward_ms"] for p in key_points]
            ),
        }
        for (arch, precision), key_points in points.items()
    ]


HEADS_HEADER = [
    "| module | feature map (B x C x s x s) | parameters | forward ms | forward+backward ms "
    "| training memory MiB |",
    "|---|---|---|---|---|---|",
]


def heads_table(rows: Sequence[dict[str, Any]], *, header: bool = True) -> str:
    lines = HEADS_HEADER[:] if header else []
    for row in rows:
        lines.append(
            f"| {row['module']} | {row['batch']} x {row['channels']} x {row['size']} x "
            f"{row['size']} | {row['parameters'] / 1e6:.2f} M | {row['forward_ms']:.1f} | "
            f"{row['train_ms']:.1f} | {row['memory_mib']:.0f} |"
        )
    return "\n".join(lines)


def efficiency_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| feature map | stack GFLOP | stack ms | stack GFLOP/s | 3x3 conv GFLOP | conv ms | "
        "conv GFLOP/s | stack / conv | GEMM GFLOP/s | stack / GEMM |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['batch']} x {row['size']} x {row['size']}"
            f"{_compiled_note(row.get('compiled'))} | {row['stack_gflop']:.1f} | "
            f"{ms_text(row['stack_ms'])} | {row['stack_gflops']:.1f} | {row['conv_gflop']:.1f} | "
            f"{ms_text(row['conv_ms'])} | {row['conv_gflops']:.1f} | {100 * row['ratio']:.0f}% | "
            f"{row['gemm_gflops']:.1f} | {100 * row['gemm_ratio']:.0f}% |"
        )
    return "\n".join(lines)


def _compiled_note(mode: str | None) -> str:
    if mode is None:
        return ""
    return " (compiled)" if mode == "default" else f" (compiled, {mode})"


def end_to_end_table(rows: Sequence[dict[str, Any]]) -> str:
    """One row per model: its latency relative to the last row of the same precision (PDN to
    ASPP) and, when the rows hold several precisions, to the same arch's row at the first one
    (bf16 to fp32). Rows without ``precision`` and ``arch`` keys form one group."""
    last = {row.get("precision"): row["forward_ms"] for row in rows}
    precisions = list(last)
    first = {
        row.get("arch"): row["forward_ms"] for row in rows if row.get("precision") == precisions[0]
    }
    by_precision = len(precisions) > 1
    header = "| model | input | parameters | forward ms | relative to the last row"
    header += " of its precision |" if by_precision else " |"
    lines = [header + (f" relative to {precisions[0]} |" if by_precision else "")]
    lines.append("|---|---|---|---|---|" + ("---|" if by_precision else ""))
    for row in rows:
        line = (
            f"| {row['model']} | 1 x 3 x {row['size']} x {row['size']} | "
            f"{row['parameters'] / 1e6:.1f} M | {ms_text(row['forward_ms'])} | "
            f"{row['forward_ms'] / last[row.get('precision')]:.2f} |"
        )
        if by_precision:
            line += f" {row['forward_ms'] / first[row.get('arch')]:.2f} |"
        lines.append(line)
    return "\n".join(lines)


def scaling_table(results: Sequence[dict[str, Any]]) -> str:
    """One row per input size, one latency column per model, then each model's fitted exponent."""
    sizes = [point["size"] for point in results[0]["points"]]
    names = [result["model"] for result in results]
    lines = [
        "| input | pixels / first | " + " | ".join(f"{n} ms" for n in names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for index, size in enumerate(sizes):
        cells = [ms_text(result["points"][index]["forward_ms"]) for result in results]
        lines.append(
            f"| {size} x {size} | {(size / sizes[0]) ** 2:.2f} | " + " | ".join(cells) + " |"
        )
    exponents = ", ".join(f"{r['model']} {r['exponent']:.3f}" for r in results)
    lines.append(f"\nfitted exponent a of latency ~ pixels ** a: {exponents}")
    return "\n".join(lines)
