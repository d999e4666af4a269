"""``pdn list`` (what exists: configs, architectures, backbones, datasets) and ``pdn config``
(a config as ``pdn train`` would resolve it)."""

from __future__ import annotations

import argparse
import inspect
import re
from collections.abc import Callable
from typing import Any

KINDS = ("configs", "archs", "backbones", "datasets")


def register(subparsers: Any) -> None:
    listing = subparsers.add_parser(
        "list",
        help="list the packaged configs, architectures, backbones and datasets, one line each",
        description="List what pdn has, one line each with its description: packaged configs "
        "(usable by name in pdn train / pdn config), architectures (model.arch), backbones "
        "(model.backbone) and datasets (data.name).",
    )
    listing.add_argument(
        "kinds", nargs="*", metavar="KIND", help=f"any of {', '.join(KINDS)} (default: all)"
    )
    listing.set_defaults(func=run_list)
    config = subparsers.add_parser(
        "config",
        help="print a config resolved with overrides, as pdn train would use it",
        description="Print the config NAME (a packaged name or a YAML file) with every default "
        "filled in and the KEY=VALUE overrides applied, as YAML (what pdn train writes to "
        "RUN_DIR/config.yaml).",
    )
    config.add_argument("name", nargs="?", default=None, metavar="NAME", help="default: demo")
    config.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    config.set_defaults(func=run_config)


def _summary(thing: Callable[..., Any]) -> str:
    doc = inspect.getdoc(thing) or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ")


def _config_summary(name: str) -> str:
    from ..engine.config import find_config

    lines = []
    for line in find_config(name).read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").strip())
    text = " ".join(lines)
    return re.split(r"(?<=\.)\s+(?=[A-Z`])", text)[0] if text else ""


def catalog() -> dict[str, list[tuple[str, str]]]:
    """``kind -> [(name, one-line description)]`` for each of :data:`KINDS`."""
    from ..data.registry import DATASETS
    from ..engine.config import packaged_configs
    from ..models.backbones.registry import BACKBONES
    from ..models.build import ARCHITECTURES

    return {
        "configs": [(name, _config_summary(name)) for name in packaged_configs()],
        "archs": [(n, ARCHITECTURES.get(n).summary) for n in ARCHITECTURES.names()],
        "backbones": [(n, _summary(BACKBONES.get(n))) for n in BACKBONES.names()],
        "datasets": [(n, _summary(DATASETS.get(n))) for n in DATASETS.names()],
    }


def run_list(args: argparse.Namespace) -> int:
    from ..errors import PdnError
    from ..registry import close_matches_hint

    for kind in args.kinds:
        if kind not in KINDS:
            hint = close_matches_hint(kind, KINDS)
            raise PdnError(f"nothing to list as {kind!r}{hint} (choose from {', '.join(KINDS)})")
    entries = catalog()
    for kind in args.kinds or KINDS:
        print(f"{kind}:")
        width = max(len(name) for name, _ in entries[kind])
        for name, summary in entries[kind]:
            print(f"  {name:<{width}}  {summary}")
    return 0


def run_config(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    from ..engine.config import load_config

    name, overrides = args.name, list(args.overrides)
    if name is not None and "=" in name:
        name, overrides = None, [name, *overrides]
    print(OmegaConf.to_yaml(load_config(name, overrides)), end="")
    return 0
