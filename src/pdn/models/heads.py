"""Decode heads on the last backbone stage: PDN, and the baselines FCN, ASPP (DeepLabV3) and PPM
(PSPNet). Each maps ``(B, C_in, h, w) -> (B, num_classes, h, w)`` logits at feature resolution."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .diffusion import DiffusionOptions, DiffusionStack


def conv_bn_relu(
    in_ch: int, out_ch: int, kernel_size: int = 1, *, dilation: int = 1
) -> nn.Sequential:
    """Conv (no bias), BatchNorm, ReLU; keeps the spatial size."""
    padding = dilation * (kernel_size // 2)
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class PooledBranch(nn.Module):
    """Average-pool to ``bins x bins``, 1x1 conv, ReLU, upsample back: ``(B, C, h, w) -> (B, out, h, w)``.

    The 1x1 bin (image pooling) has a single value per channel, where BatchNorm cannot train with
    batch 1, so that branch uses a conv bias instead of a norm; larger bins use BatchNorm.
    """

    def __init__(self, in_ch: int, out_ch: int, bins: int):
        super().__init__()
        self.bins = bins
        if bins == 1:
            self.project = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1), nn.ReLU(inplace=True))
        else:
            self.project = conv_bn_relu(in_ch, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(x, self.bins)
        return F.interpolate(
            self.project(pooled), size=x.shape[-2:], mode="bilinear", align_corners=False
        )


class ClassifierHead(nn.Sequential):
    """3x3 conv-BN-ReLU, dropout, 1x1 classifier: ``(B, C_in, h, w) -> (B, K, h, w)``."""

    def __init__(self, in_ch: int, channels: int, num_classes: int, dropout: float = 0.1):
        super().__init__(
            conv_bn_relu(in_ch, channels, 3),
            nn.Dropout2d(dropout),
            nn.Conv2d(channels, num_classes, 1),
        )


class FCNHead(nn.Module):
    """No context module: 3x3 conv, dropout, 1x1 classifier (the ``fcn`` baseline and the aux head)."""

    def __init__(self, in_ch: int, num_classes: int, *, channels: int, dropout: float = 0.1):
        super().__init__()
        self.classifier = ClassifierHead(in_ch, channels, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)


class ASPPHead(nn.Module):
    """DeepLabV3: atrous spatial pyramid pooling (1x1, three 3x3 atrous convs, image pooling),
    projection, then the classifier head."""

    def __init__(
        self,
        in_ch: int,
        num_classes: int,
        *,
        channels: int,
        atrous_rates: Sequence[int] = (12, 24, 36),
        dropout: float = 0.1,
    ):
        super().__init__()
        branches = [conv_bn_relu(in_ch, channels)]
        branches += [conv_bn_relu(in_ch, channels, 3, dilation=rate) for rate in atrous_rates]
        branches.append(PooledBranch(in_ch, channels, 1))
        self.branches = nn.ModuleList(branches)
        self.project = nn.Sequential(
            conv_bn_relu(len(branches) * channels, channels), nn.Dropout2d(0.5)
        )
        self.classifier = ClassifierHead(channels, channels, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pyramid = torch.cat([branch(x) for branch in self.branches], dim=1)
        return self.classifier(self.project(pyramid))


class PPMHead(nn.Module):
    """PSPNet: pyramid pooling over ``bins`` grids, concatenated with the input, then the classifier."""

    def __init__(
        self,
        in_ch: int,
        num_classes: int,
        *,
        channels: int,
        bins: Sequence[int] = (1, 2, 3, 6),
        dropout: float = 0.1,
    ):
        super().__init__()
        branch_ch = max(1, in_ch // len(bins))
        self.branches = nn.ModuleList(PooledBranch(in_ch, branch_ch, b) for b in bins)
        self.classifier = ClassifierHead(
            in_ch + len(bins) * branch_ch, channels, num_classes, dropout
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.cat([x] + [branch(x) for branch in self.branches], dim=1))


class PDNHead(nn.Module):
    """The PDN head: 1x1 reduce to ``channels``, a :class:`DiffusionStack`, fusion of the reduced and
    the diffused features, then the classifier head. ``(B, C_in, h, w) -> (B, K, h, w)``.

    Args:
        in_ch: ``C_in``.
        num_classes: ``K``.
        channels: the head's width, that of the diffusion layers.
        num_layers: the number of diffusion layers.
        dropout: before the classifier.
        **diffusion: the diffusion layers' options: the fields of :class:`DiffusionOptions`, as
            keywords.
    """

    # The type ``**diffusion`` builds; ``pdn.models.build.head_options`` lists its fields.
    options_type = DiffusionOptions

    def __init__(
        self,
        in_ch: int,
        num_classes: int,
        *,
        channels: int,
        num_layers: int = 2,
        dropout: float = 0.1,
        **diffusion: Any,
    ):
        super().__init__()
        self.reduce = conv_bn_relu(in_ch, channels)
        self.diffusion = DiffusionStack(channels, num_layers, DiffusionOptions(**diffusion))
        self.classifier = ClassifierHead(2 * channels, channels, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.reduce(x)
        return self.classifier(torch.cat([reduced, self.diffusion(reduced)], dim=1))
