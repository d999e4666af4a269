"""Dilated ResNets (18, 34, 50, 101) whose state-dict keys are torchvision's, minus ``fc``.

The modules are named exactly as in torchvision's ``ResNet`` (``conv1``, ``bn1``, ``layer1`` ..
``layer4``, blocks ``N.conv1/bn1/conv2/bn2[/conv3/bn3]/downsample.{0,1}``), so a torchvision
ImageNet checkpoint loads strictly once its ``fc.*`` keys are dropped, without torchvision
installed. Below output stride 32 the last stages replace stride by dilation, as torchvision's
``replace_stride_with_dilation`` does.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ...errors import ConfigError
from ..weights import load_state_dict, load_weights_strict
from .base import IMAGENET_NORMALIZATION, Backbone, init_conv_bn
from .registry import register_backbone


def conv3x3(in_ch: int, out_ch: int, *, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution without bias, padded so that the output is ``ceil(H / stride)``."""
    return nn.Conv2d(
        in_ch, out_ch, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
    )


def conv1x1(in_ch: int, out_ch: int, *, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias."""
    return nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34).

    ``(B, in_ch, H, W) -> (B, out_ch, H / stride, W / stride)``. Unlike torchvision this block
    accepts dilation: ``conv1`` uses ``first_dilation`` (the previous stage's dilation in the first
    block of a dilated stage), ``conv2`` uses ``dilation``.
    """

    expansion = 1

    def __init__(
        self,
        in_ch: int,
        width: int,
        *,
        stride: int = 1,
        dilation: int = 1,
        first_dilation: int | None = None,
        downsample: nn.Module | None = None,
    ):
        super().__init__()
        self.conv1 = conv3x3(in_ch, width, stride=stride, dilation=first_dilation or dilation)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(width, width, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided / dilated), 1x1 expand by 4, with a residual connection.

    ``(B, in_ch, H, W) -> (B, 4 * width, H / stride, W / stride)``; the stride sits on the 3x3
    convolution (torchvision's "ResNet v1.5"). The 3x3 uses ``first_dilation`` when given.
    """

    expansion = 4

    def __init__(
        self,
        in_ch: int,
        width: int,
        *,
        stride: int = 1,
        dilation: int = 1,
        first_dilation: int | None = None,
        downsample: nn.Module | None = None,
    ):
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = conv1x1(in_ch, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride=stride, dilation=first_dilation or dilation)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_ch)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(Backbone):
    """A dilated ResNet returning the outputs of ``layer1`` .. ``layer4``.

    Input ``(B, 3, H, W)`` normalised with ImageNet statistics; outputs
    ``[(B, C1, H/4, W/4), (B, C2, H/8, W/8), (B, C3, H/s3, W/s3), (B, C4, H/os, W/os)]`` (sizes
    rounded up) with ``C = (64, 128, 256, 512) * block.expansion``, ``s3 = min(16, os)``.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: number of blocks per stage, e.g. ``(3, 4, 6, 3)`` for ResNet-50.
        output_stride: 8 (layer3 dilation 2, layer4 dilation 4), 16 (layer4 dilation 2) or 32.
        zero_init_residual: start each block's last BatchNorm at gamma 0, so blocks begin as
            identities (torchvision's option; off by default, as there).
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Iterable[int],
        *,
        output_stride: int = 8,
        zero_init_residual: bool = False,
    ):
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ConfigError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        layers = list(layers)
        self.output_stride = output_stride
        self.normalization = IMAGENET_NORMALIZATION
        self.channels = [w * block.expansion for w in (64, 128, 256, 512)]

        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)

        self._in_ch = 64
        self._dilation = 1
        dilate3 = output_stride == 8
        dilate4 = output_stride in (8, 16)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2, dilate=dilate3)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2, dilate=dilate4)

        self.reset_parameters(zero_init_residual=zero_init_residual)

    def _make_layer(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        width: int,
        blocks: int,
        *,
        stride: int = 1,
        dilate: bool = False,
    ) -> nn.Sequential:
        previous_dilation = self._dilation
        if dilate:
            self._dilation *= stride
            stride = 1
        out_ch = width * block.expansion
        downsample = None
        if stride != 1 or self._in_ch != out_ch:
            downsample = nn.Sequential(
                conv1x1(self._in_ch, out_ch, stride=stride), nn.BatchNorm2d(out_ch)
            )
        stage = [
            block(
                self._in_ch,
                width,
                stride=stride,
                dilation=self._dilation,
                first_dilation=previous_dilation,
                downsample=downsample,
            )
        ]
        self._in_ch = out_ch
        stage += [block(out_ch, width, dilation=self._dilation) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def reset_parameters(self, *, zero_init_residual: bool = False) -> None:
        """torchvision's initialisation: Kaiming-normal (fan-out) convolutions, BN gamma 1, beta 0."""
        init_conv_bn(self)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, Bottleneck):
                    nn.init.zeros_(module.bn3.weight)
                elif isinstance(module, BasicBlock):
                    nn.init.zeros_(module.bn2.weight)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(B, 3, H, W)`` -> the four stage maps (see the class docstring for their shapes)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        return [c1, c2, c3, self.layer4(c3)]


def _build(
    name: str,
    block: type[BasicBlock] | type[Bottleneck],
    layers: tuple[int, int, int, int],
    output_stride: int,
    weights: str | None,
) -> ResNet:
    if weights == "imagenet":
        raise ConfigError(
            f"no ImageNet {name} weights ship with pdn: pass weights= a local path or URL of "
            "torchvision's checkpoint (e.g. resnet50-0676ba61.pth from download.pytorch.org)"
        )
    model = ResNet(block, layers, output_stride=output_stride)
    if weights is not None:
        load_weights_strict(model, load_state_dict(weights), str(weights), drop_prefixes=("fc.",))
    return model


@register_backbone("resnet18")
def resnet18(*, output_stride: int = 8, weights: str | None = None) -> ResNet:
    """ResNet-18, channels ``[64, 128, 256, 512]``; ``weights``: None, or a torchvision file/URL."""
    return _build("resnet18", BasicBlock, (2, 2, 2, 2), output_stride, weights)


@register_backbone("resnet34")
def resnet34(*, output_stride: int = 8, weights: str | None = None) -> ResNet:
    """ResNet-34, channels ``[64, 128, 256, 512]``; ``weights``: None, or a torchvision file/URL."""
    return _build("resnet34", BasicBlock, (3, 4, 6, 3), output_stride, weights)


@register_backbone("resnet50")
def resnet50(*, output_stride: int = 8, weights: str | None = None) -> ResNet:
    """ResNet-50, channels ``[256, 512, 1024, 2048]``; ``weights``: None, or a torchvision file/URL."""
    return _build("resnet50", Bottleneck, (3, 4, 6, 3), output_stride, weights)


@register_backbone("resnet101")
def resnet101(*, output_stride: int = 8, weights: str | None = None) -> ResNet:
    """ResNet-101, channels ``[256, 512, 1024, 2048]``; ``weights``: None, or a torchvision file/URL."""
    return _build("resnet101", Bottleneck, (3, 4, 23, 3), output_stride, weights)
