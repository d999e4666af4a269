"""Pictures of predictions and scores, drawn with Pillow only: label maps, overlays, legends, the
confusion-matrix heat map and the influence figure of ``pdn explain``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..vocabulary import IGNORE_INDEX

__all__ = [
    "background_classes",
    "colorize",
    "confusion_image",
    "influence_figure",
    "legend_image",
    "overlay",
    "panel_image",
    "write_samples",
]

Palette = Sequence[Sequence[int]]


def _flat_palette(palette: Palette) -> list[int]:
    flat = [int(v) for colour in palette for v in colour][:768]
    return flat + [0] * (768 - len(flat))


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size
        return ImageFont.load_default()


def colorize(labels: np.ndarray, palette: Palette) -> Image.Image:
    """Label map ``(H, W)`` of indices ``< 256`` -> palette-mode (``P``) PIL image of the same size.

    The pixel values are the class indices; ``palette[k]`` is the colour of class ``k``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be (H, W), got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError("a palette image holds labels 0..255 only")
    height, width = labels.shape
    image = Image.frombytes(
        "P", (width, height), np.ascontiguousarray(labels, dtype=np.uint8).tobytes()
    )
    image.putpalette(_flat_palette(palette))
    return image


def write_samples(
    dataset: torch.utils.data.Dataset,
    indices: Sequence[int],
    image_folder: Path,
    label_folder: Path,
    stem: str = "scene",
) -> dict[Path, np.ndarray]:
    """Write samples ``indices`` of a segmentation dataset (``ds[i]``: uint8 ``(3, H, W)``, int64
    ``(H, W)``, as a dataset without transforms returns them) as RGB PNGs
    ``image_folder/{stem}{i}.png`` and their labels as palette PNGs ``label_folder/{stem}{i}.png``
    (pixel values the class indices, 255 kept; colours ``dataset.palette``), so that ``pdn predict``,
    ``pdn explain`` and a ``folder`` dataset read them back. Returns each image's path with its
    label array ``(H, W)``."""
    image_folder.mkdir(parents=True, exist_ok=True)
    label_folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for index in indices:
        image, mask = dataset[index]
        path = image_folder / f"{stem}{index}.png"
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(path)
        labels = mask.numpy()
        colorize(labels, dataset.palette).save(label_folder / f"{stem}{index}.png")
        written[path] = labels
    return written


def overlay(
    image: np.ndarray | Image.Image,
    labels: np.ndarray,
    palette: Palette,
    alpha: float = 0.5,
    *,
    transparent: Sequence[int] = (),
) -> Image.Image:
    """The image ``(H, W, 3)`` uint8 blended with the class colours: ``(1-alpha)*image + alpha*colour``,
    except on pixels of the ``transparent`` classes (e.g. the background), which keep the image.

    Returns an RGB PIL image ``(H, W)``.
    """
    rgb = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    colours = np.asarray(colorize(labels, palette).convert("RGB"))
    if rgb.shape != colours.shape:
        raise ValueError(f"image {rgb.shape} and labels {colours.shape[:2]} differ in size")
    blended = (1.0 - alpha) * rgb.astype(np.float32) + alpha * colours.astype(np.float32)
    keep = np.isin(np.asarray(labels), list(transparent))
    blended[keep] = rgb[keep]
    return Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))


def background_classes(classes: Sequence[str]) -> list[int]:
    """The indices of classes named like a background (``background``, ``_background_``, ...)."""
    return [k for k, name in enumerate(classes) if name.strip("_ ").lower() == "background"]


def panel_image(
    image: np.ndarray,
    prediction: np.ndarray,
    palette: Palette,
    classes: Sequence[str],
    *,
    truth: np.ndarray | None = None,
    height: int = 256,
    title: str = "",
) -> Image.Image:
    """One picture a person can read: image | truth (when given) | prediction | overlay, each
    scaled (nearest neighbour) to at least ``height`` rows, with a legend of the classes present in
    the truth or the prediction; the overlay leaves background classes unpainted."""
    rgb = np.asarray(image, dtype=np.uint8)
    rows = max(height, rgb.shape[0])
    panels = [("image", Image.fromarray(rgb))]
    if truth is not None:
        shown_truth = np.where(truth == IGNORE_INDEX, 0, truth)
        panels.append(("truth", colorize(shown_truth, palette).convert("RGB")))
    panels.append(("prediction", colorize(prediction, palette).convert("RGB")))
    shown = overlay(rgb, prediction, palette, transparent=background_classes(classes))
    panels.append(("overlay", shown))
    panels = [(name, _upscale(picture, rows)) for name, picture in panels]
    present = sorted(
        set(np.unique(prediction).tolist())
        | set([] if truth is None else np.unique(truth[truth != IGNORE_INDEX]).tolist())
    )
    legend = legend_image(classes, palette, only=present)
    gap, top = 10, 40 if title else 22
    width = max(gap + sum(p.width + gap for _, p in panels), legend.width + 2 * gap)
    figure = Image.new("RGB", (width, top + rows + gap + legend.height), "white")
    draw = ImageDraw.Draw(figure)
    font = _font(13)
    if title:
        draw.text((gap, 4), title, fill="black", font=font)
    left = gap
    for name, picture in panels:
        draw.text((left, top - 18), name, fill="black", font=font)
        figure.paste(picture, (left, top))
        left += picture.width + gap
    figure.paste(legend, (gap, top + rows + gap))
    return figure


