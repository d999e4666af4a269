"""``pdn data check``: scan a dataset and report what is in it and every bad file; ``pdn data
show``: write samples as PNG images and label maps."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import Any

from ..data import build_dataset, check_dataset, dataset_options, list_datasets
from ..engine.config import load_config, packaged_configs, parse_override, to_plain
from ..engine.visualize import write_samples
from ..errors import ConfigError


def parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> ``(key, value)``, the value read as a ``data.options.KEY=VALUE`` override
    of ``pdn train`` reads it (YAML: numbers, true/false, null, lists)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--option expects KEY=VALUE, got {text!r}")
    return key, parse_override(f"{key}={raw}")[key]


def _datasets_help() -> str:
    lines = ["datasets and their options:"]
    for name in list_datasets():
        options = ", ".join(f"{key}={default!r}" for key, default in dataset_options(name).items())
        lines.append(f"  {name:<17} {options or '(no options)'}")
    return "\n".join(lines)


def open_dataset(args: argparse.Namespace) -> tuple[str, Any]:
    """The dataset that ``--dataset`` or ``--config`` names, with ``--root`` and ``-o`` options
    applied over the config's ``data.root`` and ``data.options``: ``(name, dataset)``."""
    if (args.dataset is None) == (args.config is None):
        both = ", not both" if args.dataset is not None else ""
        raise ConfigError(
            f"give --dataset NAME or --config CONFIG (a packaged config name or a YAML file){both}"
        )
    name, root, options = args.dataset, args.root, {}
    if args.config is not None:
        data = load_config(args.config).data
        name = data.name
        root = data.root if root is None else root
        options = dict(to_plain(data.options))
    options.update(parse_option(text) for text in args.option)
    return name, build_dataset(name, root=root, split=args.split, **options)


def run_check(args: argparse.Namespace) -> int:
    name, dataset = open_dataset(args)
    where = f", root {dataset.root}" if getattr(dataset, "root", None) is not None else ""
    print(f"dataset: {name} (split {dataset.split}{where})")
    report = check_dataset(dataset, progress=not args.no_progress and sys.stderr.isatty())
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def run_show(args: argparse.Namespace) -> int:
    name, dataset = open_dataset(args)
    if args.count < 1:
        raise ConfigError(f"--count must be at least 1, got {args.count}")
    indices = args.index if args.index else list(range(min(args.count, len(dataset))))
    for index in indices:
        if not 0 <= index < len(dataset):
            raise ConfigError(
                f"--index {index}: split {dataset.split} of {name} has samples "
                f"0..{len(dataset) - 1}"
            )
    out = Path(args.out)
    written = write_samples(dataset, indices, out / "images", out / "masks", stem="sample")
    (out / "classes.txt").write_text("\n".join(dataset.classes) + "\n", encoding="utf-8")
    print(
        f"wrote {len(written)} sample{'s' if len(written) != 1 else ''} of {name} (split {dataset.split}) to {out}: "
        "images/sampleI.png, masks/sampleI.png (palette PNGs, values the class indices), "
        f"classes.txt; read back as --dataset folder --root {out} --split all"
    )
    return 0


def _add_dataset_arguments(parser: argparse.ArgumentParser, default_split: str) -> None:
    parser.add_argument(
        "--dataset",
        default=None,
        metavar="NAME",
        help=f"dataset name: {', '.join(list_datasets())}",
    )
    parser.add_argument(
        "--config",
        default=None,
        metavar="CONFIG",
        help="instead of --dataset: the dataset, root and options of a run config (a packaged "
        f"name: {', '.join(packaged_configs())}; or a YAML file), i.e. what pdn train CONFIG "
        "trains on; --root and -o change them",
    )
    parser.add_argument(
        "--root",
        default=None,
        metavar="ROOT",
        help="folder that holds the dataset in its usual layout (e.g. the folder containing "
        "ADEChallengeData2016 or VOCdevkit); not needed for nuclei (packaged) or context and "
        "paths (generated)",
    )
    parser.add_argument(
        "--split",
        default=default_split,
        metavar="S",
        help=f"split, e.g. train or val (default: {default_split})",
    )
    parser.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a dataset option, repeatable (e.g. -o aug=true for voc, -o num_classes=7 for folder, "
        "-o size=64 for context); values are read as YAML, as in a data.options.KEY=VALUE "
        "override of pdn train (true/false, null, numbers, [lists])",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="inspect datasets (pdn data check, pdn data show)",
        description="Inspect datasets before training on them.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="scan a dataset and report its samples, classes, image sizes and bad files",
        description=textwrap.fill(
            "Read every sample of a dataset split and report: the sample count; the classes present "
            "with their share of the mask pixels (and the ignore label 255's share); the range of "
            "image heights and widths; and every bad file (missing, unreadable, a mask whose size "
            "differs from its image's, labels that are not classes of the dataset and not 255), "
            "continuing past each. Exit status: 0 if every sample is good, 1 if any file is bad, "
            "2 if the dataset cannot be opened at all (wrong name, option or root layout).",
            width=88,
        ),
        epilog=_datasets_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_dataset_arguments(check, default_split="train")
    check.add_argument(
        "--no-progress",
        action="store_true",
        help="never show the progress bar (shown on a terminal)",
    )
    check.set_defaults(func=run_check)
    show = actions.add_parser(
        "show",
        help="write samples of a dataset as PNG images and label maps",
        description=textwrap.fill(
            "Write samples of a dataset split as they are read, before any training transform: "
            "OUT/images/sampleI.png (RGB), OUT/masks/sampleI.png (a palette PNG whose pixel "
            "values are the class indices, 255 the ignore label, coloured with the dataset's "
            "palette) and OUT/classes.txt. The images are what pdn predict and pdn explain take "
            "(e.g. a scene of a generated benchmark), and OUT is a folder dataset (split all).",
            width=88,
        ),
        epilog=_datasets_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_dataset_arguments(show, default_split="train")
    show.add_argument(
        "--count",
        type=int,
        default=4,
        metavar="N",
        help="write samples 0..N-1 (default: 4)",
    )
    show.add_argument(
        "--index",
        type=int,
        nargs="+",
        default=None,
        metavar="I",
        help="write these samples instead",
    )
    show.add_argument("--out", default="samples", metavar="DIR", help="folder (default: samples)")
    show.set_defaults(func=run_show)
    parser.set_defaults(func=lambda args: _missing_action(parser))


def _missing_action(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2
