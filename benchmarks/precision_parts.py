"""Where a whole model's time goes under each autocast precision: backbone, head, upsampling.

    .venv/bin/python benchmarks/precision_parts.py [--backbone resnet50] [--size 512]
        [--precision fp32 bf16] [--repeats 5] [--device cpu]

Builds PDN and ASPP on ``--backbone`` (150 classes, output stride 8, random weights) and times,
round by round against each other in one run (:func:`pdn.bench.timing.time_interleaved`), the
backbone on a ``1 x 3 x size x size`` input, each head on the input the model gives it, and the
final bilinear upsampling of the logits to the input size, each under every precision's autocast.
Prints a Markdown table with each part's median latency and its ratio to the first precision.
``pdn bench speed --sections e2e --precision fp32 bf16`` times the whole models the same way; the
difference between the whole and the parts' sum is what the forward does around them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torch.nn.functional as F

from pdn.bench.speed import ms_text
from pdn.bench.timing import time_interleaved
from pdn.engine.inference import PRECISIONS, autocast_for
from pdn.engine.segmenter import default_device
from pdn.models import build_model


def parts(backbone: str, size: int, device: torch.device) -> dict[str, Callable[[], object]]:
    """The parts to time, each a call on fixed inputs, before any autocast is applied."""
    torch.manual_seed(0)
    pdn = build_model("pdn", 150, backbone=backbone, aux=False).to(device).eval()
    aspp = build_model("aspp", 150, backbone=backbone, aux=False).to(device).eval()
    aspp.backbone = pdn.backbone  # the same backbone: only the heads differ
    x = torch.randn(1, 3, size, size, device=device)
    with torch.inference_mode():
        features = pdn.backbone(x)
        pdn_input, aspp_input = pdn._head_input(features, x), aspp._head_input(features, x)
        logits = pdn.decode_head(pdn_input)
    return {
        "backbone": lambda: pdn.backbone(x),
        f"pdn head ({tuple(pdn_input.shape[1:])})": lambda: pdn.decode_head(pdn_input),
        f"aspp head ({tuple(aspp_input.shape[1:])})": lambda: aspp.decode_head(aspp_input),
        "upsampling the logits": lambda: F.interpolate(
            logits, size=(size, size), mode="bilinear", align_corners=False
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--precision", nargs="+", choices=PRECISIONS, default=["fp32", "bf16"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = default_device(args.device)
    if "fp16" in args.precision and device.type != "cuda":
        raise SystemExit("--precision fp16 needs a CUDA device; use bf16 on the CPU")
    named = parts(args.backbone, args.size, device)

    def under(call: Callable[[], object], precision: str) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode(), autocast_for(precision, device):
                call()

        return run

    calls = {(n, p): under(call, p) for p in args.precision for n, call in named.items()}
    timings = time_interleaved(calls, device, warmup=1, repeats=args.repeats)
    first = args.precision[0]
    print(f"| part | precision | ms | relative to {first} |\n|---|---|---|---|")
    for name, precision in calls:
        ms = 1000 * timings[name, precision].median
        ratio = ms / (1000 * timings[name, first].median)
        print(f"| {name} | {precision} | {ms_text(ms)} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
