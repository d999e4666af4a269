"""``pdn.Segmenter``: a trained model plus everything needed to label an image (the Python API).

Example::

    seg = pdn.Segmenter.from_checkpoint("runs/demo/best.pt")
    labels = seg.predict("photo.jpg")          # int64 (H, W), class indices into seg.classes
    labels = seg.predict(pil_image, flip=True) # inference options can be overridden per call
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..data.io import image_to_tensor, read_image
from ..errors import DataError
from ..models.backbones import Normalization
from .checkpoint import load_checkpoint, model_from_checkpoint
from .inference import InferenceOptions, infer

__all__ = ["ImageInput", "Segmenter", "default_device", "to_image_tensor"]

ImageInput = Union[str, Path, Image.Image, np.ndarray, torch.Tensor]  # noqa: UP007


def default_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a ``torch.device``; ``None`` means CUDA when available, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def to_image_tensor(image: ImageInput) -> torch.Tensor:
    """Any supported image -> ``uint8`` tensor ``(3, H, W)``.

    Accepts a file path (``str`` / ``Path``; read by :func:`pdn.data.io.read_image`), a PIL image
    (any mode; gray is repeated over RGB, alpha dropped), a ``uint8`` numpy array ``(H, W, 3)`` RGB
    or ``(H, W)`` gray, or a ``uint8`` tensor ``(3, H, W)``. Anything else is a one-line DataError.
    """
    if isinstance(image, str | Path):
        return read_image(image)
    if isinstance(image, Image.Image):
        return image_to_tensor(image)
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] != 3:
            raise DataError(
                f"image tensor must be uint8 (3, H, W), got {image.dtype} {list(image.shape)}"
            )
        return image
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise DataError(f"image array must be uint8, got {image.dtype}")
        if image.ndim == 2:
            image = np.broadcast_to(image[..., None], (*image.shape, 3))
        if image.ndim != 3 or image.shape[2] != 3:
            raise DataError(
                f"image array must be (H, W, 3) RGB or (H, W) gray, got shape {image.shape}"
            )
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    raise DataError(
        f"cannot read an image from a {type(image).__name__}; "
        "give a path, a PIL image or a uint8 array"
    )


class Segmenter:
    """Images in, label maps out: a trained network with its class names, palette, input
    normalisation and inference settings (the Python API for inference).

    Not an ``nn.Module``: it wraps one (``.model``, a :class:`pdn.models.SegmentationModel`) and
    does what lies around it: reading and normalising images, whole-image or sliding-window
    inference at several scales and flipped, batching, and naming and colouring the classes.
    Build it from a checkpoint (:meth:`from_checkpoint`) or from a model and its metadata.

    Attributes:
        model: the network in eval mode on ``device``, ``(B, 3, H, W) -> logits (B, K, H, W)``.
        classes: the ``K`` class names; ``palette``: their ``K`` RGB colours.
        normalization: the input normalisation the model expects (applied by :meth:`predict`).
        device: where the model runs.
        options: the default :class:`~pdn.engine.inference.InferenceOptions` (from the run config's
            ``eval`` section when built from a checkpoint).
        batch_size: images per forward pass in :meth:`predict_batch` (8 on a GPU, 1 on the CPU).
        trained_on: the dataset name of the run that wrote the checkpoint (None when unknown).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        classes: Sequence[str],
        palette: Sequence[Sequence[int]],
        normalization: Normalization | None = None,
        options: InferenceOptions | None = None,
        device: str | torch.device | None = None,
        batch_size: int | None = None,
        trained_on: str | None = None,
    ):
        self.device = default_device(device)
        self.model = model.to(self.device).eval()
        self.classes = [str(c) for c in classes]
        self.palette = [tuple(int(v) for v in colour) for colour in palette]
        self.normalization: Normalization = normalization or model.normalization  # type: ignore[assignment]
        self.options = options or InferenceOptions()
        self.batch_size = batch_size or (8 if self.device.type == "cuda" else 1)
        self.trained_on = trained_on
        if len(self.palette) != len(self.classes):
            raise ValueError(f"{len(self.palette)} palette colours for {len(self.classes)} classes")

    @classmethod
    def from_checkpoint(
        cls, path: str | Path | Mapping[str, Any], device: str | torch.device | None = None
    ) -> Segmenter:
        """Load a checkpoint written by ``pdn train`` (``weights_only=True``).

        Args:
            path: the checkpoint file (or an already loaded payload).
            device: ``None`` for CUDA when available, else the CPU.

        Raises:
            CheckpointError: one line, when the file is missing, corrupt or not a pdn checkpoint.
        """
        ckpt = path if isinstance(path, Mapping) else load_checkpoint(path)
        model = model_from_checkpoint(ckpt)
        data = (ckpt.get("config") or {}).get("data") or {}
        return cls(
            model,
            classes=ckpt["classes"],
            palette=ckpt["palette"],
            normalization=Normalization.from_dict(ckpt["normalization"]),
            options=InferenceOptions.from_config(ckpt.get("config")),
            device=device,
            trained_on=str(data["name"]) if data.get("name") else None,
        )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def _options(self, overrides: Mapping[str, Any]) -> InferenceOptions:
        known = {
            "mode",
            "crop_size",
            "stride",
            "scales",
            "flip",
            "short_side",
            "channels_last",
            "amp",
        }
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown inference options: {', '.join(sorted(unknown))}")
        return self.options.override(**overrides)

    def prepare(self, image: ImageInput) -> torch.Tensor:
        """One image -> normalised float ``(3, H, W)`` on :attr:`device`."""
        pixels = to_image_tensor(image).to(self.device)
        return self.normalization(pixels.float() / 255.0)

    def predict_proba(self, image: ImageInput, **options: Any) -> torch.Tensor:
        """Class probabilities for one image: float32 ``(K, H, W)`` on :attr:`device`.

        ``options``: ``mode``, ``crop_size``, ``stride``, ``scales``, ``flip``, ``short_side``
        (see :class:`~pdn.engine.inference.InferenceOptions`), overriding :attr:`options`.
        """
        return infer(self.model, self.prepare(image)[None], self._options(options))[0]

    def predict(self, image: ImageInput, **options: Any) -> np.ndarray:
        """Label one image.

        Args:
            image: a path, a PIL image, a ``uint8`` array ``(H, W, 3)`` / ``(H, W)`` or a ``uint8``
                tensor ``(3, H, W)`` (see :func:`to_image_tensor`).
            options: inference overrides (``mode``, ``crop_size``, ``stride``, ``scales``, ``flip``).

        Returns:
            int64 array ``(H, W)`` at the image's size: indices into :attr:`classes`.
        """
        return self.predict_proba(image, **options).argmax(0).cpu().numpy().astype(np.int64)

    def predict_batch(self, images: Sequence[ImageInput], **options: Any) -> list[np.ndarray]:
        """Label several images; equal-size images share forward passes of :attr:`batch_size`.

        Returns one int64 ``(H, W)`` array per image, in order.
        """
        settings = self._options(options)
        prepared = [self.prepare(image) for image in images]
        by_size: dict[tuple[int, int], list[int]] = {}
        for index, tensor in enumerate(prepared):
            by_size.setdefault(tuple(tensor.shape[-2:]), []).append(index)
        results: list[np.ndarray | None] = [None] * len(prepared)
        for indices in by_size.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                probs = infer(self.model, torch.stack([prepared[i] for i in chunk]), settings)
                labels = probs.argmax(1).cpu().numpy().astype(np.int64)
                for i, label in zip(chunk, labels, strict=True):
                    results[i] = label
        return results  # type: ignore[return-value]

    def __repr__(self) -> str:
        arch = getattr(self.model, "model_config", {}).get("arch", type(self.model).__name__)
        return (
            f"Segmenter({arch}, {self.num_classes} classes, device={self.device}, "
            f"{self.options.describe()})"
        )
