"""Scan a whole dataset: sample count, classes present, image sizes, and every bad file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from ..errors import DataError
from .base import FileSegmentationDataset, SegmentationDataset


@dataclass
class DatasetReport:
    """What :func:`check_dataset` found. ``class_pixels[k]`` counts train id ``k``'s pixels."""

    classes: tuple[str, ...]
    num_samples: int
    class_pixels: np.ndarray
    ignore_pixels: int = 0
    heights: tuple[int, int] | None = None
    widths: tuple[int, int] | None = None
    bad: list[str] = field(default_factory=list)

    @property
    def good(self) -> int:
        return self.num_samples - len(self.bad)

    @property
    def ok(self) -> bool:
        return not self.bad

    def lines(self) -> list[str]:
        """The report as text lines (what ``pdn data check`` prints)."""
        lines = [f"samples: {self.num_samples} ({self.good} good, {len(self.bad)} bad)"]
        if self.heights is not None and self.widths is not None:
            lines.append(
                f"image sizes: height {self.heights[0]}..{self.heights[1]}, width {self.widths[0]}..{self.widths[1]}"
            )
        total = int(self.class_pixels.sum()) + self.ignore_pixels
        present = np.flatnonzero(self.class_pixels)
        lines.append(
            f"classes present: {len(present)} of {len(self.classes)} (share of all mask pixels)"
        )
        width = max((len(self.classes[k]) for k in present), default=0)
        for k in present:
            lines.append(
                f"  {k:>3} {self.classes[k]:<{width}} {100 * self.class_pixels[k] / total:8.3f} %"
            )
        if total:
            lines.append(f"  255 {'(ignore)':<{width}} {100 * self.ignore_pixels / total:8.3f} %")
        if self.bad:
            lines.append(f"bad files: {len(self.bad)}")
            lines.extend(f"  {message}" for message in self.bad)
        return lines


def check_dataset(dataset: SegmentationDataset, *, progress: bool = False) -> DatasetReport:
    """Read every sample of ``dataset`` (transforms not applied), continuing past bad files.

    Each sample that raises a :class:`~pdn.errors.DataError` (missing or unreadable file, mask
    size differing from its image's, labels that are not labels of the dataset) adds its one-line
    message to ``report.bad``; the others add their pixels per class and their size.
    """
    num_classes = dataset.num_classes
    counts = np.zeros(num_classes + 1, dtype=np.int64)
    heights: list[int] = []
    widths: list[int] = []
    bad = []
    for index in tqdm(
        range(len(dataset)), desc="checking", unit="sample", disable=not progress, leave=False
    ):
        try:
            image, mask = dataset.load(index)
        except DataError as error:
            bad.append(str(error))
            continue
        heights.append(int(image.shape[-2]))
        widths.append(int(image.shape[-1]))
        labels = mask.numpy().ravel()
        counts += np.bincount(
            np.where(labels == dataset.ignore_index, num_classes, labels), minlength=num_classes + 1
        )
    return DatasetReport(
        classes=dataset.classes,
        num_samples=len(dataset),
        class_pixels=counts[:num_classes],
        ignore_pixels=int(counts[num_classes]),
        heights=(min(heights), max(heights)) if heights else None,
        widths=(min(widths), max(widths)) if widths else None,
        bad=bad,
    )


def _header(path: Path, what: str) -> tuple[int, int]:
    """``(width, height)`` from the file's header (nothing is decoded); a DataError otherwise."""
    if not path.is_file():
        raise DataError(f"{path}: {what} file not found")
    try:
        with Image.open(path) as image:
            return image.size
    except UnidentifiedImageError:
        raise DataError(
            f"{path}: cannot read {what} (not an image format Pillow recognises, or corrupt)"
        ) from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise DataError(f"{path}: cannot read {what} ({reason})") from None


def scan_files(dataset: SegmentationDataset, *, min_size: int = 0) -> list[str]:
    """A fast check of every file of a file-backed dataset, from the headers only: each image and
    mask exists and is an image, the mask has its image's size, and (``min_size > 0``) the image
    is at least ``min_size`` on each side. Returns one message per bad sample (none for a
    generated or in-memory dataset, which has no files to scan). Full decoding and label values
    are :func:`check_dataset`'s job."""
    if not isinstance(dataset, FileSegmentationDataset):
        return []
    bad = []
    for image_path, mask_path in dataset.samples:
        try:
            width, height = _header(Path(image_path), "image")
            mask_size = _header(Path(mask_path), "mask")
        except DataError as error:
            bad.append(str(error))
            continue
        if mask_size != (width, height):
            bad.append(
                f"{mask_path}: mask is {mask_size[0]}x{mask_size[1]} (W x H), its image "
                f"{image_path} is {width}x{height}"
            )
        elif min(width, height) < min_size:
            bad.append(
                f"{image_path}: {width}x{height} is smaller than the {min_size}x{min_size} the "
                "models accept"
            )
    return bad