def legend_image(
    classes: Sequence[str],
    palette: Palette,
    *,
    font_size: int = 14,
    only: Sequence[int] | None = None,
) -> Image.Image:
    """A white RGB image with one row per class (or per index in ``only``): a colour swatch and
    the class index and name."""
    font = _font(font_size)
    row = font_size + 8
    indices = list(range(len(classes))) if only is None else list(only)
    labels = [f"{index}  {classes[index]}" for index in indices]
    palette = [palette[index] for index in indices]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_width = max((probe.textlength(text, font=font) for text in labels), default=0)
    width = int(12 + 2 * row + text_width + 12)
    image = Image.new("RGB", (width, 12 + row * len(labels) + 6), "white")
    draw = ImageDraw.Draw(image)
    for index, (text, colour) in enumerate(zip(labels, palette, strict=True)):
        top = 10 + index * row
        draw.rectangle(
            (12, top, 12 + 2 * row - 6, top + row - 5),
            fill=tuple(int(c) for c in colour),
            outline="black",
        )
        draw.text((12 + 2 * row, top + 2), text, fill="black", font=font)
    return image


def _heat(value: float) -> tuple[int, int, int]:
    """White (0) to dark blue (1)."""
    value = min(max(value, 0.0), 1.0)
    return (
        int(round(255 - value * (255 - 8))),
        int(round(255 - value * (255 - 48))),
        int(round(255 - value * (255 - 107))),
    )


