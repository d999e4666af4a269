"""Name -> builder registry for backbones (one flat dict, no nesting)."""

from __future__ import annotations

import difflib
from collections.abc import Callable

from ...errors import ConfigError
from .base import Backbone

BackboneBuilder = Callable[..., Backbone]
_BACKBONES: dict[str, BackboneBuilder] = {}


def register_backbone(name: str) -> Callable[[BackboneBuilder], BackboneBuilder]:
    """Decorator: make ``build_backbone(name, ...)`` call the decorated builder."""

    def decorate(builder: BackboneBuilder) -> BackboneBuilder:
        if name in _BACKBONES:
            raise RuntimeError(f"backbone {name!r} registered twice")
        _BACKBONES[name] = builder
        return builder

    return decorate


def list_backbones() -> list[str]:
    """The names ``build_backbone`` accepts, sorted."""
    return sorted(_BACKBONES)


def build_backbone(name: str, *, output_stride: int = 8, weights: str | None = None) -> Backbone:
    """Build the backbone called ``name``.

    Args:
        name: one of :func:`list_backbones` (``resnet18/34/50/101``, ``efficientnet_lite0``, ``tiny``).
        output_stride: 8, 16 or 32; the last stages trade stride for dilation below 32.
        weights: ``None`` (random init), a local file or URL of a state dict, or ``"imagenet"`` where
            the backbone has packaged ImageNet weights.
    """
    if name not in _BACKBONES:
        close = difflib.get_close_matches(name, list(_BACKBONES), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown backbone {name!r}{hint} (known: {', '.join(list_backbones())})")
    if output_stride not in (8, 16, 32):
        raise ConfigError(f"output_stride must be 8, 16 or 32, got {output_stride}")
    return _BACKBONES[name](output_stride=output_stride, weights=weights)
