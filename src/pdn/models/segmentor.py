"""The full segmentation network: backbone -> decode head (+ auxiliary FCN head) -> upsampling."""

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..vocabulary import MIN_INPUT_SIZE
from .backbones import Backbone, Normalization


class SegmentationModel(nn.Module):
    """Backbone, decode head on the last stage, optional auxiliary head on stage 3.

    ``model(x)``: normalised images ``(B, 3, H, W)`` -> logits ``(B, num_classes, H, W)`` at the input
    size, for any ``H, W >= 32``, in train and eval mode. :meth:`forward_train` also returns the
    auxiliary logits for the training loss. Parameters under ``backbone`` are the (possibly
    pretrained) feature extractor; everything else is new.
    """

    def __init__(
        self,
        backbone: Backbone,
        decode_head: nn.Module,
        aux_head: nn.Module | None,
        *,
        num_classes: int,
        model_config: dict[str, Any],
    ):
        super().__init__()
        self.backbone = backbone
        self.decode_head = decode_head
        self.aux_head = aux_head
        self.num_classes = num_classes
        self.normalization: Normalization = backbone.normalization
        self.model_config = model_config
        self.min_input_size = MIN_INPUT_SIZE  # an attribute: TorchScript reads no global ints

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError("expected images of shape (B, 3, H, W), got " + str(list(x.shape)))
        if x.shape[-2] < self.min_input_size or x.shape[-1] < self.min_input_size:
            side = str(self.min_input_size)
            raise ValueError(
                "images must be at least "
                + side
                + "x"
                + side
                + " pixels, got "
                + str(list(x.shape[-2:]))
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        features = self.backbone(x)
        logits = self.decode_head(features[-1])
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

    @torch.jit.export
    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(B, 3, H, W)`` -> main logits and auxiliary logits (or ``None``), both ``(B, K, H, W)``."""
        self._check_input(x)
        features = self.backbone(x)
        size = x.shape[-2:]
        logits = F.interpolate(
            self.decode_head(features[-1]), size=size, mode="bilinear", align_corners=False
        )
        aux: torch.Tensor | None = None
        if self.aux_head is not None:
            aux_logits = self.aux_head(features[-2])
            aux = F.interpolate(aux_logits, size=size, mode="bilinear", align_corners=False)
        return logits, aux
