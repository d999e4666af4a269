"""pdn: semantic image segmentation with Progressively Diffused Networks (arXiv 1702.05839)."""

from . import metrics  # noqa: E402
from .data import build_dataset, list_datasets  # noqa: E402
from .engine.segmenter import Segmenter  # noqa: E402
from .errors import CheckpointError, ConfigError, DataError, PdnError  # noqa: E402
from .metrics import SegmentationMetric  # noqa: E402
from .models import (  # noqa: E402
    DiffusionLayer,
    DiffusionOptions,
    DiffusionStack,
    build_backbone,
    build_model,
)
from .version import __version__

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "PdnError",
    "SegmentationMetric",
    "Segmenter",
    "DiffusionLayer",
    "DiffusionOptions",
    "DiffusionStack",
    "__version__",
    "build_backbone",
    "build_dataset",
    "build_model",
    "list_datasets",
    "metrics",
]
