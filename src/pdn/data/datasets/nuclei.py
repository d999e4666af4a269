"""``nuclei``: one real fluorescence-microscopy image with ground truth, shipped with pdn."""

from __future__ import annotations

from pathlib import Path

import torch

from ..base import JointTransform, Sample, SegmentationDataset
from ..io import check_same_size, locate_root, read_image, read_label_array
from ..palettes import voc_colormap
from ..registry import check_split, register_dataset

PACKAGED_ROOT = Path(__file__).resolve().parent.parent / "nuclei"
NUCLEI_CLASSES = ("background", "nucleus")
EXPECTED = "ROOT/image.tif (grayscale) and ROOT/mask.tif (instance ids, 0 = background)"


@register_dataset("nuclei")
class NucleiDataset(SegmentationDataset):
    """The 2018 Data Science Bowl image shipped in ``pdn/data/nuclei`` (see its SOURCE.md).

    One 512x512 16-bit fluorescence image (values 0..235) and its instance map (0 = background,
    one id per nucleus: 125 nuclei, ids up to 183), split by columns so that train and val never share a pixel:

    - ``train``: columns ``[0, 3W/4)`` (0-383), one sample ``(3, 512, 384)``;
    - ``val``: columns ``[3W/4, W)`` (384-511), one sample ``(3, 512, 128)``.

    The mask is ``instance id > 0``: class 0 background, 1 nucleus (about 20 % of the pixels).
    The image becomes 3-channel ``uint8`` by the rule of :mod:`pdn.data.io`: a linear rescale of
    the whole image (before the split) by its own maximum, ``round(v * 255 / 235)``, repeated over
    the channels; nothing is clipped.

    Each split is one honest sample: to train on it, give ``transforms`` that take random crops
    (e.g. ``train_transforms(normalization, crop_size=128)``) and draw as many samples per epoch as
    you want by indexing sample 0 repeatedly (e.g. a ``RandomSampler(ds, replacement=True,
    num_samples=N)``); evaluate on the ``val`` split whole.

    ``root`` defaults to the packaged copy; another folder with the same two files works too.
    """

    def __init__(
        self,
        *,
        root: str | Path | None = None,
        split: str = "train",
        transforms: JointTransform | None = None,
    ):
        super().__init__(transforms=transforms)
        self.split = check_split("nuclei", split, ("train", "val"))
        self.root = locate_root(
            PACKAGED_ROOT if root is None else root, "nuclei", ["."], [], EXPECTED
        )
        self.classes = NUCLEI_CLASSES
        self.palette = voc_colormap(len(NUCLEI_CLASSES))
        self._cache: Sample | None = None

    def __len__(self) -> int:
        return 1

    def load(self, index: int) -> Sample:
        if self._cache is None:
            image_path, mask_path = self.root / "image.tif", self.root / "mask.tif"
            image = read_image(image_path)
            instances = read_label_array(mask_path)
            check_same_size(image, instances.shape, image_path, mask_path)
            mask = torch.from_numpy(instances > 0).to(torch.int64)
            split_column = image.shape[-1] * 3 // 4
            columns = slice(0, split_column) if self.split == "train" else slice(split_column, None)
            self._cache = image[:, :, columns].contiguous(), mask[:, columns].contiguous()
        image, mask = self._cache
        return image.clone(), mask.clone()
