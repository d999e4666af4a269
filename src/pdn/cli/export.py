"""``pdn export``: write a checkpoint's model as ONNX or TorchScript and check it against PyTorch."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "export a checkpoint to ONNX or TorchScript (verified against the PyTorch model)"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export",
        help=HELP,
        description="Export the model of a checkpoint. The exported graph takes the same input as "
        "the PyTorch model, a normalised float32 image batch (B, 3, H, W) named 'image' "
        "(RGB in [0, 1], then (x - mean) / std), and returns the logits (B, K, H, W) named "
        "'logits'. Class names, palette, normalisation and model config are stored in the file "
        "(ONNX metadata_props, TorchScript extra file pdn.json). After writing, the file is run on "
        "a random input and compared with the PyTorch model; a max abs difference above "
        "--tolerance is an error and nothing is written.",
    )
    parser.add_argument(
        "--checkpoint", required=True, metavar="CKPT", help="checkpoint (.pt) from pdn train"
    )
    parser.add_argument(
        "--format",
        choices=("onnx", "torchscript"),
        default="onnx",
        help="onnx (torch.onnx, TorchScript-based exporter, run by onnxruntime) or torchscript "
        "(torch.jit.script, falling back to torch.jit.trace) (default: onnx)",
    )
    parser.add_argument("--out", required=True, metavar="FILE", help="file to write")
    parser.add_argument(
        "--size",
        nargs=2,
        type=int,
        metavar=("H", "W"),
        default=None,
        help="example input size; without --dynamic the ONNX graph accepts this size only "
        "(default: the checkpoint's crop size, else 512 512)",
    )
    parser.add_argument(
        "--opset", type=int, default=17, metavar="N", help="ONNX opset version (default: 17)"
    )
    parser.add_argument(
        "--dynamic",
        action="store_true",
        help="ONNX: any batch, height and width (>= 32), verified at a second size; refused "
        "for ppm, whose pooling windows fit one size. TorchScript is always size-generic",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-3,
        metavar="T",
        help="largest accepted max abs difference from the PyTorch logits (default: 1e-3)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --out that is not a pdn export (the checkpoint never)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.export import export_checkpoint

    result = export_checkpoint(
        args.checkpoint,
        args.out,
        format=args.format,
        size=tuple(args.size) if args.size else None,
        opset=args.opset,
        dynamic=args.dynamic,
        tolerance=args.tolerance,
        overwrite=args.overwrite,
    )
    for note in result.notes:
        print(f"pdn export: note: {note}")
    print(f"pdn export: {result.summary()}")
    return 0
