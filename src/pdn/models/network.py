"""The full segmentation network: backbone (+ low-level skip) -> decode head (+ auxiliary FCN
head) -> upsampling."""

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..vocabulary import MIN_INPUT_SIZE
from .backbones import Backbone, Normalization


class LowLevelSkip(nn.Module):
    """An earlier backbone stage beside the last one, at the decode head's input.

    A 1x1 conv-BN-ReLU projects stage ``stage``'s map ``(B, C_s, H_s, W_s)`` to ``channels`` and
    resizes it (bilinear) to the last stage's ``(h, w)``; the result is concatenated to the last
    stage's map, so the head sees ``(B, C_last + channels, h, w)``. It keeps features the
    last stage may drop because no local loss needs them (a context cue's colour: see
    docs/diagnostics.md) within the head's reach, for every head alike.
    """

    def __init__(self, stage: int, in_ch: int, channels: int):
        super().__init__()
        self.stage = stage
        self.project = nn.Sequential(
            nn.Conv2d(in_ch, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        last = features[-1]
        low = self.project(features[self.stage])
        if low.shape[-2:] != last.shape[-2:]:
            low = F.interpolate(low, size=last.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([last, low], dim=1)


class ImageSkip(nn.Module):
    """The normalised input image beside the head's input: ``(B, 3, H, W)`` average-pooled over
    ``stride x stride`` windows (the last, partial window of a side not divisible by the stride
    averages the pixels it has) to the ``(h, w) = (ceil(H / stride), ceil(W / stride))`` grid of
    the last stage, and concatenated to the head's input ``(B, C, h, w)`` -> ``(B, C + 3, h, w)``.

    It has no weights, so training cannot take the image's colours out of what the head reads,
    as it takes them out of the backbone's features where no local loss needs them (a context
    cue's colour: see docs/diagnostics.md).
    """

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, head_input: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        pooled = F.avg_pool2d(image, self.stride, self.stride, ceil_mode=True)
        return torch.cat([head_input, pooled], dim=1)


class SegmentationModel(nn.Module):
    """The network (what ``build_model`` returns and a checkpoint's weights fill): backbone, decode
    head on the last stage (beside an earlier one with a :class:`LowLevelSkip`), optional auxiliary
    head on stage 3.

    ``model(x)``: normalised images ``(B, 3, H, W)`` -> logits ``(B, num_classes, H, W)`` at the input
    size, for any ``H, W >= 32``, in train and eval mode. :meth:`forward_train` also returns the
    auxiliary logits for the training loss. Parameters under ``backbone`` are the (possibly
    pretrained) feature extractor; everything else is new.

    Tensors in, logits out: it knows no class names, palette or image files. To label images, wrap
    it in a :class:`pdn.Segmenter` (which holds one of these as ``.model``).
    """

    def __init__(
        self,
        backbone: Backbone,
        decode_head: nn.Module,
        aux_head: nn.Module | None,
        *,
        num_classes: int,
        model_config: dict[str, Any],
        low_level: LowLevelSkip | None = None,
        image_skip: ImageSkip | None = None,
    ):
        super().__init__()
        self.backbone = backbone
        self.low_level = low_level
        self.image_skip = image_skip
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

    def _head_input(self, features: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        head_input = self.low_level(features) if self.low_level is not None else features[-1]
        if self.image_skip is not None:
            head_input = self.image_skip(head_input, x)
        return head_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        features = self.backbone(x)
        logits = self.decode_head(self._head_input(features, x))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

    @torch.jit.export
    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(B, 3, H, W)`` -> main logits and auxiliary logits (or ``None``), both ``(B, K, H, W)``."""
        self._check_input(x)
        features = self.backbone(x)
        size = x.shape[-2:]
        logits = F.interpolate(
            self.decode_head(self._head_input(features, x)),
            size=size,
            mode="bilinear",
            align_corners=False,
        )
        aux: torch.Tensor | None = None
        if self.aux_head is not None:
            aux_logits = self.aux_head(features[-2])
            aux = F.interpolate(aux_logits, size=size, mode="bilinear", align_corners=False)
        return logits, aux
