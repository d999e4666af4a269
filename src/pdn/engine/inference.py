"""Test-time inference: whole image or sliding window, optional multi-scale and flip.

Every variant returns softmax **probabilities** ``(B, K, H, W)`` at the input size, averaged over
windows, scales and flips (the convention of the field: average class scores after the softmax,
then take the argmax). The sliding window follows mmsegmentation's ``slide_inference``: windows start
every ``stride`` pixels, the last window of a row or column is moved back to end exactly at the
border, and overlapping windows are averaged pixel by pixel, so every output pixel is covered.
Images (or scaled images) smaller than the crop, or than the model's 32-pixel minimum, are padded at
the bottom and right with zeros (the mean colour after normalisation); the padding is cut off the
prediction again.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..vocabulary import EVAL_MODES, MIN_INPUT_SIZE, PRECISIONS

__all__ = [
    "AutocastModel",
    "COMPILE_MODES",
    "InferenceOptions",
    "PRECISIONS",
    "autocast_for",
    "MIN_SIZE",
    "infer",
    "predict_probabilities",
    "prepare_model",
    "window_starts",
]

MIN_SIZE = MIN_INPUT_SIZE  # the smallest input side the models accept
MODES = EVAL_MODES
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    pair = (
        (int(value), int(value)) if isinstance(value, int | float) else tuple(int(v) for v in value)
    )
    if len(pair) != 2 or min(pair) < 1:
        raise ConfigError(f"{name} must be one positive int or (height, width), got {value!r}")
    return pair  # type: ignore[return-value]


@dataclass(frozen=True)
class InferenceOptions:
    """How to turn a model into a prediction (the ``eval`` section of a run config).

    Attributes:
        mode: ``"whole"`` (one forward pass per scale) or ``"slide"`` (crops of ``crop_size``
            every ``stride`` pixels).
        crop_size: sliding-window size ``(h, w)``; required for ``slide``.
        stride: sliding-window step ``(h, w)``; default two thirds of the crop.
        scales: factors applied to the image before inference (after ``short_side``).
        flip: also predict the horizontally flipped image and average.
        short_side: resize the image so that its shorter side has this length before ``scales``
            (``data.eval_resize``); ``None`` keeps the image size.
        channels_last: feed the model NHWC tensors (the model must be converted too:
            :func:`prepare_model`); the same result, often faster convolutions.
        precision: ``"fp32"``, ``"bf16"`` (bfloat16 autocast, on the CPU and on CUDA) or
            ``"fp16"`` (float16 autocast, CUDA only: ignored on the CPU).
    """

    mode: str = "whole"
    crop_size: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    short_side: int | None = None
    channels_last: bool = False
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"inference mode must be whole or slide, got {self.mode!r}")
        if self.crop_size is not None:
            object.__setattr__(self, "crop_size", _pair(self.crop_size, "crop size"))
        if self.stride is not None:
            object.__setattr__(self, "stride", _pair(self.stride, "stride"))
        scales = tuple(float(s) for s in self.scales)
        if not scales or min(scales) <= 0:
            raise ConfigError(f"scales must be a non-empty list of positive factors, got {scales}")
        object.__setattr__(self, "scales", scales)
        if self.mode == "slide" and self.crop_size is None:
            raise ConfigError("slide inference needs a crop size (--crop H W or eval.crop_size)")
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.short_side is not None and self.short_side < 1:
            raise ConfigError(f"short_side must be positive, got {self.short_side}")

    @property
    def window_stride(self) -> tuple[int, int]:
        """The stride in use: ``stride``, else two thirds of ``crop_size`` (at least 1)."""
        if self.stride is not None:
            return self.stride
        if self.crop_size is None:
            raise ConfigError("no crop size set, so there is no sliding-window stride")
        return (max(1, 2 * self.crop_size[0] // 3), max(1, 2 * self.crop_size[1] // 3))

    def scale_factors(self, height: int, width: int) -> tuple[float, ...]:
        """The resize factors for an image of ``height x width``: ``short_side`` times ``scales``."""
        base = 1.0 if self.short_side is None else self.short_side / min(height, width)
        return tuple(base * s for s in self.scales)

    def override(self, **changes: Any) -> InferenceOptions:
        """A copy with the given fields replaced; ``None`` values leave a field as it is."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> InferenceOptions:
        """Options from a plain run config (``eval`` and ``data`` sections); defaults where absent.

        ``eval.crop_size`` defaults to ``data.crop_size``, ``eval.stride`` to two thirds of the
        crop, ``short_side`` comes from ``data.eval_resize``.
        """
        config = config or {}
        section = dict(config.get("eval") or {})
        data = dict(config.get("data") or {})
        crop = section.get("crop_size") or data.get("crop_size")
        return cls(
            mode=section.get("mode", "whole"),
            crop_size=crop,
            stride=section.get("stride"),
            scales=tuple(section.get("scales") or (1.0,)),
            flip=bool(section.get("flip", False)),
            short_side=data.get("eval_resize"),
        )

    def describe(self) -> str:
        """One line for logs: ``slide 512x512 stride 341x341, scales 0.75 1 1.25, flip``."""
        parts = [self.mode]
        if self.mode == "slide":
            (ch, cw), (sh, sw) = self.crop_size, self.window_stride  # type: ignore[misc]
            parts[0] += f" {ch}x{cw} stride {sh}x{sw}"
        if self.short_side is not None:
            parts.append(f"shorter side {self.short_side}")
        if self.scales != (1.0,):
            parts.append("scales " + " ".join(f"{s:g}" for s in self.scales))
        if self.flip:
            parts.append("flip")
        if self.channels_last:
            parts.append("channels-last")
        if self.precision != "fp32":
            parts.append(
                self.precision
                + (" autocast (CUDA only)" if self.precision == "fp16" else " autocast")
            )
        return ", ".join(parts)


