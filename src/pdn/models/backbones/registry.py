"""The backbone registry: ``build_backbone(name, ...)`` resolves a name to a builder function."""

from __future__ import annotations

from collections.abc import Callable

from ...errors import ConfigError
from ...registry import Registry
from .base import Backbone

BACKBONES: Registry[Callable[..., Backbone]] = Registry("backbone")
register_backbone = BACKBONES.register


def list_backbones() -> list[str]:
    """The names ``build_backbone`` accepts, sorted."""
    return BACKBONES.names()


def build_backbone(name: str, *, output_stride: int = 8, weights: str | None = None) -> Backbone:
    """Build the backbone called ``name``.

    Args:
        name: one of :func:`list_backbones` (``resnet18/34/50/101``, ``efficientnet_lite0``, ``tiny``).
        output_stride: 8, 16 or 32; below 32 the last stages trade stride for dilation.
        weights: ``None`` (random init), a local file or URL of a state dict, or ``"imagenet"`` where
            the backbone has packaged ImageNet weights.
    """
    builder = BACKBONES.get(name)
    if output_stride not in (8, 16, 32):
        raise ConfigError(f"output_stride must be 8, 16 or 32, got {output_stride}")
    return builder(output_stride=output_stride, weights=weights)
