"""How far context reaches: input-gradient influence maps and the cue share.

Three measures, all gradients of a model in eval mode (BatchNorm on running statistics, so the
images of a batch do not interact), computed with ``torch.autograd.grad`` so that no parameter's
``.grad`` is touched (the trainer calls :func:`cue_share` between its steps):

- :func:`influence_map`: ``|d logit_k(pixel) / d input|`` summed over the RGB channels, for the
  whole model. Zero wherever the pixel's prediction does not depend on the input: outside an FCN's
  window, past the taps of ASPP, behind a one-direction sweep.
- :func:`layer_influence`: for each diffusion layer, ``sum_{c, c'} |d Y_c(site) / d X_c'|`` of the
  layer's output ``Y`` at one feature site on its input feature map ``X``: how far one layer
  carries information, before the rest of the model mixes it.
- :func:`cue_share`: the share of an object pixel's gradient mass that lies on the cue pixels of a
  context-benchmark scene, for the part of the decision the cue must settle (the true class's
  logit minus the mean of the object classes' logits). A local model has a share of 0; a model
  that reads the cue puts a visible part of its mass there.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..models.diffusion import DiffusionLayerBase, DiffusionStack, SweepDiffusion
from ..vocabulary import IGNORE_INDEX


@dataclass
class LayerInfluence:
    """One diffusion layer's influence map: ``name`` (module path), ``site`` (row, column) on the
    feature map, ``values`` float ``(h, w)``; for a sweep, ``directions`` maps each direction to
    the same measure of its hidden state ``sum_{c, c'} |d h_c(site) / d X_c'|``."""

    name: str
    site: tuple[int, int]
    values: torch.Tensor
    directions: dict[str, torch.Tensor] = field(default_factory=dict)


def _gradient(outputs: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    (grad,) = torch.autograd.grad(outputs, inputs, allow_unused=True)
    return torch.zeros_like(inputs) if grad is None else grad


def influence_map(
    model: nn.Module, image: torch.Tensor, pixel: tuple[int, int], target: int | None = None
) -> tuple[torch.Tensor, int]:
    """``|d logit_target(pixel) / d image|`` summed over channels.

    Args:
        model: ``(B, 3, H, W) -> (B, K, H, W)`` logits, put in eval mode for the call.
        image: normalised ``(3, H, W)``.
        pixel: ``(row, column)`` in the image.
        target: the class whose logit is explained; default the predicted class at ``pixel``.

    Returns:
        The map, float ``(H, W)`` on the image's device, and the class explained.
    """
    row, col = _check_pixel(pixel, image.shape[-2:])
    was_training = model.training
    model.eval()
    try:
        x = image.detach()[None].clone().requires_grad_(True)
        with torch.enable_grad():
            logits = model(x)
            if target is None:
                target = int(logits[0, :, row, col].argmax())
            grad = _gradient(logits[0, target, row, col], x)
    finally:
        model.train(was_training)
    return grad[0].abs().sum(0), int(target)


def _check_pixel(pixel: Sequence[int], size: Sequence[int]) -> tuple[int, int]:
    row, col = (int(v) for v in pixel)
    if not (0 <= row < size[0] and 0 <= col < size[1]):
        raise ValueError(
            f"pixel ({row}, {col}) is outside the {size[0]}x{size[1]} image (row, column from 0)"
        )
    return row, col


def diffusion_inputs(
    model: nn.Module, image: torch.Tensor
) -> list[tuple[str, DiffusionLayerBase, torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]]:
    """Each diffusion layer of ``model`` with the input it gets for ``image`` (normalised
    ``(3, H, W)``): ``(name, layer, X (C, h, w), previous layer's state or None)``, in order."""
    stacks = [(name, m) for name, m in model.named_modules() if isinstance(m, DiffusionStack)]
    captured: dict[str, torch.Tensor] = {}
    hooks = [
        stack.register_forward_pre_hook(
            lambda _, args, name=name: captured.__setitem__(name, args[0].detach())
        )
        for name, stack in stacks
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(image.detach()[None])
            found = []
            for name, stack in stacks:
                x, state = captured[name], None
                for index, layer in enumerate(stack.layers):
                    found.append((f"{name}.layers.{index}", layer, x[0], state))
                    x, state = layer.forward_with_state(x, state)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return found


def layer_influence(
    model: nn.Module, image: torch.Tensor, pixel: tuple[int, int], *, chunk: int = 16
) -> list[LayerInfluence]:
    """Every diffusion layer's ``sum_{c, c'} |d Y_c(site) / d X_c'|`` on its input map, at the
    feature site under ``pixel`` (an empty list for a model without diffusion layers).

    The output channels are taken ``chunk`` at a time, as a batch of copies of the input, so a
    layer costs ``C / chunk`` forward and backward passes at batch ``chunk``.
    """
    row, col = _check_pixel(pixel, image.shape[-2:])
    results = []
    for name, layer, x, state in diffusion_inputs(model, image):
        channels, height, width = x.shape
        site = (
            min(height - 1, row * height // image.shape[-2]),
            min(width - 1, col * width // image.shape[-1]),
        )
        was_training = layer.training
        layer.eval()
        try:
            output = _site_jacobian_mass(
                functools.partial(_layer_output, layer, state),
                x,
                range(channels),
                site,
                chunk,
            )
            per_direction = {}
            if isinstance(layer, SweepDiffusion):
                for k, direction in enumerate(layer.directions):
                    per_direction[direction] = _site_jacobian_mass(
                        layer.hidden_states,
                        x,
                        range(k * layer.hidden, (k + 1) * layer.hidden),
                        site,
                        chunk,
                    )
        finally:
            layer.train(was_training)
        results.append(LayerInfluence(name, site, output, per_direction))
    return results


def _layer_output(
    layer: DiffusionLayerBase, state: tuple[torch.Tensor, torch.Tensor] | None, x: torch.Tensor
) -> torch.Tensor:
    """``layer``'s output for a batch ``x`` of copies, each with the same previous ``state``."""
    if state is not None:
        state = (state[0].expand(len(x), -1, -1, -1), state[1].expand(len(x), -1, -1, -1))
    return layer.forward_with_state(x, state)[0]


def _site_jacobian_mass(
    function, x: torch.Tensor, channels: range, site: tuple[int, int], chunk: int
) -> torch.Tensor:
    """``sum_{c in channels, c'} |d function(X)_c(site) / d X_c'|`` as ``(h, w)``, for a map
    ``function: (N, C, h, w) -> (N, C_out, h, w)`` whose batch items do not interact; the
    channels go ``chunk`` at a time, one copy of ``x`` (``(C, h, w)``) each."""
    total = torch.zeros(x.shape[-2:], device=x.device)
    picked_all = list(channels)
    for start in range(0, len(picked_all), chunk):
        picked = torch.tensor(picked_all[start : start + chunk], device=x.device)
        copies = x[None].repeat(len(picked), 1, 1, 1).requires_grad_(True)
        with torch.enable_grad():
            y = function(copies)
            chosen = y[torch.arange(len(picked)), picked, site[0], site[1]]
            grad = _gradient(chosen.sum(), copies)
        total += grad.abs().sum(dim=(0, 1))
    return total


def object_pixels(mask: torch.Tensor, count: int, background: int = 0) -> list[tuple[int, int]]:
    """``count`` object pixels of ``mask`` (``(H, W)``, neither ``background`` nor the ignore
    index), evenly spaced in raster order; fewer when the mask has fewer."""
    rows, cols = torch.nonzero((mask != background) & (mask != IGNORE_INDEX), as_tuple=True)
    if len(rows) == 0:
        return []
    picks = torch.linspace(0, len(rows) - 1, min(count, len(rows))).round().long()
    return [(int(rows[i]), int(cols[i])) for i in picks]


def cue_share(
    model: nn.Module,
    images: torch.Tensor,
    masks: torch.Tensor,
    cues: torch.Tensor,
    *,
    pixels_per_image: int = 4,
    background: int = 0,
) -> float:
    """The mean share of an object pixel's input-gradient mass that lies on cue pixels.

    Args:
        model: ``(B, 3, H, W) -> (B, K, H, W)``, put in eval mode for the call.
        images: normalised ``(N, 3, H, W)``; ``masks``: labels ``(N, H, W)``; ``cues``: bool
            ``(N, H, W)``, the cue pixels.
        pixels_per_image: object pixels explained per image (:func:`object_pixels`), one copy of
            the image each, all in one batch.

    For object pixel ``p`` of class ``y``, the explained score is ``z_y(p) - mean_k z_k(p)`` over
    the classes ``k`` other than ``background``: what the cue decides, not whether ``p`` is an
    object. Returns the mean over the pixels of ``sum_cue |grad| / sum_all |grad|`` (0 where no
    image has an object pixel).
    """
    copies, targets = [], []
    for index in range(images.shape[0]):
        for row, col in object_pixels(masks[index], pixels_per_image, background):
            copies.append(index)
            targets.append((int(masks[index, row, col]), row, col))
    if not copies:
        return 0.0
    chosen = torch.tensor(copies, device=images.device)
    x = images.detach()[chosen].clone().requires_grad_(True)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            logits = model(x)
            others = [k for k in range(logits.shape[1]) if k != background]
            score = logits.new_zeros(())
            for j, (label, row, col) in enumerate(targets):
                at = logits[j, :, row, col]
                score = score + at[label] - at[others].mean()
            grad = _gradient(score, x)
    finally:
        model.train(was_training)
    mass = grad.abs().sum(1)  # (P, H, W)
    on_cue = (mass * cues[chosen].to(mass.dtype)).sum(dim=(1, 2))
    total = mass.sum(dim=(1, 2)).clamp_min(torch.finfo(mass.dtype).tiny)
    return float((on_cue / total).mean())


@dataclass
class CueProbe:
    """Fixed context-benchmark scenes for :func:`cue_share` during training: normalised
    ``images (N, 3, H, W)``, ``masks (N, H, W)``, ``cues`` bool ``(N, H, W)``."""

    images: torch.Tensor
    masks: torch.Tensor
    cues: torch.Tensor

    @classmethod
    def from_dataset(cls, dataset: object, transform: object, count: int = 4) -> CueProbe | None:
        """The first ``count`` scenes of a context dataset through ``transform`` (the evaluation
        pipeline); ``None`` for any other dataset, which has no cue to measure."""
        from ..data.context import ContextDataset, cue_mask

        if not isinstance(dataset, ContextDataset) or len(dataset) == 0:
            return None
        images, masks, cues = [], [], []
        for index in range(min(count, len(dataset))):
            image, mask = transform(*dataset[index])
            images.append(image)
            masks.append(mask)
            cues.append(torch.from_numpy(cue_mask(dataset.layout(index))))
        return cls(torch.stack(images), torch.stack(masks), torch.stack(cues))

    def measure(self, model: nn.Module, device: torch.device) -> float:
        """:func:`cue_share` of ``model`` on these scenes."""
        return cue_share(model, self.images.to(device), self.masks.to(device), self.cues.to(device))


@dataclass
class Explanation:
    """What :func:`explain` measured and drew: the class explained, the whole model's map and
    every diffusion layer's, the share of the model's map within ``radius`` px of the pixel, and
    the picture's path."""

    target: int
    target_name: str
    model_map: torch.Tensor
    layers: list[LayerInfluence]
    picture: Path | None


def explain(
    checkpoint: str | Path,
    image: str | Path,
    pixel: tuple[int, int],
    *,
    out: str | Path | None = None,
    target: int | None = None,
    device: str | None = None,
) -> Explanation:
    """Explain one pixel of one image under a checkpoint, and draw it (``out``: a ``.png``).

    The picture shows the image with the pixel marked, the prediction, the whole model's
    :func:`influence_map` and each diffusion layer's :func:`layer_influence` (none for fcn, aspp
    or ppm), each log-scaled with a scale bar.

    Raises:
        CheckpointError, DataError: a bad checkpoint or image (one line).
        ValueError: a pixel outside the image or a class out of range.
    """
    from .segmenter import Segmenter, to_image_tensor
    from .visualize import influence_figure

    segmenter = Segmenter.from_checkpoint(checkpoint, device=device)
    if target is not None and not 0 <= target < segmenter.num_classes:
        raise ValueError(f"class {target} is out of range 0..{segmenter.num_classes - 1}")
    pixels = to_image_tensor(image)
    x = segmenter.prepare(pixels)
    model = segmenter.model
    model_map, target = influence_map(model, x, pixel, target)
    layers = layer_influence(model, x, pixel)
    picture = None
    if out is not None:
        with torch.no_grad():
            labels = model(x[None])[0].argmax(0).cpu().numpy()
        rgb = pixels.permute(1, 2, 0).cpu().numpy()
        maps = [("whole model on the image", model_map.cpu().numpy(), tuple(pixel))]
        maps += [
            (f"{layer.name} on its input", layer.values.cpu().numpy(), layer.site)
            for layer in layers
        ]
        name = segmenter.classes[target]
        figure = influence_figure(
            rgb,
            labels,
            segmenter.palette,
            maps,
            pixel=tuple(pixel),
            title=f"|d logit({name}) / d input| at pixel (row {pixel[0]}, column {pixel[1]}), "
            f"log scale; {Path(str(checkpoint)).name}",
        )
        picture = Path(out)
        picture.parent.mkdir(parents=True, exist_ok=True)
        figure.save(picture)
    return Explanation(target, segmenter.classes[target], model_map, layers, picture)
