"""``pdn predict``: label images with a trained checkpoint; write label maps, overlays and a legend."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..vocabulary import EVAL_MODES

HELP = "label images or folders of images with a trained checkpoint"


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """The inference options shared by ``pdn eval`` and ``pdn predict`` (default: the run config)."""
    group = parser.add_argument_group(
        "inference (defaults: the eval section of the checkpoint's run config)"
    )
    group.add_argument(
        "--mode",
        choices=EVAL_MODES,
        help="whole image in one pass, or a sliding window of --crop every --stride pixels",
    )
    group.add_argument(
        "--crop", nargs=2, type=int, metavar=("H", "W"), help="sliding-window size in pixels"
    )
    group.add_argument(
        "--stride",
        nargs=2,
        type=int,
        metavar=("H", "W"),
        help="sliding-window step in pixels (default: two thirds of the crop)",
    )
    group.add_argument(
        "--scales",
        nargs="+",
        type=float,
        metavar="S",
        help="resize factors for multi-scale inference, e.g. 0.75 1 1.25 (softmax averaged)",
    )
    group.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also predict the horizontally flipped image and average (--no-flip turns it off)",
    )
    group.add_argument(
        "--device",
        default=None,
        help="cpu, cuda or cuda:N (default: cuda when available, else cpu)",
    )
    add_runtime_arguments(group)
    group.add_argument(
        "--amp",
        action="store_true",
        help="the same as --precision fp16 (float16 autocast on CUDA; ignored on the CPU)",
    )


def add_runtime_arguments(group: Any, *, default_precision: str | None = None) -> None:
    """``--channels-last``, ``--precision`` and ``--compile [MODE]``: how the model runs, the
    same switches for ``pdn eval``, ``pdn predict`` and ``pdn bench latency``."""
    from ..engine.inference import COMPILE_MODES, PRECISIONS

    group.add_argument(
        "--channels-last",
        action="store_true",
        default=None,
        help="run the model in channels-last (NHWC) memory layout; the same result",
    )
    group.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=default_precision,
        help="fp32 (default), bf16 (bfloat16 autocast, CPU or CUDA) or fp16 (float16 autocast, "
        "CUDA only)",
    )
    group.add_argument(
        "--compile",
        nargs="?",
        const="default",
        default=None,
        metavar="MODE",
        help=f"torch.compile the model (MODE: {', '.join(COMPILE_MODES)}; default: default); "
        "the first call is slow while it compiles",
    )


def inference_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The inference options given on the command line, as ``InferenceOptions`` field values."""
    given = {
        "mode": args.mode,
        "crop_size": tuple(args.crop) if args.crop else None,
        "stride": tuple(args.stride) if args.stride else None,
        "scales": tuple(args.scales) if args.scales else None,
        "flip": args.flip,
        "channels_last": args.channels_last,
        "precision": args.precision or ("fp16" if args.amp else None),
    }
    return {key: value for key, value in given.items() if value is not None}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "predict",
        help=HELP,
        description=HELP.capitalize()
        + ". For each image NAME writes OUT/NAME.png (label map, palette PNG whose pixel values are "
        "class indices, at the image's size) and OUT/NAME_overlay.png (image blended with the "
        "class colours), plus one OUT/legend.png. Folders are searched recursively for "
        ".jpg .jpeg .png .tif .tiff .bmp .webp files; their sub-folders are kept under OUT. "
        "Unreadable inputs are reported one line each; the exit status is then 2.",
    )
    parser.add_argument(
        "--checkpoint", required=True, metavar="CKPT", help="checkpoint (.pt) from pdn train"
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the output PNGs")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        metavar="N",
        help="images of equal size per forward pass (default: 8 on a GPU, 1 on the CPU)",
    )
    parser.add_argument(
        "--panel",
        action="store_true",
        help="also write OUT/NAME_panel.png: image | prediction | overlay side by side, scaled "
        "to at least 256 px high, with a legend of the classes present",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing files in OUT that pdn did not write (an input is never replaced)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_inference_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.inference import prepare_model
    from ..engine.predict import predict_to_folder
    from ..engine.segmenter import Segmenter

    segmenter = Segmenter.from_checkpoint(args.checkpoint, device=args.device)
    if args.batch_size is not None:
        segmenter.batch_size = max(1, args.batch_size)
    segmenter.options = segmenter.options.override(**inference_overrides(args))
    segmenter.model = prepare_model(
        segmenter.model,
        channels_last=segmenter.options.channels_last,
        compile_mode=args.compile,
    )
    report = predict_to_folder(
        segmenter,
        args.inputs,
        args.out,
        progress=not args.quiet,
        overwrite=args.overwrite,
        panels=args.panel,
    )
    for failure in report.failures:
        print(f"pdn predict: error: {failure}", file=sys.stderr)
    if report.written:
        print(
            f"pdn predict: labelled {len(report.written)} image(s) on {segmenter.device} "
            f"({segmenter.options.describe()}) with a model trained on "
            f"{segmenter.trained_on or 'an unrecorded dataset'}; label maps and overlays in "
            f"{args.out}, legend {report.legend}"
        )
    if report.failures:
        print(
            f"pdn predict: {len(report.failures)} input(s) could not be labelled", file=sys.stderr
        )
        return 2
    return 0
