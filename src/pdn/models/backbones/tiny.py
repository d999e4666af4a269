"""``tiny``: a small plain CNN backbone for tests and the CPU demo."""

import torch
from torch import nn

from ..weights import load_state_dict, load_weights_strict
from .base import IMAGENET_NORMALIZATION, Backbone
from .registry import register_backbone


def conv_bn_relu(in_ch: int, out_ch: int, *, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """3x3 convolution, BatchNorm, ReLU: ``(B, in_ch, H, W) -> (B, out_ch, H/stride, W/stride)``."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class TinyBackbone(Backbone):
    """Four stages of two 3x3 conv-BN-ReLU blocks, widths ``(16, 32, 48, 64)``.

    Stage strides are 4, 8, 16, 32 at ``output_stride=32``; below that, the last stages keep the
    resolution and dilate instead, as in the ResNets. Input ``(B, 3, H, W)``, outputs the four
    stage maps.
    """

    def __init__(self, *, output_stride: int = 8, widths: tuple[int, ...] = (16, 32, 48, 64)):
        super().__init__()
        self.channels = list(widths)
        self.output_stride = output_stride
        self.normalization = IMAGENET_NORMALIZATION
        self.stem = conv_bn_relu(3, widths[0], stride=2)
        stages = []
        in_ch, stride_so_far, dilation = widths[0], 2, 1
        for width in widths:
            if stride_so_far < output_stride:
                stride, stride_so_far = 2, stride_so_far * 2
            else:
                stride, dilation = 1, dilation * 2
            stages.append(
                nn.Sequential(
                    conv_bn_relu(in_ch, width, stride=stride, dilation=max(1, dilation // 2)),
                    conv_bn_relu(width, width, dilation=dilation),
                )
            )
            in_ch = width
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


@register_backbone("tiny")
def tiny(*, output_stride: int = 8, weights: str | None = None) -> TinyBackbone:
    """The ``tiny`` backbone; ``weights`` may be a file or URL of a state dict saved from one."""
    model = TinyBackbone(output_stride=output_stride)
    if weights is not None:
        load_weights_strict(model, load_state_dict(weights), str(weights))
    return model
