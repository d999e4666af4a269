"""``build_model``: the architecture registry (one :class:`HeadSpec` each for pdn, fcn, aspp, ppm)
over any backbone."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from torch import nn

from ..errors import ConfigError
from ..registry import Registry, close_matches_hint
from .backbones import build_backbone
from .heads import ASPPHead, FCNHead, PDNHead, PPMHead
from .network import ImageSkip, LowLevelSkip, SegmentationModel


def _no_stride_defaults(output_stride: int) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class HeadSpec:
    """One architecture: the decode head class it builds, a one-line summary for ``pdn list``, the
    option defaults that depend on the output stride, and whether the image skip is on by default
    (``build_model(image_skip=None)``). The head's constructor keywords are the options the
    architecture takes (:meth:`options`)."""

    head: type[nn.Module]
    summary: str
    stride_defaults: Callable[[int], dict[str, Any]] = _no_stride_defaults
    image_skip: bool = False

    def options(self) -> list[str]:
        """The keyword options of the head's constructor: its keyword-only parameters and, for a
        head taking ``**options``, the fields of its ``options_type``; ``dropout``, which every
        head takes, last."""
        names = []
        for parameter in inspect.signature(self.head).parameters.values():
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY:
                names.append(parameter.name)
            elif parameter.kind is inspect.Parameter.VAR_KEYWORD:
                names += [field.name for field in fields(self.head.options_type)]
        return sorted(names, key=lambda name: name == "dropout")

    def build(
        self, in_ch: int, num_classes: int, *, output_stride: int, **options: Any
    ) -> nn.Module:
        """The head ``(B, in_ch, h, w) -> (B, num_classes, h, w)``; ``options`` override the stride
        defaults."""
        return self.head(in_ch, num_classes, **{**self.stride_defaults(output_stride), **options})


def _aspp_rates(output_stride: int) -> dict[str, Any]:
    return {"atrous_rates": tuple(r * 8 // output_stride for r in (12, 24, 36))}


ARCHITECTURES: Registry[HeadSpec] = Registry("architecture")
ARCHITECTURES.add(
    "pdn",
    HeadSpec(
        PDNHead,
        "Progressively Diffused Network head (diffusion stack); options as :class:`PDNHead`.",
        # with it and the sweep's chrono initialisation PDN learns long-range context reliably
        # from scratch (docs/diagnostics.md); the baselines keep the form they were measured in
        image_skip=True,
    ),
)
ARCHITECTURES.add(
    "fcn", HeadSpec(FCNHead, "Baseline without a context module; options as :class:`FCNHead`.")
)
ARCHITECTURES.add(
    "aspp",
    HeadSpec(
        ASPPHead,
        "DeepLabV3 ASPP baseline; atrous rates (12, 24, 36) at output stride 8, "
        "halved per doubling.",
        stride_defaults=_aspp_rates,
    ),
)
ARCHITECTURES.add(
    "ppm", HeadSpec(PPMHead, "PSPNet pyramid-pooling baseline; options as :class:`PPMHead`.")
)


def list_architectures() -> list[str]:
    """The names ``build_model`` accepts."""
    return ARCHITECTURES.names()


def head_options(arch: str) -> list[str]:
    """The keyword options the ``arch`` head accepts (besides ``channels`` defaults)."""
    return ARCHITECTURES.get(arch).options()


def _json_ready(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_json_ready(v) for v in value]
    return value


def build_model(
    arch: str,
    num_classes: int,
    *,
    backbone: str = "resnet50",
    output_stride: int = 8,
    backbone_weights: str | None = None,
    aux: bool = True,
    low_level_stage: int | None = None,
    low_level_channels: int = 48,
    image_skip: bool | None = None,
    **options: Any,
) -> SegmentationModel:
    """Build a segmentation network.

    Args:
        arch: ``"pdn"``, ``"fcn"``, ``"aspp"`` or ``"ppm"``.
        num_classes: number of output classes ``K``.
        backbone: a name from :func:`pdn.models.backbones.list_backbones`.
        output_stride: 8, 16 or 32.
        backbone_weights: ``None``, a path or URL of a backbone state dict, or ``"imagenet"`` where the
            backbone has packaged weights.
        aux: add the auxiliary FCN head on stage 3 (used by :meth:`SegmentationModel.forward_train`).
        low_level_stage: index of an earlier backbone stage (``0`` .. stages - 2) whose map joins
            the last one at the head's input through a :class:`LowLevelSkip`; ``None``: off.
        low_level_channels: the skip's width after its 1x1 projection.
        image_skip: the normalised input image, average-pooled to the last stage's grid, joins
            the head's input as 3 more channels (:class:`ImageSkip`): colours no loss can erase.
            ``None``: the architecture's default (on for ``pdn``, off for the baselines).
        **options: head options. ``channels`` (head width, default ``min(512, C_in)``) and ``dropout``
            for every arch; for ``pdn``: ``num_layers`` (2) and the fields of
            :class:`~pdn.models.diffusion.DiffusionOptions` (``mode``, ``rates``, ...);
            ``atrous_rates`` for ``aspp``; ``bins`` for ``ppm``. :func:`head_options` lists them.

    Returns:
        A :class:`SegmentationModel`: ``(B, 3, H, W) -> (B, K, H, W)``.
    """
    head_spec = ARCHITECTURES.get(arch)
    _check_arguments(arch, head_spec.options(), num_classes, options)
    image_skip = head_spec.image_skip if image_skip is None else bool(image_skip)
    features = build_backbone(backbone, output_stride=output_stride, weights=backbone_weights)
    low_level = _low_level_skip(features.channels, low_level_stage, low_level_channels)
    in_ch = features.channels[-1]
    options.setdefault("channels", min(512, in_ch))
    head_in = in_ch + (low_level_channels if low_level is not None else 0)
    head_in += 3 if image_skip else 0
    head = head_spec.build(head_in, num_classes, output_stride=output_stride, **options)
    aux_in = features.channels[-2]
    aux_head = FCNHead(aux_in, num_classes, channels=max(16, aux_in // 4)) if aux else None
    model_config = {
        "arch": arch,
        "num_classes": int(num_classes),
        "backbone": backbone,
        "output_stride": int(output_stride),
        "aux": bool(aux),
        "low_level_stage": low_level_stage,
        "low_level_channels": int(low_level_channels),
        "image_skip": image_skip,  # checkpoints made before 2026-12-07 lack it: off then
        **{key: _json_ready(value) for key, value in options.items()},
    }
    return SegmentationModel(
        features,
        head,
        aux_head,
        num_classes=int(num_classes),
        model_config=model_config,
        low_level=low_level,
        image_skip=ImageSkip(output_stride) if image_skip else None,
    )


def _check_arguments(
    arch: str, allowed: list[str], num_classes: int, options: dict[str, Any]
) -> None:
    """Refuse a class count below 1 and head options ``arch`` does not take (close matches)."""
    if int(num_classes) < 1:
        raise ConfigError(f"num_classes must be at least 1, got {num_classes}")
    for key in options:
        if key not in allowed:
            hint = close_matches_hint(key, allowed)
            raise ConfigError(
                f"unknown option {key!r} for arch {arch!r}{hint} (known: {', '.join(allowed)})"
            )


def _low_level_skip(channels: list[int], stage: int | None, width: int) -> LowLevelSkip | None:
    """The skip from backbone stage ``stage`` (``None``: none), after checking the index."""
    if stage is None:
        return None
    last = len(channels) - 1
    if not 0 <= int(stage) < last:
        raise ConfigError(
            f"low_level_stage must be an earlier backbone stage, 0 to {last - 1}, got {stage}"
        )
    if int(width) < 1:
        raise ConfigError(f"low_level_channels must be at least 1, got {width}")
    return LowLevelSkip(int(stage), channels[int(stage)], int(width))