def window_starts(size: int, crop: int, stride: int) -> list[int]:
    """Start offsets of the windows along one axis of length ``size`` (mmsegmentation's grid).

    ``ceil((size - crop) / stride) + 1`` windows (one if ``size <= crop``); the last one is moved
    back so that it ends at the border. Example: ``window_starts(10, 4, 3) == [0, 3, 6]``,
    ``window_starts(11, 4, 3) == [0, 3, 6, 7]``.
    """
    grids = max(size - crop + stride - 1, 0) // stride + 1
    return [max(min(i * stride + crop, size) - crop, 0) for i in range(grids)]


def _forward_padded(model: nn.Module, x: torch.Tensor, min_size: tuple[int, int]) -> torch.Tensor:
    """Softmax of ``model`` on ``x`` ``(B, 3, h, w)`` zero-padded at the bottom/right to at least
    ``min_size``; returns probabilities ``(B, K, h, w)`` with the padding cut off."""
    h, w = x.shape[-2:]
    pad_h, pad_w = max(min_size[0] - h, 0), max(min_size[1] - w, 0)
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    logits = model(x)
    return logits[..., :h, :w].float().softmax(dim=1)


def _slide(
    model: nn.Module, x: torch.Tensor, crop: tuple[int, int], stride: tuple[int, int]
) -> torch.Tensor:
    """Sliding-window probabilities ``(B, K, H, W)`` for ``x`` ``(B, 3, H, W)``."""
    height, width = x.shape[-2:]
    min_size = (max(crop[0], MIN_SIZE), max(crop[1], MIN_SIZE))
    total: torch.Tensor | None = None
    count = torch.zeros(1, 1, height, width, device=x.device)
    for top in window_starts(height, crop[0], stride[0]):
        for left in window_starts(width, crop[1], stride[1]):
            bottom, right = min(top + crop[0], height), min(left + crop[1], width)
            probs = _forward_padded(model, x[..., top:bottom, left:right], min_size)
            if total is None:
                total = torch.zeros(
                    x.shape[0], probs.shape[1], height, width, device=x.device, dtype=probs.dtype
                )
            total[..., top:bottom, left:right] += probs
            count[..., top:bottom, left:right] += 1
    assert total is not None and bool((count > 0).all())
    return total / count


def _scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    return max(1, int(math.floor(height * scale + 0.5))), max(
        1, int(math.floor(width * scale + 0.5))
    )


