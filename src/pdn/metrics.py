"""Segmentation metrics from one streaming confusion matrix, the way the field reports them.

Every score comes from a single ``(K, K)`` matrix accumulated over the whole evaluation set (rows:
ground truth, columns: prediction), never from a mean of per-image scores. Pixels whose target is
``ignore_index`` are skipped.

- ``aAcc``: correctly labelled pixels / all labelled pixels.
- per-class accuracy: ``TP / (TP + FN)``; undefined for a class with no ground-truth pixels.
- per-class IoU: ``TP / (TP + FP + FN)``; undefined when the class has neither ground-truth nor
  predicted pixels. (A class that is predicted but never present has IoU 0.)
- ``mAcc`` / ``mIoU``: means over the classes where the score is defined. Undefined classes are
  left out of the mean and listed in ``undefined_classes``, never counted as 0 or NaN.
- ``fwIoU``: IoU weighted by each class's share of the ground-truth pixels.

All values are fractions in ``[0, 1]``; an undefined value is ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from .vocabulary import IGNORE_INDEX

__all__ = ["SegmentationMetric", "SegmentationResult", "compute_from_confusion"]


@dataclass
class SegmentationResult:
    """Scores computed from one confusion matrix (fractions in ``[0, 1]``, ``None`` = undefined).

    Attributes:
        confusion: int64 ``(K, K)`` numpy array, rows ground truth, columns prediction.
        class_names: the ``K`` class names.
        iou, accuracy: per-class lists of ``K`` floats or ``None``.
        aAcc, mAcc, mIoU, fwIoU: the summary scores (``None`` only without any labelled pixel).
        undefined_classes: names of the classes left out of ``mIoU`` (no ground truth, no prediction).
        absent_classes: names of the classes without ground-truth pixels (left out of ``mAcc``).
    """

    confusion: np.ndarray
    class_names: list[str]
    iou: list[float | None]
    accuracy: list[float | None]
    aAcc: float | None
    mAcc: float | None
    mIoU: float | None
    fwIoU: float | None
    undefined_classes: list[str] = field(default_factory=list)
    absent_classes: list[str] = field(default_factory=list)

    @property
    def num_pixels(self) -> int:
        """Labelled (not ignored) pixels the scores are computed from."""
        return int(self.confusion.sum())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: summary scores, per-class table, the undefined classes; no matrix."""
        return {
            "aAcc": self.aAcc,
            "mAcc": self.mAcc,
            "mIoU": self.mIoU,
            "fwIoU": self.fwIoU,
            "num_pixels": self.num_pixels,
            "per_class": {
                name: {"IoU": iou, "Acc": acc}
                for name, iou, acc in zip(self.class_names, self.iou, self.accuracy, strict=True)
            },
            "undefined_classes": list(self.undefined_classes),
            "absent_classes": list(self.absent_classes),
        }

    def table(self) -> str:
        """Per-class IoU and accuracy, then the summary scores, in percent; "n/a" = undefined."""
        width = max([len("class"), *(len(name) for name in self.class_names)])
        lines = [f"{'class':<{width}}  {'IoU %':>7}  {'Acc %':>7}", "-" * (width + 18)]
        for name, iou, acc in zip(self.class_names, self.iou, self.accuracy, strict=True):
            lines.append(f"{name:<{width}}  {_percent(iou):>7}  {_percent(acc):>7}")
        lines.append("-" * (width + 18))
        lines.append(
            "  ".join(
                f"{key} {_percent(getattr(self, key))}" for key in ("aAcc", "mAcc", "mIoU", "fwIoU")
            )
        )
        if self.undefined_classes:
            lines.append(
                "n/a IoU (no ground truth and no prediction), left out of mIoU: "
                + ", ".join(self.undefined_classes)
            )
        absent_only = [c for c in self.absent_classes if c not in self.undefined_classes]
        if absent_only:
            lines.append("n/a Acc (no ground truth), left out of mAcc: " + ", ".join(absent_only))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100.0 * value:.2f}"


