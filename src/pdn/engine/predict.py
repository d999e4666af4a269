"""Label files and folders of images with a :class:`~pdn.engine.segmenter.Segmenter` (``pdn predict``).

For every readable image ``NAME.ext`` the output folder receives ``NAME.png`` (the label map, palette
mode ``P`` at the image's size: pixel value = class index, colours = the checkpoint's palette) and
``NAME_overlay.png`` (the image blended with the class colours); ``legend.png`` names the colours.
Images found inside an input folder keep their sub-folder under the output folder. A file that
cannot be read is reported (one line naming it) and the others are still processed.

Nothing of the user's is replaced: every file written carries a PNG text chunk ``Software: pdn``;
before anything is written, the run is refused (:class:`~pdn.errors.PdnError`, one line) when an
output would replace one of its inputs, or a file that is not a pdn output unless ``overwrite``.
Files found in an input folder that are pdn outputs are not labelled again.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin
from tqdm import tqdm

from ..data.io import IMAGE_SUFFIXES
from ..errors import PdnError
from .segmenter import Segmenter, to_image_tensor
from .visualize import background_classes, colorize, legend_image, overlay, panel_image

__all__ = ["PredictReport", "collect_images", "predict_to_folder"]

LEGEND = "legend"
OVERLAY_SUFFIX = "_overlay"
PANEL_SUFFIX = "_panel"
# What one image NAME may write: NAME.png, NAME_overlay.png and (with panels) NAME_panel.png.
OUTPUT_SUFFIXES = ("", OVERLAY_SUFFIX, PANEL_SUFFIX)
SOFTWARE = "pdn"


def _png_info() -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", SOFTWARE)
    return info


def is_pdn_output(path: Path) -> bool:
    """Whether ``path`` is a PNG that ``pdn predict`` wrote (its ``Software`` text is ``pdn``)."""
    if path.suffix.lower() != ".png":
        return False
    try:
        with Image.open(path) as image:
            return getattr(image, "text", {}).get("Software") == SOFTWARE
    except (OSError, ValueError):
        return False


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
                p
                for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not is_pdn_output(p)
            )
            if not images:
                problems.append(f"{path}: no images ({' '.join(IMAGE_SUFFIXES)}) in this folder")
            found += [(p, p.relative_to(path).with_suffix("").as_posix()) for p in images]
        elif path.is_file():
            found.append((path, path.stem))
        else:
            problems.append(f"{path}: no such file or folder")
    # Each image writes NAME, NAME_overlay and NAME_panel: all must be free, none the legend.
    taken = {LEGEND}
    wanted = {name for _, name in found}
    named = []
    for path, name in found:
        unique = name
        suffix = path.suffix.lstrip(".").lower() or "file"
        counter = 1
        while any(
            f"{unique}{end}" in taken or (end and f"{unique}{end}" in wanted - {unique})
            for end in OUTPUT_SUFFIXES
        ):
            unique = f"{name}_{suffix}" + (str(counter) if counter > 1 else "")
            counter += 1
        taken |= {f"{unique}{end}" for end in OUTPUT_SUFFIXES}
        named.append((path, unique))
    return named, problems


def output_files(out_dir: Path, names: Iterable[str], *, panels: bool = False) -> list[Path]:
    """Every file a run with these output names writes: label maps, overlays, panels, legend."""
    ends = OUTPUT_SUFFIXES if panels else OUTPUT_SUFFIXES[:2]
    files = [out_dir / f"{LEGEND}.png"]
    for name in names:
        files += [out_dir / f"{name}{end}.png" for end in ends]
    return files


def check_outputs(
    out_dir: Path,
    items: Sequence[tuple[Path, str]],
    *,
    overwrite: bool = False,
    panels: bool = False,
) -> None:
    """Refuse, before anything is written, outputs that would replace an input, or an existing
    file that is not a pdn output (unless ``overwrite``)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise PdnError(f"--out {out_dir} is a file; give a folder for the label maps")
    inputs = {path.resolve() for path, _ in items}
    for target in output_files(out_dir, [name for _, name in items], panels=panels):
        if target.resolve() in inputs:
            raise PdnError(
                f"{target} is one of the input images; choose an --out folder of its own"
            )
        if target.exists() and not overwrite and not is_pdn_output(target):
            raise PdnError(
                f"{target} exists and is not a pdn output; nothing written (pass --overwrite "
                "to replace it, or choose another --out)"
            )