@torch.inference_mode()
def predict_probabilities(
    model: nn.Module,
    images: torch.Tensor,
    *,
    mode: str = "whole",
    crop_size: int | Sequence[int] | None = None,
    stride: int | Sequence[int] | None = None,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    num_classes: int | None = None,
) -> torch.Tensor:
    """Class probabilities for a batch of normalised images.

    Args:
        model: an eval-mode network, ``(B, 3, h, w) -> logits (B, K, h, w)`` for ``h, w >= 32``.
        images: normalised float images ``(B, 3, H, W)`` on the model's device, any ``H, W >= 1``.
        mode: ``"whole"`` or ``"slide"``.
        crop_size, stride: window size and step ``(h, w)`` (or one int) for ``"slide"``; the stride
            defaults to two thirds of the crop.
        scales: resize factors; for each, the image is resized bilinearly, predicted, and the
            probabilities are resized bilinearly back to ``(H, W)``.
        flip: also predict ``images.flip(-1)`` and flip the result back.
        num_classes: ``K``, checked against the model output when given.

    Returns:
        float32 probabilities ``(B, K, H, W)``: the mean over scales and flips of the softmax
        (itself averaged over overlapping windows in ``"slide"`` mode).
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape (B, 3, H, W), got {list(images.shape)}")
    options = InferenceOptions(
        mode=mode,
        crop_size=crop_size,  # type: ignore[arg-type]
        stride=stride,  # type: ignore[arg-type]
        scales=tuple(scales),
        flip=flip,
    )
    total: torch.Tensor | None = None
    runs = 0
    for probs in _passes(model, images, options):
        total = probs if total is None else total + probs
        runs += 1
    assert total is not None
    if num_classes is not None and total.shape[1] != num_classes:
        raise ValueError(f"model returned {total.shape[1]} classes, expected {num_classes}")
    return total / runs


def _passes(
    model: nn.Module, images: torch.Tensor, options: InferenceOptions
) -> Iterator[torch.Tensor]:
    """The probabilities ``(B, K, H, W)`` of each scale of ``options`` (and its flip, with
    ``flip``), in that order, for ``images`` ``(B, 3, H, W)``: each scaled image is predicted,
    flipped back and resized back to ``(H, W)``."""
    height, width = images.shape[-2:]
    for scale in options.scales:
        size = _scaled_size(height, width, scale)
        scaled = (
            images
            if size == (height, width)
            else F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        )
        for flipped in (False, True) if options.flip else (False,):
            probs = _predict(model, scaled.flip(-1) if flipped else scaled, options)
            if flipped:
                probs = probs.flip(-1)
            if size != (height, width):
                probs = F.interpolate(
                    probs, size=(height, width), mode="bilinear", align_corners=False
                )
            yield probs


def _predict(model: nn.Module, x: torch.Tensor, options: InferenceOptions) -> torch.Tensor:
    """Probabilities ``(B, K, h, w)`` for ``x`` ``(B, 3, h, w)``: the whole image in one pass,
    or sliding windows in ``"slide"`` mode."""
    if options.mode == "slide":
        return _slide(model, x, options.crop_size, options.window_stride)  # type: ignore[arg-type]
    return _forward_padded(model, x, (MIN_SIZE, MIN_SIZE))


def infer(model: nn.Module, images: torch.Tensor, options: InferenceOptions) -> torch.Tensor:
    """:func:`predict_probabilities` with the settings of ``options`` (``short_side`` included).

    ``images``: normalised float ``(B, 3, H, W)``; returns probabilities ``(B, K, H, W)``
    (float32 also under ``amp``).
    """
    if options.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with autocast_for(options.precision, images.device):
        probabilities = predict_probabilities(
            model,
            images,
            mode=options.mode,
            crop_size=options.crop_size,
            stride=options.window_stride if options.mode == "slide" else None,
            scales=options.scale_factors(*images.shape[-2:]),
            flip=options.flip,
        )
    return probabilities.float()


def autocast_for(precision: str, device: torch.device) -> torch.autocast:
    """The autocast context for ``precision`` on ``device`` (fp16 only on CUDA, else off)."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    enabled = dtype is torch.bfloat16 or (dtype is torch.float16 and device.type == "cuda")
    return torch.autocast(device.type, dtype=dtype if enabled else torch.bfloat16, enabled=enabled)


class AutocastModel(nn.Module):
    """``model`` run under the autocast of ``precision`` (as :func:`infer` runs it), for timing
    a model alone: ``(B, 3, H, W) -> float32 logits``."""

    def __init__(self, model: nn.Module, precision: str):
        super().__init__()
        if precision not in PRECISIONS:
            raise ConfigError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}"
            )
        self.model, self.precision = model, precision

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast_for(self.precision, x.device):
            return self.model(x).float()


def prepare_model(
    model: nn.Module, *, channels_last: bool = False, compile_mode: str | None = None
) -> nn.Module:
    """``model`` ready for inference: its weights in channels-last layout, and/or wrapped by
    ``torch.compile(model, mode=compile_mode)`` (``"default"``, ``"reduce-overhead"``,
    ``"max-autotune"``; compiled on the first call, which is slow)."""
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile_mode is not None:
        if compile_mode not in COMPILE_MODES:
            raise ConfigError(
                f"compile mode must be one of {', '.join(COMPILE_MODES)}, got {compile_mode!r}"
            )
        model = torch.compile(model, mode=compile_mode)  # type: ignore[assignment]
    return model
