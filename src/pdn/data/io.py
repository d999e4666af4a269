"""Reading and checking dataset files: the one place where images and masks become tensors.

Every reader in :mod:`pdn.data` goes through these functions, so every dataset refuses bad input
the same way: a one-line :class:`~pdn.errors.DataError` that names the file and the problem.
Nothing is resized or clipped on the way.

Images become ``uint8`` tensors ``(3, H, W)``:

- RGB images are taken as they are; palette, RGBA, LA, CMYK and YCbCr images are converted to RGB
  by Pillow (an alpha channel is dropped, not composited);
- 8-bit grayscale (``L``) and bilevel (``1``) images are repeated over the three channels;
- grayscale images deeper than 8 bits (``I;16*``, ``I``, ``F``, as in microscopy) are rescaled
  linearly from ``[min(0, lo), hi]`` to ``[0, 255]`` (``lo``/``hi`` the image's own minimum and
  maximum), rounded, and repeated over the three channels. For non-negative data this maps 0 to 0
  and the image's maximum to 255: every value keeps its place, nothing saturates. An image
  whose values are all 0 stays 0; an image with a NaN or infinite value is refused.
- EXIF orientation tags are not applied: masks are stored unrotated, pixels are read as stored.

Masks must be single-channel (palette ``P``, grayscale ``L``, 16/32-bit ``I``): their pixel values
are the labels. A palette PNG is read as its indices, never through its colours; an RGB mask is
refused, because mapping colours back to classes is a conversion step the user should see.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import DataError
from ..vocabulary import IGNORE_INDEX

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_MASK_MODES = ("P", "L", "1", "I;16", "I;16L", "I;16B", "I;16N", "I")


def _open(path: Path, what: str) -> Image.Image:
    """Open and fully decode ``path``; any failure becomes a one-line DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} file not found")
    try:
        with Image.open(path) as image:
            image.load()
    except UnidentifiedImageError:
        reason = "not an image format Pillow recognises, or corrupt"
        raise DataError(f"{path}: cannot read {what} ({reason})") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise DataError(f"{path}: cannot read {what} ({reason})") from None
    return image


def high_depth_to_uint8(values: np.ndarray, path: Path | str = "<array>") -> np.ndarray:
    """Rescale a grayscale array deeper than 8 bits to ``uint8``, linearly, without clipping.

    ``(H, W)`` of any integer or float dtype -> ``uint8 (H, W)``: ``[min(0, lo), hi]`` maps onto
    ``[0, 255]`` and values are rounded to the nearest integer (see the module docstring).
    """
    data = values.astype(np.float64)
    if not np.isfinite(data).all():
        raise DataError(f"{path}: image holds NaN or infinite values")
    lo, hi = min(0.0, float(data.min())), float(data.max())
    if hi <= lo:
        return np.zeros(data.shape, dtype=np.uint8)
    return np.rint((data - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def image_to_tensor(image: Image.Image, path: Path | str = "<image>") -> torch.Tensor:
    """A decoded Pillow image -> ``uint8`` tensor ``(3, H, W)`` (conversion rules: module docstring)."""
    if image.mode in _HIGH_DEPTH_MODES:
        gray = high_depth_to_uint8(np.asarray(image), path)
    elif image.mode in ("L", "1"):
        gray = np.asarray(image.convert("L"))
    else:
        rgb = np.asarray(image.convert("RGB"))
        return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))
    return torch.from_numpy(np.ascontiguousarray(np.broadcast_to(gray, (3, *gray.shape))))


def read_image(path: Path | str) -> torch.Tensor:
    """Read an image file -> ``uint8`` tensor ``(3, H, W)``. Raises DataError naming ``path``."""
    path = Path(path)
    return image_to_tensor(_open(path, "image"), path)


def read_label_array(path: Path | str) -> np.ndarray:
    """Read a single-channel mask file -> integer array ``(H, W)`` of its raw pixel values.

    Palette PNGs give their indices. RGB/RGBA/LA and float masks are refused with a DataError.
    """
    path = Path(path)
    image = _open(path, "mask")
    if image.mode not in _MASK_MODES:
        raise DataError(
            f"{path}: mask has mode {image.mode}; expected a single-channel PNG of class indices "
            "(palette or grayscale), not colours"
        )
    if image.mode == "1":
        image = image.convert("L")
    return np.asarray(image)


