"""What every pdn dataset shares: the sample interface, class metadata, and file-pair reading."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch
from torch.utils.data import Dataset

from .io import IGNORE_INDEX, LabelMap, check_same_size, read_image, read_label_array
from .palettes import Color

Sample = tuple[torch.Tensor, torch.Tensor]


class JointTransform(Protocol):
    """``(image (3, H, W), mask (H, W), generator=None) -> (image, mask)``; see :mod:`pdn.data.transforms`."""

    def __call__(
        self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> Sample: ...


class SegmentationDataset(Dataset):
    """A semantic-segmentation dataset: ``ds[i] -> (image, mask)``.

    Without transforms, ``image`` is ``uint8 (3, H, W)`` at the file's size and ``mask`` is
    ``int64 (H, W)`` holding train ids ``0..num_classes-1`` or ``ignore_index`` (255). With a joint
    transform ``T`` (see :mod:`pdn.data.transforms`), ``ds[i]`` is ``T(image, mask)`` drawing from
    the global torch RNG, and ``ds.sample(i, generator)`` draws from ``generator`` instead, so that a
    training loop can make every sample reproducible.

    Subclasses set ``classes``, ``palette`` and ``split``, and implement ``__len__`` and ``load``.
    """

    classes: tuple[str, ...]
    palette: list[Color]
    split: str
    ignore_index: int = IGNORE_INDEX

    def __init__(self, *, transforms: JointTransform | None = None):
        self.transforms = transforms

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def load(self, index: int) -> Sample:
        """The untransformed sample ``index``: ``uint8 (3, H, W)``, ``int64 (H, W)``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def sample(self, index: int, generator: torch.Generator | None = None) -> Sample:
        """Sample ``index`` with the dataset's transforms applied, randomness from ``generator``."""
        image, mask = self.load(index)
        if self.transforms is not None:
            image, mask = self.transforms(image, mask, generator)
        return image, mask

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} samples")
        return self.sample(index % len(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(split={self.split!r}, samples={len(self)}, classes={self.num_classes})"


class FileSegmentationDataset(SegmentationDataset):
    """A dataset of ``(image file, mask file)`` pairs whose raw mask values go through a LabelMap.

    Each ``load`` reads both files, refuses a size mismatch and labels that are not labels of the
    dataset (a DataError naming the file), and returns the train-id mask.
    """

    def __init__(
        self,
        samples: Sequence[tuple[Path, Path]],
        *,
        root: Path,
        split: str,
        classes: Sequence[str],
        palette: Sequence[Color],
        label_map: LabelMap,
        transforms: JointTransform | None = None,
    ):
        super().__init__(transforms=transforms)
        if len(palette) != len(classes) or label_map.num_classes != len(classes):
            raise ValueError("classes, palette and label map disagree on the number of classes")
        self.samples = list(samples)
        self.root = root
        self.split = split
        self.classes = tuple(classes)
        self.palette = list(palette)
        self.label_map = label_map

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> Sample:
        image_path, mask_path = self.samples[index]
        image = read_image(image_path)
        raw = read_label_array(mask_path)
        check_same_size(image, raw.shape, image_path, mask_path)
        return image, self.label_map_for(mask_path)(raw, mask_path)

    def label_map_for(self, mask_path: Path) -> LabelMap:
        """The LabelMap for one mask file (the same for all, unless a dataset mixes formats)."""
        return self.label_map

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, root={str(self.root)!r})"
