"""``pdn explain``: how far a checkpoint's prediction at one pixel reaches into the image."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import PdnError

HELP = "draw where one pixel's prediction comes from (input-gradient influence maps)"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "explain",
        help=HELP,
        description="For a checkpoint, an image and a pixel, draw one PNG: the image with the "
        "pixel marked, the prediction, the whole model's influence map |d logit(pixel) / d "
        "input| (summed over RGB, log scale, black where it is exactly 0) and, for PDN, each "
        "diffusion layer's influence map on its input feature map. An FCN's map shows its "
        "window, ASPP's its fixed taps, a sweep's the region its directions can carry from.",
    )
    parser.add_argument("image", metavar="IMAGE", help="the image file")
    parser.add_argument(
        "--checkpoint", required=True, metavar="CKPT", help="checkpoint (.pt) from pdn train"
    )
    parser.add_argument(
        "--pixel",
        required=True,
        nargs=2,
        type=int,
        metavar=("ROW", "COL"),
        help="the pixel to explain, from the top-left corner (0 0)",
    )
    parser.add_argument(
        "--class",
        dest="target",
        default=None,
        metavar="K",
        help="the class (index or name) whose logit is explained (default: the predicted one)",
    )
    parser.add_argument(
        "--out", default=None, metavar="PNG", help="the picture (default: IMAGE_explain.png)"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: auto)")
    parser.set_defaults(func=run)


def _class_index(value: str | None, checkpoint: str) -> int | None:
    if value is None or value.lstrip("-").isdigit():
        return None if value is None else int(value)
    from ..engine.checkpoint import load_checkpoint

    classes = [str(c) for c in load_checkpoint(checkpoint)["classes"]]
    if value not in classes:
        from ..registry import close_matches_hint

        raise PdnError(
            f"--class {value!r} is not a class of {checkpoint}{close_matches_hint(value, classes)}"
        )
    return classes.index(value)


def run(args: argparse.Namespace) -> int:
    from ..engine.explain import explain

    image = Path(args.image)
    out = Path(args.out) if args.out else image.with_name(f"{image.stem}_explain.png")
    if out.resolve() == image.resolve():
        raise PdnError(f"--out {out} is the input image; choose another file")
    if out.suffix.lower() != ".png":
        raise PdnError(f"--out {out}: the picture is a PNG; name it *.png")
    try:
        result = explain(
            args.checkpoint,
            image,
            tuple(args.pixel),
            out=out,
            target=_class_index(args.target, args.checkpoint),
            device=args.device,
        )
    except ValueError as error:
        raise PdnError(str(error)) from None
    values = result.model_map
    seen = float((values > 0).float().mean())
    print(
        f"class {result.target} ({result.target_name}) at pixel {tuple(args.pixel)}: the "
        f"prediction depends on {100 * seen:.1f} % of the image's pixels"
    )
    for layer in result.layers:
        reach = float((layer.values > 0).float().mean())
        print(f"  {layer.name}: site {layer.site} hears {100 * reach:.1f} % of its input map")
    print(f"wrote {result.picture}")
    return 0