def _mean(values: Sequence[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(sum(defined) / len(defined)) if defined else None


def compute_from_confusion(
    confusion: np.ndarray | torch.Tensor, class_names: Sequence[str] | None = None
) -> SegmentationResult:
    """Scores from a ``(K, K)`` confusion matrix (rows ground truth, columns prediction)."""
    matrix = np.asarray(
        confusion.detach().cpu().numpy() if isinstance(confusion, torch.Tensor) else confusion,
        dtype=np.int64,
    )
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"confusion matrix must be square (K, K), got shape {matrix.shape}")
    num_classes = matrix.shape[0]
    names = (
        [str(n) for n in class_names]
        if class_names is not None
        else [str(k) for k in range(num_classes)]
    )
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for a {num_classes}-class confusion matrix")
    true_pos = np.diag(matrix).astype(np.float64)
    gt = matrix.sum(axis=1).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    union = gt + predicted - true_pos
    total = float(gt.sum())

    iou: list[float | None] = [
        float(true_pos[k] / union[k]) if union[k] > 0 else None for k in range(num_classes)
    ]
    accuracy: list[float | None] = [
        float(true_pos[k] / gt[k]) if gt[k] > 0 else None for k in range(num_classes)
    ]
    fw_iou = None
    if total > 0:
        fw_iou = float(
            sum(
                gt[k] / total * iou[k]
                for k in range(num_classes)
                if gt[k] > 0 and iou[k] is not None
            )
        )
    return SegmentationResult(
        confusion=matrix,
        class_names=names,
        iou=iou,
        accuracy=accuracy,
        aAcc=float(true_pos.sum() / total) if total > 0 else None,
        mAcc=_mean(accuracy),
        mIoU=_mean(iou),
        fwIoU=fw_iou,
        undefined_classes=[names[k] for k in range(num_classes) if iou[k] is None],
        absent_classes=[names[k] for k in range(num_classes) if accuracy[k] is None],
    )


class SegmentationMetric:
    """A streaming confusion matrix over ``num_classes`` classes.

    ``update`` accumulates on the device of its inputs with ``torch.bincount``; ``compute`` turns
    the one matrix into a :class:`SegmentationResult`. Under ``torch.distributed``, call
    ``all_reduce()`` before ``compute()`` so that every rank sees the sum of all ranks' matrices.

    Example::

        metric = SegmentationMetric(num_classes=21)
        for images, masks in loader:
            metric.update(model(images), masks)   # logits (B, K, H, W) or labels (B, H, W)
        print(metric.compute().table())
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None = IGNORE_INDEX,
        class_names: Sequence[str] | None = None,
        device: str | torch.device | None = None,
    ):
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.class_names = list(class_names) if class_names is not None else None
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self.confusion.zero_()

    @torch.no_grad()
    def update(self, pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> None:
        """Add a batch.

        Args:
            pred: labels ``(B, H, W)`` or ``(H, W)``, or logits / probabilities ``(B, K, H, W)``
                or ``(K, H, W)`` (one more dimension than ``target``; argmax over ``K``).
            target: int labels ``(B, H, W)`` or ``(H, W)`` in ``[0, K)``, or ``ignore_index``.
        """
        pred = torch.as_tensor(pred)
        target = torch.as_tensor(target)
        if pred.dim() == target.dim() + 1:
            if pred.shape[-3] != self.num_classes:
                raise ValueError(
                    f"logits have {pred.shape[-3]} channels, expected {self.num_classes} classes"
                )
            pred = pred.argmax(dim=-3)
        if pred.shape != target.shape:
            raise ValueError(
                f"prediction shape {tuple(pred.shape)} does not match target shape {tuple(target.shape)}"
            )
        if self.confusion.device != pred.device:
            self.confusion = self.confusion.to(pred.device)
        target = target.to(pred.device, torch.int64).reshape(-1)
        pred = pred.to(torch.int64).reshape(-1)
        keep = (
            target != self.ignore_index
            if self.ignore_index is not None
            else torch.ones_like(target, dtype=torch.bool)
        )
        target, pred = target[keep], pred[keep]
        k = self.num_classes
        if target.numel() and (int(target.min()) < 0 or int(target.max()) >= k):
            bad = int(target.max()) if int(target.max()) >= k else int(target.min())
            raise ValueError(
                f"target label {bad} outside [0, {k}) and not the ignore index {self.ignore_index}"
            )
        if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= k):
            raise ValueError(f"predicted label outside [0, {k})")
        self.confusion += torch.bincount(target * k + pred, minlength=k * k).reshape(k, k)

    def all_reduce(self) -> None:
        """Sum the matrices of all ranks in place (no-op unless ``torch.distributed`` is initialised)."""
        if not (dist.is_available() and dist.is_initialized()):
            return
        if dist.get_backend() == "nccl" and self.confusion.device.type != "cuda":
            on_gpu = self.confusion.to(f"cuda:{torch.cuda.current_device()}")
            dist.all_reduce(on_gpu)
            self.confusion = on_gpu.to(self.confusion.device)
        else:
            dist.all_reduce(self.confusion)

    def compute(self) -> SegmentationResult:
        """Scores from the accumulated matrix (see :class:`SegmentationResult`)."""
        return compute_from_confusion(self.confusion, self.class_names)
