"""What every backbone shares: the stage-feature interface and the input normalisation it expects."""

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Normalization:
    """Per-channel input normalisation ``(x - mean) / std`` for RGB images scaled to ``[0, 1]``.

    Every backbone carries one, so that data pipelines, checkpoints and exported models never guess
    it. ``efficientnet_lite0``'s ``(x*255 - 127) / 128`` is ``mean = 127/255``, ``std = 128/255``.
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """Normalise ``image``: float ``(..., 3, H, W)`` in ``[0, 1]`` -> float ``(..., 3, H, W)``."""
        mean = torch.tensor(self.mean, dtype=image.dtype, device=image.device).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=image.dtype, device=image.device).view(3, 1, 1)
        return (image - mean) / std

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: dict) -> "Normalization":
        return cls(
            mean=tuple(float(v) for v in data["mean"]), std=tuple(float(v) for v in data["std"])
        )


IMAGENET_NORMALIZATION = Normalization(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


class Backbone(nn.Module):
    """A feature extractor with four stages.

    ``forward(x)`` takes a normalised float image ``(B, 3, H, W)`` and returns the list of the four
    stage feature maps ``[(B, channels[i], H_i, W_i)]``. The last two stages come out at
    ``H / output_stride`` (rounded up), where dilation has replaced stride.

    Subclasses set ``channels`` (the four widths), ``output_stride`` and ``normalization``.
    """

    # No postponed annotations here: TorchScript reads these and cannot parse string annotations.
    channels: list[int]
    output_stride: int

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError


def init_conv_bn(model: nn.Module) -> None:
    """Kaiming-normal (fan-out, ReLU) convolutions without bias change, BatchNorm gamma 1 and
    beta 0: the initialisation torchvision's ResNets and the TF EfficientNets share."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