def check_same_size(
    image: torch.Tensor, mask_size: tuple[int, int], image_path: Path, mask_path: Path
) -> None:
    """Refuse a mask ``(H, W)`` whose size differs from its image ``(3, H, W)``."""
    if tuple(image.shape[-2:]) != tuple(mask_size):
        (ih, iw), (mh, mw) = image.shape[-2:], mask_size
        raise DataError(
            f"{mask_path}: mask is {mh}x{mw} (HxW) but its image {image_path} is {ih}x{iw}"
        )


def _format_values(values: Iterable[int], limit: int = 8) -> str:
    values = [int(v) for v in values]
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


@dataclass(frozen=True)
class LabelMap:
    """Raw mask values -> train ids, as a lookup table over the raw values ``0..255``.

    ``table[raw]`` is the train id (``0..K-1`` or 255 for ignore), or -1 where ``raw`` is not a
    label of the dataset. ``description`` says in words which raw values are valid (for errors).
    """

    table: np.ndarray
    num_classes: int
    description: str

    @classmethod
    def identity(cls, num_classes: int) -> LabelMap:
        """Raw ``0..K-1`` are the train ids; 255 is ignore; anything else is an error."""
        table = np.full(256, -1, dtype=np.int64)
        table[:num_classes] = np.arange(num_classes)
        table[IGNORE_INDEX] = IGNORE_INDEX
        return cls(table, num_classes, f"0..{num_classes - 1} and 255 (ignore)")

    @classmethod
    def reduce_zero(cls, num_classes: int, zero_means: str) -> LabelMap:
        """Raw 0 (``zero_means``, e.g. "other") and 255 become ignore; raw ``1..K`` become ``0..K-1``."""
        table = np.full(256, -1, dtype=np.int64)
        table[1 : num_classes + 1] = np.arange(num_classes)
        table[0] = table[IGNORE_INDEX] = IGNORE_INDEX
        return cls(
            table, num_classes, f"0 ({zero_means}, ignored), 1..{num_classes} and 255 (ignore)"
        )

    @classmethod
    def from_pairs(
        cls, pairs: Iterable[tuple[int, int]], num_classes: int, description: str
    ) -> LabelMap:
        """An explicit ``(raw, train id)`` table; raw values not listed are errors."""
        table = np.full(256, -1, dtype=np.int64)
        for raw, train_id in pairs:
            table[raw] = train_id
        return cls(table, num_classes, description)

    def __call__(self, raw: np.ndarray, path: Path | str = "<mask>") -> torch.Tensor:
        """Map raw labels ``(H, W)`` -> ``int64`` tensor ``(H, W)`` of train ids (255 = ignore).

        Raises DataError naming ``path`` and the offending raw values if any is not a label.
        """
        raw = np.asarray(raw)
        if raw.size and (int(raw.min()) < 0 or int(raw.max()) >= len(self.table)):
            bad = np.unique(raw[(raw < 0) | (raw >= len(self.table))])
            raise DataError(
                f"{path}: label values {_format_values(bad)} are not labels of this dataset (valid: {self.description})"
            )
        mapped = self.table[raw]
        if raw.size and int(mapped.min()) < 0:
            bad = np.unique(raw[mapped < 0])
            raise DataError(
                f"{path}: label values {_format_values(bad)} are not labels of this dataset (valid: {self.description})"
            )
        return torch.from_numpy(mapped)


def read_split_file(path: Path) -> list[str]:
    """The non-empty, stripped lines of a split list (one sample id per line)."""
    if not path.is_file():
        raise DataError(f"{path}: split list not found")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read split list ({error})") from None
    ids = [line.split()[0] for line in lines if line.strip()]
    if not ids:
        raise DataError(f"{path}: split list is empty")
    return ids


def locate_root(
    root: Path | str | None,
    dataset: str,
    candidates: Sequence[str],
    required: Sequence[str],
    expected: str,
) -> Path:
    """Find the dataset's base folder under ``root``.

    ``candidates`` are sub-paths of ``root`` tried in order (``"."`` for ``root`` itself); the
    first whose ``required`` entries all exist wins. Otherwise a DataError shows the expected
    layout on one line.
    """
    if root is None:
        raise DataError(f"dataset {dataset!r} needs root=...; expected {expected}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: dataset root not found; expected {expected}")
    for candidate in candidates:
        base = root / candidate if candidate != "." else root
        if all((base / entry).exists() for entry in required):
            return base
    raise DataError(f"{root}: no {dataset} layout found; expected {expected}")


def list_files(folder: Path, pattern: str, expected: str) -> list[Path]:
    """The files in ``folder`` matching ``pattern``, sorted; a DataError if there are none."""
    files = sorted(path for path in folder.glob(pattern) if path.is_file())
    if not files:
        raise DataError(f"{folder}: no files matching {pattern}; expected {expected}")
    return files
