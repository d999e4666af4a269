"""The fused Triton sweep on a GPU: agreement at full size, latency, kernel launches, training time.

    python benchmarks/gpu_check.py [--cpu-dry-run]     (benchmarks/gpu_check.sh runs it)

Prints Markdown tables, one section after another:

1. agreement: the 2-layer stack (C = 512, 64 x 64 map, batch 2) with recurrence triton against
   conv1d, TF32 off and on: max abs difference of the output and of the gradients of the input
   and of the recurrent filters, beside the largest magnitude of each.
2. latency: PDN-R50 with recurrence conv1d, gather and triton against ASPP-R50, 512 x 512,
   batch 1, fp32 and bf16 (autocast), timed round by round (``pdn.bench.speed.measure``).
3. kernels: CUDA kernels per PDN-R50 forward, per recurrence (``torch.profiler``).
4. heads: the 2-layer diffusion stack per recurrence against the ASPP head on the 64 x 64 map
   PDN-R50 sees at 512 x 512, forward, forward+backward and training memory, batch 1 and 8
   (``pdn.bench.speed.run_heads``).

``--cpu-dry-run`` runs the same on the CPU at a tiny size (tiny backbone, C = 32, 64 x 64 input),
the Triton kernels in Triton's interpreter: a check that the script runs, not of the speed.
``--compile-only`` compiles the kernels for sm_90 (H100/H200) on a machine without a GPU and
prints their register use (spills show as stack bytes).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import torch
from profile_stack import cuda_kernels, profiled_forward
from recurrence_forms import with_recurrence

from pdn.bench.speed import (
    Budget,
    context_modules,
    end_to_end_table,
    heads_table,
    measure,
    run_heads,
)
from pdn.bench.timing import count_parameters, forward_call
from pdn.engine.inference import AutocastModel
from pdn.models import DiffusionStack, build_model
from pdn.models.kernels import triton_available

FORMS = ("conv1d", "gather", "triton")


@dataclass(frozen=True)
class Setup:
    """What the check runs on: the models' backbone and head width, the input side, the batches
    of the heads section and the time budget of each measurement."""

    device: torch.device
    backbone: str
    channels: int
    size: int
    batches: tuple[int, ...]
    budget: Budget


def _setup(dry_run: bool) -> Setup:
    if dry_run:
        budget = Budget(seconds=0.05, warmup=1, min_repeats=1, max_repeats=2)
        return Setup(torch.device("cpu"), "tiny", 32, 64, (1,), budget)
    budget = Budget(seconds=1.0, warmup=3, min_repeats=5, max_repeats=20)
    return Setup(torch.device("cuda"), "resnet50", 512, 512, (1, 8), budget)


def _triton_version() -> str:
    if not triton_available():
        return "not installed"
    import triton

    return triton.__version__


def _forms() -> tuple[str, ...]:
    if triton_available():
        return FORMS
    print("triton is not installed: no triton rows")
    return FORMS[:2]


def agreement(setup: Setup) -> None:
    """Section 1: the fused sweep against the conv1d loop at the stack's full width."""

    torch.manual_seed(0)
    side = setup.size // 8
    stack = DiffusionStack(setup.channels, 2).to(setup.device).train()
    x = torch.randn(2, setup.channels, side, side, device=setup.device)
    upstream = torch.randn_like(x)
    print(f"agreement, stack C = {setup.channels}, 2 x {side} x {side}, triton against conv1d")
    print("| TF32 | output | d input | d recurrent filters |\n|---|---|---|---|")
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    for tf32 in (False, True):
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
        results = []
        for form in ("conv1d", "triton"):
            twin = with_recurrence(stack, form)
            probe = x.clone().requires_grad_()
            out = twin(probe)
            (out * upstream).sum().backward()
            filters = torch.stack([layer.state_to_state.grad for layer in twin.layers])
            results.append((out.detach(), probe.grad, filters))
        cells = [
            f"{(a - b).abs().max().item():.2e} (max {b.abs().max().item():.2g})"
            for a, b in zip(results[1], results[0], strict=True)
        ]
        print(f"| {'on' if tf32 else 'off'} | " + " | ".join(cells) + " |", flush=True)
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _models(setup: Setup, forms: tuple[str, ...]) -> dict[str, torch.nn.Module]:
    """PDN per recurrence (the same weights) and ASPP, last, on the setup's backbone."""

    torch.manual_seed(0)
    pdn = build_model("pdn", 150, backbone=setup.backbone, aux=False).to(setup.device).eval()
    models = {f"pdn-{setup.backbone} ({form})": with_recurrence(pdn, form) for form in forms}
    aspp = build_model("aspp", 150, backbone=setup.backbone, aux=False)
    models[f"aspp-{setup.backbone}"] = aspp.to(setup.device).eval()
    return models


def latency(setup: Setup, models: dict[str, torch.nn.Module]) -> None:
    """Section 2: end-to-end forward latency per recurrence and precision, all timed round by
    round against each other in one run."""

    x = torch.randn(1, 3, setup.size, setup.size, device=setup.device)
    precisions = ("fp32", "bf16")
    calls = {
        (name, precision): forward_call(AutocastModel(model, precision), x)
        for precision in precisions
        for name, model in models.items()
    }
    for call in calls.values():  # Triton compiles on the first call: not in the timings
        call()
    timings = measure(calls, setup.device, setup.budget)
    rows = [
        {
            "model": f"{name}, {precision}",
            "arch": name,
            "precision": precision,
            "size": setup.size,
            "parameters": count_parameters(models[name]),
            "forward_ms": 1000 * timings[name, precision].median,
        }
        for name, precision in calls
    ]
    print(end_to_end_table(rows) + "\n", flush=True)


