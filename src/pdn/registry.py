"""A flat name -> entry registry (builder functions for backbones and datasets, head specs for
architectures)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from .errors import ConfigError

Entry = TypeVar("Entry")


def close_matches_hint(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean a, b?"`` for the choices close to ``word``, or ``""`` when none is."""
    close = difflib.get_close_matches(str(word), list(choices), n=3, cutoff=0.5)
    return f"; did you mean {', '.join(close)}?" if close else ""


class Registry(Generic[Entry]):
    """Maps names to entries (builder functions or specs); unknown names fail with the close
    matches."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def add(self, name: str, entry: Entry) -> Entry:
        """Register ``entry`` under ``name`` (each name once)."""
        if name in self._entries:
            raise RuntimeError(f"{self.kind} {name!r} registered twice")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[Entry], Entry]:
        """Decorator registering a builder function under ``name``."""
        return lambda entry: self.add(name, entry)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> Entry:
        if name not in self._entries:
            hint = close_matches_hint(name, self._entries)
            known = ", ".join(self.names())
            raise ConfigError(f"unknown {self.kind} {name!r}{hint} (known: {known})")
        return self._entries[name]
