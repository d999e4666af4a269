"""A plain folder of images and masks with the same stems: PASCAL-Person-Part or any custom set."""

from __future__ import annotations

from pathlib import Path

from ...errors import ConfigError, DataError
from ..base import FileSegmentationDataset, JointTransform
from ..io import IGNORE_INDEX, IMAGE_SUFFIXES, LabelMap, locate_root, read_split_file
from ..palettes import voc_colormap
from ..registry import register_dataset

EXPECTED = (
    "ROOT/images/STEM.{jpg,png,...} and ROOT/masks/STEM.png, split by ROOT/SPLIT.txt (stems) or "
    "ROOT/images/SPLIT/ + ROOT/masks/SPLIT/ (or split 'all'), class names in ROOT/classes.txt"
)


def read_class_names(path: Path) -> list[str]:
    """One class name per non-empty line; line ``k`` names class ``k``."""
    if not path.is_file():
        raise DataError(f"{path}: class-names file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path}: class-names file is not UTF-8 text (byte {error.start}); save it as UTF-8"
        ) from None
    except OSError as error:
        raise DataError(f"{path}: cannot read the class-names file ({error.strerror})") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise DataError(f"{path}: class-names file is empty")
    if len(names) > IGNORE_INDEX:
        raise DataError(
            f"{path}: {len(names)} classes; at most {IGNORE_INDEX} fit beside the ignore label 255"
        )
    if len(set(names)) != len(names):
        raise DataError(f"{path}: class names repeat")
    return names


def _by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    files = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in suffixes:
            files.setdefault(path.stem, path)
    return files


@register_dataset("folder")
def build_folder(
    *,
    root: str | Path | None = None,
    split: str = "train",
    transforms: JointTransform | None = None,
    num_classes: int | None = None,
    class_names: str | Path | None = None,
) -> FileSegmentationDataset:
    """Images and masks in two folders, matched by stem.

    Layout: ``ROOT/images/{stem}.{jpg,jpeg,png,tif,tiff,bmp,webp}`` and ``ROOT/masks/{stem}.png``
    (or ``.tif``/``.tiff``): single-channel masks (palette or grayscale) whose values are the class
    ids ``0..num_classes-1``, with 255 as ignore. Splits:

    - ``ROOT/{split}.txt`` lists the stems of a split (one per line), if it exists; else
    - ``ROOT/images/{split}/`` and ``ROOT/masks/{split}/`` hold the split's files; else
    - ``split="all"`` takes every image directly in ``ROOT/images``.

    Classes: ``class_names`` is a text file with one name per line (relative paths are taken from
    ``ROOT``); without it, ``ROOT/classes.txt`` is used if present, else the classes are named
    ``class_0 ...`` and ``num_classes`` must be given. If both are given they must agree. The
    palette is the VOC colour map.
    """
    root = _existing_root(root)
    names = _class_names(root, num_classes, class_names)
    base = locate_root(root, "folder", ["."], ["images", "masks"], EXPECTED)
    return FileSegmentationDataset(
        _split_samples(base, split),
        root=base,
        split=split,
        classes=names,
        palette=voc_colormap(len(names)),
        label_map=LabelMap.identity(len(names)),
        transforms=transforms,
    )


def _existing_root(root: str | Path | None) -> Path:
    if root is None:
        raise DataError(f"dataset 'folder' needs root=...; expected {EXPECTED}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; the folder layout expects {EXPECTED}")
    return root


def _class_names(root: Path, num_classes: int | None, class_names: str | Path | None) -> list[str]:
    """The names from the class-names file (checked against ``num_classes`` when both are
    given), else ``class_0 ... class_{num_classes-1}``."""
    names_file = _class_names_file(root, class_names)
    if names_file is not None:
        names = read_class_names(names_file)
        if num_classes is not None and num_classes != len(names):
            raise ConfigError(
                f"folder: num_classes={num_classes} but {names_file} names {len(names)} classes"
            )
        return names
    if num_classes is None:
        raise ConfigError(
            "folder: give num_classes=K or a class-names file (class_names=... or ROOT/classes.txt)"
        )
    if (
        not isinstance(num_classes, int)
        or isinstance(num_classes, bool)
        or not 1 <= num_classes <= IGNORE_INDEX
    ):
        raise ConfigError(f"folder: num_classes must be an integer in 1..255, got {num_classes!r}")
    return [f"class_{k}" for k in range(num_classes)]


def _class_names_file(root: Path, class_names: str | Path | None) -> Path | None:
    """``class_names`` (relative to ``root`` unless absolute), else ``root/classes.txt`` if it
    exists, else None."""
    if class_names is not None:
        names_file = Path(class_names)
        return names_file if names_file.is_absolute() else root / names_file
    if (root / "classes.txt").is_file():
        return root / "classes.txt"
    return None


def _split_samples(base: Path, split: str) -> list[tuple[Path, Path]]:
    """The ``(image, mask)`` paths of ``split`` under ``base``; a listed stem without an image or
    mask gets the path it would have (reading that sample then reports the file not found)."""
    images_dir, masks_dir = base / "images", base / "masks"
    split_file = base / f"{split}.txt"
    if split_file.is_file():
        stems = read_split_file(split_file)
    elif (images_dir / split).is_dir():
        images_dir, masks_dir = images_dir / split, masks_dir / split
        stems = None
    elif split == "all":
        stems = None
    else:
        raise DataError(
            f"{base}: no split {split!r}; expected {split_file} or {images_dir / split}/ (or use split 'all')"
        )
    images = _by_stem(images_dir, IMAGE_SUFFIXES)
    masks = _by_stem(masks_dir, (".png", ".tif", ".tiff")) if masks_dir.is_dir() else {}
    if stems is None:
        stems = list(images)
        if not stems:
            raise DataError(f"{images_dir}: no images; expected {EXPECTED}")
    return [
        (images.get(stem, images_dir / f"{stem}.*"), masks.get(stem, masks_dir / f"{stem}.png"))
        for stem in stems
    ]
