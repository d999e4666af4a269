"""Name -> builder registry for datasets (one flat dict, no nesting) and ``build_dataset``."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..registry import Registry, close_matches_hint
from .base import JointTransform, SegmentationDataset

# Builders (functions or classes) take keyword-only root, split, transforms and their own options.
DATASETS: Registry[Callable[..., SegmentationDataset]] = Registry("dataset")
register_dataset = DATASETS.register
_COMMON = ("root", "split", "transforms")


def list_datasets() -> list[str]:
    """The names ``build_dataset`` accepts, sorted."""
    return DATASETS.names()


def dataset_options(name: str) -> dict[str, Any]:
    """The options of dataset ``name`` beyond root/split/transforms, with their defaults."""
    parameters = inspect.signature(DATASETS.get(name)).parameters
    return {key: p.default for key, p in parameters.items() if key not in _COMMON}


def check_split(dataset: str, split: str, splits: tuple[str, ...]) -> str:
    """Refuse a split the dataset does not have (ConfigError with close matches)."""
    if split not in splits:
        raise ConfigError(
            f"dataset {dataset!r} has no split {split!r}{close_matches_hint(split, list(splits))} (splits: {', '.join(splits)})"
        )
    return split


def check_int_options(dataset: str, checks: Sequence[tuple[str, Any, int, int | None]]) -> None:
    """Refuse any ``(key, value, low, high)`` whose value is not an integer in ``low..high``
    (``high`` None: no upper bound; a ``num_samples`` of None is the dataset's default)."""
    for key, value, low, high in checks:
        if value is None and key == "num_samples":
            continue
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or value < low
            or (high is not None and value > high)
        ):
            limit = f"in {low}..{high}" if high is not None else f">= {low}"
            raise ConfigError(f"{dataset} option {key} must be an integer {limit}, got {value!r}")


def build_dataset(
    name: str,
    *,
    root: str | Path | None = None,
    split: str = "train",
    transforms: JointTransform | None = None,
    **options: Any,
) -> SegmentationDataset:
    """Build the dataset called ``name``.

    Args:
        name: one of :func:`list_datasets`: ``ade20k``, ``voc``, ``pascal_context59``,
            ``cityscapes``, ``folder`` (read from ``root``), ``nuclei`` (packaged real image;
            ``root`` optional), ``fashion_scenes`` (composed from the Fashion-MNIST files in
            ``root``), ``context`` and ``paths`` (generated; no ``root``).
        root: the folder that holds the dataset (see each dataset's docstring for the layout).
        split: ``"train"``, ``"val"`` or another split the dataset has.
        transforms: a joint transform ``(image, mask, generator=None) -> (image, mask)`` applied
            to every sample (see :mod:`pdn.data.transforms`); ``None`` gives raw samples.
        **options: dataset-specific options (``aug`` for ``voc``; ``num_classes`` and
            ``class_names`` for ``folder``; ``size``, ``num_samples``, ``seed`` for ``context``).

    Returns:
        A :class:`~pdn.data.base.SegmentationDataset`: ``ds[i] -> (uint8 (3, H, W), int64 (H, W))``
        before transforms, with ``classes``, ``palette``, ``num_classes``, ``ignore_index = 255``.

    Raises:
        ConfigError: unknown dataset, split or option (with close matches).
        DataError: the dataset's files are missing or inconsistent (names the file and the layout).
    """
    builder = DATASETS.get(name)
    known = dataset_options(name)
    for key in options:
        if key not in known:
            listed = ", ".join(known) or "none"
            raise ConfigError(
                f"dataset {name!r} has no option {key!r}{close_matches_hint(key, list(known))} (options: {listed})"
            )
    return builder(root=root, split=split, transforms=transforms, **options)
