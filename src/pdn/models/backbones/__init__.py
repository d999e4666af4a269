"""Backbones: dilated ResNets (torchvision key names), EfficientNet-Lite0 (packaged ImageNet
weights) and ``tiny``. Each returns four stage feature maps and carries its input normalisation."""

from . import efficientnet, resnet, tiny  # noqa: F401  (registers the builders)
from .base import IMAGENET_NORMALIZATION, Backbone, Normalization
from .registry import build_backbone, list_backbones, register_backbone

__all__ = [
    "IMAGENET_NORMALIZATION",
    "Backbone",
    "Normalization",
    "build_backbone",
    "list_backbones",
    "register_backbone",
]