def kernels(setup: Setup, models: dict[str, torch.nn.Module]) -> None:
    """Section 3: CUDA kernels launched by one forward of each model."""

    x = torch.randn(1, 3, setup.size, setup.size, device=setup.device)
    print(
        "| model | CUDA kernels per forward | profiled wall ms | GPU busy ms |\n|---|---|---|---|"
    )
    for name, model in models.items():
        prof, wall_ms = profiled_forward(model, x)
        launched = cuda_kernels(prof)
        busy_ms = sum(e.device_time for e in launched) / 1000
        print(f"| {name} | {len(launched)} | {wall_ms:.1f} | {busy_ms:.1f} |", flush=True)


def heads(setup: Setup, forms: tuple[str, ...]) -> None:
    """Section 4: the stack per recurrence against the ASPP head, forward and training."""

    def modules(channels: int, num_classes: int) -> dict[str, torch.nn.Module]:
        stack = DiffusionStack(channels, 2)
        compared = {f"diffusion stack (L=2, {f})": with_recurrence(stack, f) for f in forms}
        compared["aspp head"] = context_modules(channels, num_classes)["aspp head"]
        return compared

    print(heads_table([]), flush=True)
    run_heads(
        [setup.size // 8],
        list(setup.batches),
        channels=setup.channels,
        num_classes=150,
        device=setup.device,
        budget=setup.budget,
        log=lambda line: print(line, flush=True),
        make_modules=modules,
    )


def compile_for_hopper() -> None:
    """Compile the kernels for sm_90 without a GPU (Triton brings ptxas) at PDN-R50's sizes and
    print the registers and spilled bytes (stack) of each (``cuobjdump -res-usage``)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from pdn.models.kernels import sweep_triton

    tools = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")
    print(
        "| kernel | hidden | slice | steps | registers and stack per thread |\n|---|---|---|---|---|"
    )
    variants = [("forward", 64, "*fp32"), ("forward", 64, "*bf16"), ("forward", 128, "*fp32")]
    for kernel, length, steps in [*variants, ("backward", 64, "*fp32"), ("backward", 128, "*fp32")]:
        options = sweep_triton.launch_options(kernel, 128, length, 7, precision="tf32")
        launch = {"num_warps": options.pop("num_warps"), "num_stages": options.pop("num_stages")}
        function = sweep_triton.KERNELS[kernel]
        signature = {name: _argument_type(name, steps) for name in function.arg_names}
        signature.update(dict.fromkeys(options, "constexpr"))
        source = ASTSource(function, signature, constexprs=options)
        compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32), options=launch)
        with tempfile.NamedTemporaryFile(suffix=".cubin") as cubin:
            cubin.write(compiled.asm["cubin"])
            cubin.flush()
            usage = subprocess.run(
                [os.path.join(tools, "cuobjdump"), "-res-usage", cubin.name],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        registers = " ".join(re.findall(r"(?:REG|STACK):\d+", usage))
        print(f"| {kernel} | 128 | {length} | {steps[1:]} | {registers} |", flush=True)
    print()


def _argument_type(name: str, steps: str) -> str:
    if name == "offsets_ptr":
        return "*i32"
    if name == "steps_ptr":
        return steps
    return "*fp32" if name.endswith("_ptr") else "i32"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cpu-dry-run", action="store_true", help="tiny sizes on the CPU, kernels interpreted"
    )
    parser.add_argument(
        "--compile-only",
        action="store_true",
        help="only compile the kernels for sm_90 (no GPU needed) and show their register use",
    )
    args = parser.parse_args()
    if args.compile_only:
        compile_for_hopper()
        return
    if args.cpu_dry_run:  # read by triton.jit when the kernels are first imported
        os.environ["TRITON_INTERPRET"] = "1"
    setup = _setup(args.cpu_dry_run)
    if setup.device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device (use --cpu-dry-run to check the script on the CPU)")
    where = torch.cuda.get_device_name() if setup.device.type == "cuda" else platform.processor()
    print(
        f"device: {setup.device} ({where}), torch {torch.__version__}, TF32 convolutions "
        f"{torch.backends.cudnn.allow_tf32}, TF32 matmul {torch.backends.cuda.matmul.allow_tf32}"
    )
    print(f"triton {_triton_version()}")
    forms = _forms()
    models = _models(setup, forms)
    sections = [
        ("agreement", lambda: agreement(setup) if "triton" in forms else None),
        ("latency", lambda: latency(setup, models)),
        ("kernels", lambda: kernels(setup, models)),
        ("heads", lambda: heads(setup, forms)),
    ]
    failed = [name for name, section in sections if not _ran(name, section)]
    if failed:
        raise SystemExit(f"sections that failed: {', '.join(failed)}")


def _ran(name: str, section: Callable[[], None]) -> bool:
    """Run one section, timed; on an error print it and go on (one GPU try shows the rest)."""
    start = time.perf_counter()
    try:
        section()
    except Exception:
        print(f"section {name} failed:\n{traceback.format_exc(limit=-4)}", flush=True)
        return False
    print(f"(section {name}: {time.perf_counter() - start:.0f} s)\n", flush=True)
    return True


if __name__ == "__main__":
    main()