def confusion_image(
    confusion: np.ndarray, classes: Sequence[str], *, cell: int | None = None
) -> Image.Image:
    """Row-normalised confusion matrix ``(K, K)`` as an RGB heat map with class names.

    Rows are ground truth, columns prediction; each cell's shade is the fraction of the row's
    pixels (white 0, dark blue 1), written as a percentage when there is room. Rows without
    ground-truth pixels stay grey. Columns are labelled with the class indices, which the row
    labels also show.
    """
    matrix = np.asarray(confusion, dtype=np.float64)
    k = matrix.shape[0]
    totals = matrix.sum(axis=1, keepdims=True)
    rates = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    cell = cell or max(6, min(40, 900 // max(k, 1)))
    font = _font(max(8, min(14, cell // 3 + 2)))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength
    names = [f"{name}  {index}" for index, name in enumerate(classes)]
    title = "ground truth (rows) vs prediction (columns), % of each row"
    footer = "grey row: class absent from the ground truth"
    left = int(max(measure(n, font=font) for n in names)) + 16
    top = 48
    text_width = int(max(measure(title, font=font), measure(footer, font=font)))
    width = max(left + k * cell, text_width + 12) + 16
    image = Image.new("RGB", (width, top + k * cell + 36), "white")
    draw = ImageDraw.Draw(image)
    text_left = min(left, width - 16 - text_width)
    draw.text((text_left, 6), title, fill="black", font=font)
    draw.text((text_left, top + k * cell + 10), footer, fill="black", font=font)
    for j in range(k if cell >= 14 else 0):
        x = left + j * cell + (cell - measure(str(j), font=font)) / 2
        draw.text((x, top - 18), str(j), fill="black", font=font)
    for i in range(k):
        y = top + i * cell
        label_x = left - 8 - measure(names[i], font=font)
        draw.text((label_x, y + max(0, (cell - 14) // 2)), names[i], fill="black", font=font)
        for j in range(k):
            x = left + j * cell
            fill = _heat(rates[i, j]) if totals[i, 0] > 0 else (200, 200, 200)
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=fill)
            if cell >= 30 and totals[i, 0] > 0:
                text = f"{100 * rates[i, j]:.0f}"
                colour = "white" if rates[i, j] > 0.5 else "black"
                tx = x + (cell - measure(text, font=font)) / 2
                draw.text((tx, y + (cell - 12) / 2), text, fill=colour, font=font)
    draw.rectangle((left - 1, top - 1, left + k * cell, top + k * cell), outline="black")
    return image


# Anchors of the influence colour ramp (dark violet -> red -> yellow), from low to high.
_RAMP = np.array([(40, 10, 90), (120, 30, 120), (200, 60, 80), (245, 140, 40), (250, 240, 120)])
ZERO_COLOUR = (0, 0, 0)


def log_heat(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``(h, w)`` non-negative values -> ``uint8 (h, w, 3)`` on a log10 ramp from ``low`` to
    ``high`` (log10 units, clipped); exact zeros are black, so what a model cannot see stands out."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore"):
        logs = np.log10(values)
    position = np.clip((logs - low) / max(high - low, 1e-12), 0.0, 1.0) * (len(_RAMP) - 1)
    left = np.minimum(np.floor(position).astype(int), len(_RAMP) - 2)
    frac = (position - left)[..., None]
    rgb = (1 - frac) * _RAMP[left] + frac * _RAMP[left + 1]
    rgb[values <= 0] = ZERO_COLOUR
    return np.rint(rgb).astype(np.uint8)


def _upscale(image: Image.Image, height: int) -> Image.Image:
    width = max(1, round(image.width * height / image.height))
    return image.resize((width, height), Image.Resampling.NEAREST)


def _mark(draw: ImageDraw.ImageDraw, x: float, y: float, size: int = 7) -> None:
    for colour, width in (("black", 4), ("white", 2)):
        draw.line((x - size, y, x + size, y), fill=colour, width=width)
        draw.line((x, y - size, x, y + size), fill=colour, width=width)


def influence_figure(
    image: np.ndarray,
    labels: np.ndarray,
    palette: Palette,
    maps: Sequence[tuple[str, np.ndarray, tuple[int, int]]],
    *,
    pixel: tuple[int, int],
    title: str = "",
    decades: float = 6.0,
    height: int = 256,
) -> Image.Image:
    """One picture: the image (the explained pixel marked), the prediction, then one log-scaled
    influence map per ``(name, values (h, w), marked site)`` with its own scale bar.

    Every panel is scaled (nearest neighbour) to ``max(height, H)`` rows. A map's scale spans
    ``decades`` powers of ten below its maximum; black is an exact zero.
    """
    rgb = np.asarray(image, dtype=np.uint8)
    rows = max(height, rgb.shape[0])
    scale = rows / rgb.shape[0]
    font = _font(13)
    panels: list[tuple[str, Image.Image, list[str]]] = []
    photo = _upscale(Image.fromarray(rgb), rows)
    _mark(ImageDraw.Draw(photo), (pixel[1] + 0.5) * scale, (pixel[0] + 0.5) * scale)
    panels.append(("image", photo, []))
    panels.append(("prediction", _upscale(colorize(labels, palette).convert("RGB"), rows), []))
    for name, values, site in maps:
        values = np.asarray(values, dtype=np.float64)
        peak = float(values.max()) if values.size else 0.0
        high = np.log10(peak) if peak > 0 else 0.0
        heat = _upscale(Image.fromarray(log_heat(values, high - decades, high)), rows)
        step = rows / values.shape[0]
        _mark(ImageDraw.Draw(heat), (site[1] + 0.5) * step, (site[0] + 0.5) * step)
        seen = float((values > 0).mean()) if values.size else 0.0
        notes = [f"1e{high - decades:.1f} .. 1e{high:.1f}", f"black: 0 ({100 * (1 - seen):.0f} %)"]
        panels.append((name, heat, notes))
    gap, top, bar = 10, 40 if title else 22, 12
    width = gap + sum(p.width + gap for _, p, _ in panels)
    figure = Image.new("RGB", (width, top + rows + bar + 44), "white")
    draw = ImageDraw.Draw(figure)
    if title:
        draw.text((gap, 4), title, fill="black", font=font)
    left = gap
    ramp = log_heat(np.logspace(-1, 0, 256)[None, :], -1, 0)
    for name, panel, notes in panels:
        draw.text((left, top - 18), name, fill="black", font=font)
        figure.paste(panel, (left, top))
        if notes:
            strip = Image.fromarray(ramp).resize((panel.width, bar), Image.Resampling.BILINEAR)
            figure.paste(strip, (left, top + rows + 4))
            for k, note in enumerate(notes):
                draw.text((left, top + rows + bar + 8 + 16 * k), note, fill="black", font=font)
        left += panel.width + gap
    return figure
