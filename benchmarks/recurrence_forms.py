"""The forms of the sweep's recurrent term, timed against each other on one device.

    .venv/bin/python benchmarks/recurrence_forms.py [--device cuda] [--sizes 32 64 128]
        [--batches 1 8] [--channels 512] [--repeats 20]

The 2-layer sweep stack with its recurrent term as a grouped ``conv1d`` (the CPU's form), as a
gathered ``bmm`` and, on CUDA with ``triton`` installed, as the fused Triton sweep: same weights,
same input, timed round by round (medians after two warm-up rounds), forward under
``inference_mode`` and forward+backward. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import copy
from typing import TypeVar

import torch
from torch import nn

from pdn.bench.speed import ms_text
from pdn.bench.timing import forward_call, time_interleaved, training_call
from pdn.models import DiffusionStack
from pdn.models.diffusion import SweepDiffusion
from pdn.models.kernels import triton_available

FORMS = ("conv1d", "gather")
ModuleT = TypeVar("ModuleT", bound=nn.Module)


def with_recurrence(module: ModuleT, recurrence: str) -> ModuleT:
    """A copy of ``module`` (a stack, a head, a model) whose sweep layers all compute the
    recurrent term in form ``recurrence``."""
    twin = copy.deepcopy(module)
    for layer in twin.modules():
        if isinstance(layer, SweepDiffusion):
            layer.recurrence = recurrence
    return twin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--sizes", nargs="+", type=int, default=[32, 64, 128])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--channels", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds (default: 20)")
    args = parser.parse_args()
    device = torch.device(args.device)
    stack = DiffusionStack(args.channels, 2).to(device)
    forms = FORMS + (("triton",) if device.type == "cuda" and triton_available() else ())
    stacks = {form: with_recurrence(stack, form) for form in forms}
    print(f"device: {device}, torch {torch.__version__}, stack C = {args.channels}, L = 2")
    print(
        "| feature map | "
        + " | ".join(f"{form} forward ms" for form in forms)
        + " | "
        + " | ".join(f"{form} fwd+bwd ms" for form in forms)
        + " |"
    )
    print("|---|" + "---|" * (2 * len(forms)))
    # (training mode, call, timed rounds) of the forward and the forward+backward columns
    modes = [(False, forward_call, args.repeats), (True, training_call, max(3, args.repeats // 4))]
    for size in args.sizes:
        for batch in args.batches:
            x = torch.randn(batch, args.channels, size, size, device=device)
            cells = []
            for training, make_call, repeats in modes:
                calls = {form: make_call(m.train(training), x) for form, m in stacks.items()}
                timings = time_interleaved(calls, device, warmup=2, repeats=repeats)
                cells += [ms_text(1000 * timings[form].median) for form in forms]
            print(
                f"| {batch} x {args.channels} x {size} x {size} | " + " | ".join(cells) + " |",
                flush=True,
            )


if __name__ == "__main__":
    main()
