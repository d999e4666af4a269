"""Where the diffusion stack's forward time goes: PyTorch's profiler, operators by self time.

    .venv/bin/python benchmarks/profile_stack.py [--batch 1] [--size 64] [--channels 512]
        [--device cpu|cuda]

Profiles one forward pass (after two warm-up passes) of the default 2-layer sweep stack on a
random ``(batch, channels, size, size)`` map and prints the top operators by self CPU time, and
on CUDA also by self GPU time, with the wall time of the pass, the GPU's busy time and the
number of kernels it launched (a sweep is launch-bound when the busy time is a small part).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from pdn.models import DiffusionStack


def profiled_forward(module: nn.Module, x: torch.Tensor) -> tuple[profile, float]:
    """The profile of one ``module(x)`` under ``inference_mode`` (after two warm-up calls) and
    its wall time in ms."""
    cuda = x.device.type == "cuda"
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    with torch.inference_mode():
        for _ in range(2):
            module(x)
        if cuda:
            torch.cuda.synchronize(x.device)
        with profile(activities=activities) as prof:
            start = time.perf_counter()
            module(x)
            if cuda:
                torch.cuda.synchronize(x.device)
            wall_ms = 1000 * (time.perf_counter() - start)
    return prof, wall_ms


def cuda_kernels(prof: profile) -> list:
    """The CUDA kernels a profile saw (none on the CPU)."""
    return [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=512)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--rows", type=int, default=12, help="operators to list")
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    stack = DiffusionStack(args.channels, 2).to(device).eval()
    x = torch.randn(args.batch, args.channels, args.size, args.size, device=device)
    prof, wall_ms = profiled_forward(stack, x)
    averages = prof.key_averages()
    print(averages.table(sort_by="self_cpu_time_total", row_limit=args.rows))
    if cuda:
        print(averages.table(sort_by="self_cuda_time_total", row_limit=args.rows))
        kernels = cuda_kernels(prof)
        busy_ms = sum(e.device_time for e in kernels) / 1000
        print(
            f"one forward: {wall_ms:.2f} ms wall (profiled), GPU busy {busy_ms:.2f} ms "
            f"({100 * busy_ms / wall_ms:.0f}%), {len(kernels)} kernels"
        )


if __name__ == "__main__":
    main()
