"""Networks: backbones, the diffusion layers, decode heads and ``build_model``."""

from .backbones import Backbone, Normalization, build_backbone, list_backbones
from .build import build_model, list_architectures
from .diffusion import (
    DiffusionLayer,
    DiffusionLayerBase,
    DiffusionOptions,
    DiffusionStack,
    LayerwiseDiffusion,
    SweepDiffusion,
)
from .heads import ASPPHead, FCNHead, PDNHead, PPMHead
from .network import SegmentationModel

__all__ = [
    "ASPPHead",
    "Backbone",
    "DiffusionLayer",
    "DiffusionLayerBase",
    "DiffusionOptions",
    "DiffusionStack",
    "FCNHead",
    "LayerwiseDiffusion",
    "Normalization",
    "PDNHead",
    "PPMHead",
    "SegmentationModel",
    "SweepDiffusion",
    "build_backbone",
    "build_model",
    "list_architectures",
    "list_backbones",
]
