"""The two forms of the sweep's recurrent term, timed against each other on one device.

    .venv/bin/python benchmarks/recurrence_forms.py [--device cuda] [--sizes 32 64 128]
        [--batches 1 8] [--channels 512] [--repeats 20]

The 2-layer sweep stack with its recurrent term as a grouped ``conv1d`` (the CPU's form) and as a
gathered ``bmm`` (the GPU's form), same weights, same input, timed round by round (medians after
two warm-up rounds): forward under ``inference_mode`` and forward+backward. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import copy

import torch

from pdn.bench.speed import ms_text
from pdn.bench.timing import forward_call, time_interleaved, training_call
from pdn.models import DiffusionStack

FORMS = ("conv1d", "gather")


def stack_with(stack: DiffusionStack, recurrence: str) -> DiffusionStack:
    """A copy of ``stack`` whose layers all compute the recurrent term in form ``recurrence``."""
    twin = copy.deepcopy(stack)
    for layer in twin.layers:
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
    stacks = {form: stack_with(stack, form) for form in FORMS}
    print(f"device: {device}, torch {torch.__version__}, stack C = {args.channels}, L = 2")
    print(
        "| feature map | "
        + " | ".join(f"{form} forward ms" for form in FORMS)
        + " | "
        + " | ".join(f"{form} fwd+bwd ms" for form in FORMS)
        + " |"
    )
    print("|---|" + "---|" * (2 * len(FORMS)))
    # (training mode, call, timed rounds) of the forward and the forward+backward columns
    modes = [(False, forward_call, args.repeats), (True, training_call, max(3, args.repeats // 4))]
    for size in args.sizes:
        for batch in args.batches:
            x = torch.randn(batch, args.channels, size, size, device=device)
            cells = []
            for training, make_call, repeats in modes:
                calls = {form: make_call(m.train(training), x) for form, m in stacks.items()}
                timings = time_interleaved(calls, device, warmup=2, repeats=repeats)
                cells += [ms_text(1000 * timings[form].median) for form in FORMS]
            print(
                f"| {batch} x {args.channels} x {size} x {size} | " + " | ".join(cells) + " |",
                flush=True,
            )


if __name__ == "__main__":
    main()
