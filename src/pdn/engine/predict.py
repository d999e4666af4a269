"""Label files and folders of images with a :class:`~pdn.engine.segmenter.Segmenter` (``pdn predict``).

For every readable image ``NAME.ext`` the output folder receives ``NAME.png`` (the label map, palette
mode ``P`` at the image's size: pixel value = class index, colours = the checkpoint's palette) and
``NAME_overlay.png`` (the image blended with the class colours); ``legend.png`` names the colours.
Images found inside an input folder keep their sub-folder under the output folder. A file that
cannot be read is reported (one line naming it) and the others are still processed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..data.io import IMAGE_SUFFIXES
from ..errors import PdnError
from .segmenter import Segmenter, to_image_tensor
from .visualize import colorize, legend_image, overlay

__all__ = ["PredictReport", "collect_images", "predict_to_folder"]

LEGEND = "legend"


@dataclass
class PredictReport:
    """The outcome of :func:`predict_to_folder`.

    Attributes:
        written: the label-map files written, one per labelled image.
        legend: the legend file (None if nothing was labelled).
        failures: one line per input that could not be labelled, naming it.
    """

    written: list[Path] = field(default_factory=list)
    legend: Path | None = None
    failures: list[str] = field(default_factory=list)


def collect_images(inputs: Iterable[str | Path]) -> tuple[list[tuple[Path, str]], list[str]]:
    """Expand files and folders into ``(image path, output name)`` pairs.

    Folders are searched recursively for files with an image suffix (``.jpg .jpeg .png .tif .tiff
    .bmp .webp``, any case); their output names keep the path below the folder, without suffix
    (``photos/a/b.jpg`` -> ``a/b``). A file named directly is taken whatever its suffix (reading it
    tells whether it is an image); its output name is its stem. When two inputs would get the same
    name, the later ones get their suffix appended (``b_jpg``).

    Returns:
        The pairs in input order (folders sorted), and one message per input that does not exist
        or is a folder without images.
    """
    found: list[tuple[Path, str]] = []
    problems: list[str] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            images = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not images:
                problems.append(f"{path}: no images ({' '.join(IMAGE_SUFFIXES)}) in this folder")
            found += [(p, p.relative_to(path).with_suffix("").as_posix()) for p in images]
        elif path.is_file():
            found.append((path, path.stem))
        else:
            problems.append(f"{path}: no such file or folder")
    taken = {LEGEND}
    named = []
    for path, name in found:
        unique = name
        if unique in taken:
            unique = f"{name}_{path.suffix.lstrip('.').lower() or 'file'}"
            counter = 2
            while unique in taken:
                unique = f"{name}_{path.suffix.lstrip('.').lower()}{counter}"
                counter += 1
        taken.add(unique)
        named.append((path, unique))
    return named, problems


def _write(label_path: Path, pixels: np.ndarray, labels: np.ndarray, palette: Sequence) -> None:
    label_path.parent.mkdir(parents=True, exist_ok=True)
    colorize(labels, palette).save(label_path)
    overlay(pixels, labels, palette).save(label_path.with_name(f"{label_path.stem}_overlay.png"))


def predict_to_folder(
    segmenter: Segmenter,
    inputs: Iterable[str | Path],
    out_dir: str | Path,
    *,
    progress: bool = True,
    **options: Any,
) -> PredictReport:
    """Label every image under ``inputs`` and write label maps, overlays and a legend to ``out_dir``.

    Images are read and labelled in groups of ``segmenter.batch_size`` (equal sizes share a
    forward pass). ``options`` override the segmenter's inference settings (``mode``, ``crop_size``,
    ``stride``, ``scales``, ``flip``).
    """
    out_dir = Path(out_dir)
    items, failures = collect_images(inputs)
    report = PredictReport(failures=list(failures))
    bar = tqdm(total=len(items), desc="predict", unit="img", file=sys.stderr, disable=not progress)
    step = max(1, segmenter.batch_size)
    for start in range(0, len(items), step):
        chunk = []
        for path, name in items[start : start + step]:
            try:
                chunk.append((name, to_image_tensor(path)))
            except PdnError as error:
                report.failures.append(str(error))
        labels = segmenter.predict_batch([pixels for _, pixels in chunk], **options)
        for (name, pixels), label in zip(chunk, labels, strict=True):
            target = out_dir / f"{name}.png"
            try:
                _write(target, pixels.permute(1, 2, 0).numpy(), label, segmenter.palette)
            except OSError as error:
                report.failures.append(f"{target}: cannot write ({error.strerror or error})")
                continue
            report.written.append(target)
        bar.update(len(items[start : start + step]))
    bar.close()
    if report.written:
        report.legend = out_dir / f"{LEGEND}.png"
        legend_image(segmenter.classes, segmenter.palette).save(report.legend)
    return report
