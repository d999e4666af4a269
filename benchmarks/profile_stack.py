"""Where the diffusion stack's forward time goes: PyTorch's profiler, operators by self CPU time.

    .venv/bin/python benchmarks/profile_stack.py [--batch 1] [--size 64] [--channels 512]

Profiles one forward pass (after two warm-up passes) of the default 2-layer sweep stack on a
random ``(batch, channels, size, size)`` map and prints the top operators.
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from pdn.models import DiffusionStack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=512)
    parser.add_argument("--rows", type=int, default=12, help="operators to list")
    args = parser.parse_args()
    stack = DiffusionStack(args.channels, 2).eval()
    x = torch.randn(args.batch, args.channels, args.size, args.size)
    with torch.inference_mode():
        for _ in range(2):
            stack(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            stack(x)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
