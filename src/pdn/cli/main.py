"""Entry point of the ``pdn`` command: builds the parser from the sub-command modules and turns
pdn's own errors into one-line messages."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import PdnError
from ..registry import close_matches_hint

# Each module defines ``register(subparsers)`` which adds its parser and sets ``func``.
COMMAND_MODULES: tuple[str, ...] = (
    "data",
    "train",
    "eval",
    "predict",
    "explain",
    "plot",
    "export",
    "bench",
    "catalog",
)


class PdnArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose "invalid choice" error also names the close matches (a misspelt
    command, task or option value); sub-command parsers inherit it."""

    def _check_value(self, action: argparse.Action, value: object) -> None:
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError as error:
            hint = close_matches_hint(str(value), [str(c) for c in action.choices or ()])
            raise argparse.ArgumentError(action, f"{error.message}{hint}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = PdnArgumentParser(
        prog="pdn",
        description="Semantic segmentation with Progressively Diffused Networks: "
        "train, evaluate, predict, export and benchmark.",
    )
    parser.add_argument("--version", action="version", version=f"pdn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").register(subparsers)
    return parser


def describe_os_error(error: OSError) -> str:
    """One line naming the path(s) and the reason: ``out/x.png: Permission denied``."""
    reason = error.strerror or type(error).__name__
    paths = [str(p) for p in (error.filename, error.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {reason}" if paths else f"{reason} ({error})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except PdnError as error:
        print(f"pdn {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # permissions, a missing path, a folder for a file, a full disk
        print(f"pdn {args.command}: error: {describe_os_error(error)}", file=sys.stderr)
        return 2
    except MemoryError:
        print(
            f"pdn {args.command}: error: out of memory (a smaller image, crop, batch or "
            "model, or eval.mode=slide, may fit)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"pdn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
