"""A flat name -> builder registry, shared by backbones and architectures."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from .errors import ConfigError

Builder = TypeVar("Builder", bound=Callable)


def close_matches_hint(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean a, b?"`` for the choices close to ``word``, or ``""`` when none is."""
    close = difflib.get_close_matches(str(word), list(choices), n=3, cutoff=0.5)
    return f"; did you mean {', '.join(close)}?" if close else ""


class Registry(Generic[Builder]):
    """Maps names to builder functions; unknown names fail with the close matches."""

    def __init__(self, kind: str):
        self.kind = kind
        self._builders: dict[str, Builder] = {}

    def register(self, name: str) -> Callable[[Builder], Builder]:
        """Decorator registering a builder under ``name``."""

        def decorate(builder: Builder) -> Builder:
            if name in self._builders:
                raise RuntimeError(f"{self.kind} {name!r} registered twice")
            self._builders[name] = builder
            return builder

        return decorate

    def names(self) -> list[str]:
        return sorted(self._builders)

    def get(self, name: str) -> Builder:
        if name not in self._builders:
            hint = close_matches_hint(name, self._builders)
            known = ", ".join(self.names())
            raise ConfigError(f"unknown {self.kind} {name!r}{hint} (known: {known})")
        return self._builders[name]
