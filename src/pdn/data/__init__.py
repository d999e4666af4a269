"""Data: dataset readers for the field's layouts, joint transforms, and two embedded datasets.

``build_dataset(name, root=..., split=..., transforms=...)`` gives a dataset whose ``ds[i]`` is
``(image uint8 (3, H, W), mask int64 (H, W))`` in train ids (255 = ignore) before transforms.
Names: ``ade20k``, ``voc``, ``pascal_context59``, ``cityscapes``, ``folder``, ``nuclei`` (a real
microscopy image shipped with pdn) and ``context`` (the generated long-range-context benchmark).
"""

from . import context, datasets, paths, transforms  # noqa: F401  (registers the builders)
from .base import FileSegmentationDataset, SegmentationDataset
from .check import DatasetReport, check_dataset
from .context import CONTEXT_LOCAL_MIOU_CEILING, ContextDataset, local_miou_ceiling
from .io import IGNORE_INDEX, LabelMap, read_image, read_label_array
from .registry import build_dataset, dataset_options, list_datasets, register_dataset
from .transforms import eval_transforms, train_transforms

__all__ = [
    "CONTEXT_LOCAL_MIOU_CEILING",
    "IGNORE_INDEX",
    "ContextDataset",
    "DatasetReport",
    "FileSegmentationDataset",
    "LabelMap",
    "SegmentationDataset",
    "build_dataset",
    "check_dataset",
    "dataset_options",
    "eval_transforms",
    "list_datasets",
    "local_miou_ceiling",
    "read_image",
    "read_label_array",
    "register_dataset",
    "train_transforms",
]
