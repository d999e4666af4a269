"""The dataset readers, one module per layout; importing this package registers them."""

from . import ade20k, cityscapes, fashion_scenes, folder, nuclei, pascal_context, voc  # noqa: F401