def _write(
    label_path: Path,
    pixels: np.ndarray,
    labels: np.ndarray,
    segmenter: Segmenter,
    *,
    panel: bool,
    truth: np.ndarray | None,
) -> None:
    label_path.parent.mkdir(parents=True, exist_ok=True)
    palette, classes = segmenter.palette, segmenter.classes
    colorize(labels, palette).save(label_path, pnginfo=_png_info())
    overlay_path = label_path.with_name(f"{label_path.stem}{OVERLAY_SUFFIX}.png")
    blended = overlay(pixels, labels, palette, transparent=background_classes(classes))
    blended.save(overlay_path, pnginfo=_png_info())
    if panel:
        trained = f"; model trained on {segmenter.trained_on}" if segmenter.trained_on else ""
        picture = panel_image(
            pixels, labels, palette, classes, truth=truth, title=f"{label_path.stem}{trained}"
        )
        picture.save(
            label_path.with_name(f"{label_path.stem}{PANEL_SUFFIX}.png"), pnginfo=_png_info()
        )


def predict_to_folder(
    segmenter: Segmenter,
    inputs: Iterable[str | Path],
    out_dir: str | Path,
    *,
    progress: bool = True,
    overwrite: bool = False,
    panels: bool = False,
    truths: Mapping[Path, np.ndarray] | None = None,
    **options: Any,
) -> PredictReport:
    """Label every image under ``inputs`` and write label maps, overlays and a legend to ``out_dir``.

    Images are read and labelled in groups of ``segmenter.batch_size`` (equal sizes share a
    forward pass). ``options`` override the segmenter's inference settings (``mode``, ``crop_size``,
    ``stride``, ``scales``, ``flip``). ``overwrite`` allows replacing files that are not pdn
    outputs (never an input); see the module docstring. ``panels`` also writes ``NAME_panel.png``
    (image | truth | prediction | overlay, with a legend of the classes present), the truth from
    ``truths`` (input path -> label array) where it is given.
    """
    out_dir = Path(out_dir)
    items, failures = collect_images(inputs)
    check_outputs(out_dir, items, overwrite=overwrite, panels=panels)
    truths = {Path(k): v for k, v in (truths or {}).items()}
    report = PredictReport(failures=list(failures))
    bar = tqdm(total=len(items), desc="predict", unit="img", file=sys.stderr, disable=not progress)
    step = max(1, segmenter.batch_size)
    for start in range(0, len(items), step):
        chunk = []
        for path, name in items[start : start + step]:
            try:
                chunk.append((name, to_image_tensor(path), truths.get(Path(path))))
            except PdnError as error:
                report.failures.append(str(error))
        labels = segmenter.predict_batch([pixels for _, pixels, _ in chunk], **options)
        for (name, pixels, truth), label in zip(chunk, labels, strict=True):
            target = out_dir / f"{name}.png"
            try:
                rgb = pixels.permute(1, 2, 0).numpy()
                _write(target, rgb, label, segmenter, panel=panels, truth=truth)
            except OSError as error:
                report.failures.append(f"{target}: cannot write ({error.strerror or error})")
                continue
            report.written.append(target)
        bar.update(len(items[start : start + step]))
    bar.close()
    if report.written:
        report.legend = out_dir / f"{LEGEND}.png"
        legend_image(segmenter.classes, segmenter.palette).save(report.legend, pnginfo=_png_info())
    return report
