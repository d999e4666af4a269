"""pdn: semantic image segmentation with Progressively Diffused Networks (arXiv 1702.05839)."""

__version__ = "0.1.0"

from .errors import CheckpointError, ConfigError, DataError, PdnError  # noqa: E402
from .models.backbones import build_backbone  # noqa: E402

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "PdnError",
    "__version__",
    "build_backbone",
]
