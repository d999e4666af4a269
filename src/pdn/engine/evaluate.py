"""Evaluate a checkpoint on its validation set (``pdn eval``): one confusion matrix, the field's
scores, and the report files. Training's periodic and final evaluations run the same loop,
:func:`evaluate_dataset`.

The validation set is rebuilt from the run config stored in the checkpoint (``data.name``,
``data.root``, ``data.val_split``, ``data.options``), after dotted ``KEY=VALUE`` overrides such as
``data.root=/datasets/ade``. Every image is labelled at its own size with the inference settings
(whole / sliding window, scales, flip; see :mod:`pdn.engine.inference`) and compared with its
untouched mask, so scores are those of the original resolution.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from ..errors import CheckpointError, ConfigError
from ..metrics import SegmentationMetric, SegmentationResult
from ..models.backbones import Normalization
from ..vocabulary import IGNORE_INDEX
from . import distributed
from .checkpoint import load_checkpoint, model_from_checkpoint
from .inference import InferenceOptions, infer, prepare_model
from .loaders import ignore_signals_in_worker, loader_iteration
from .segmenter import default_device
from .visualize import confusion_image

__all__ = [
    "EvalOutcome",
    "evaluate_checkpoint",
    "evaluate_dataset",
    "resolve_config",
    "write_report",
]


def _first(batch: list[Any]) -> Any:
    return batch[0]


def evaluate_dataset(
    model: nn.Module,
    dataset: Dataset,
    *,
    num_classes: int,
    options: InferenceOptions | None = None,
    normalization: Normalization | None = None,
    class_names: Sequence[str] | None = None,
    ignore_index: int = IGNORE_INDEX,
    device: str | torch.device | None = None,
    context: distributed.Context | None = None,
    num_workers: int = 0,
    progress: bool = True,
) -> SegmentationResult:
    """Scores of ``model`` over ``dataset``, from one confusion matrix (``pdn eval``, training).

    Each image is labelled by :func:`~pdn.engine.inference.infer` (resized by ``short_side`` and
    the scales, the probabilities resized back) and compared with its untouched mask.

    Args:
        model: ``(B, 3, H, W) -> logits (B, K, H, W)``; moved to the device, run in eval mode,
            then put back in the mode it came in.
        dataset: raw samples ``(uint8 (3, H, W), int64 (H, W))`` (no transforms).
        num_classes, class_names: ``K`` and the names for the report (default ``"0" .. "K-1"``).
        options: inference settings (default: whole image, one scale, no flip).
        normalization: input normalisation (default ``model.normalization``).
        ignore_index: mask value left out of the scores.
        device: ``None`` for CUDA when available, else the CPU (unused with ``context``).
        context: under DDP, this rank scores every ``world_size``-th image on ``context.device``
            and the confusion matrices are summed over the ranks (default: one process).
        num_workers: DataLoader worker processes reading the files.
        progress: show a tqdm bar on stderr.
    """
    context = context or distributed.Context(0, 1, 0, default_device(device))
    options = options or InferenceOptions()
    normalization = normalization or model.normalization  # type: ignore[assignment]
    was_training = model.training
    model = model.to(context.device).eval()
    metric = SegmentationMetric(
        num_classes, ignore_index=ignore_index, class_names=class_names, device=context.device
    )
    shard = Subset(dataset, range(context.rank, len(dataset), context.world_size))
    with loader_iteration(_sample_loader(shard, num_workers)) as samples:
        for image, mask in tqdm(
            samples,
            total=len(shard),
            desc="eval",
            unit="img",
            file=sys.stderr,
            disable=not progress,
        ):
            x = normalization(image.to(context.device).float() / 255.0)[None]
            labels = infer(model, x, options).argmax(1)[0]
            metric.update(labels, mask.to(context.device))
    if context.distributed:
        metric.all_reduce()
    model.train(was_training)
    return metric.compute()


def _sample_loader(dataset: Dataset, num_workers: int) -> DataLoader:
    """One raw sample at a time, in order; the global RNG stays untouched (a resumed training run
    draws what an uninterrupted one draws) and the workers leave signals to the main process."""
    return DataLoader(
        dataset,
        batch_size=1,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_first,
        generator=torch.Generator(),
        worker_init_fn=ignore_signals_in_worker,
    )


def resolve_config(
    stored: Mapping[str, Any] | None, overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """The checkpoint's run config with dotted ``KEY=VALUE`` overrides, checked against the schema.

    The overrides follow the one rule of :func:`~pdn.engine.config.apply_overrides`, as in
    ``pdn train``: ``data.options={...}`` replaces the options, ``data.options.size=96`` sets one.
    Returns plain containers. Raises ConfigError for an unknown key (with close matches), a bad
    value, or a checkpoint without a run config when no ``data.name`` override is given.
    """
    from .config import apply_overrides, from_plain, to_plain

    if stored is None and not any(item.startswith("data.name=") for item in overrides):
        raise ConfigError(
            "the checkpoint holds no run config; say which data to use: data.name=... data.root=..."
        )
    return to_plain(apply_overrides(from_plain(dict(stored or {})), overrides))


@dataclass
class EvalOutcome:
    """What :func:`evaluate_checkpoint` computed and wrote."""

    result: SegmentationResult
    files: dict[str, Path]
    options: InferenceOptions
    dataset: str  # e.g. "folder (split val, 12 images) at /data/person_part"


def write_report(
    result: SegmentationResult, out_dir: str | Path, extra: Mapping[str, Any] | None = None
) -> dict[str, Path]:
    """Write ``metrics.json`` (scores as fractions in [0, 1], plus ``extra``), ``confusion.npy``
    (int64 ``(K, K)``, rows ground truth) and ``confusion.png`` (row-normalised heat map)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "metrics": out_dir / "metrics.json",
        "confusion": out_dir / "confusion.npy",
        "confusion_png": out_dir / "confusion.png",
    }
    payload = {**result.to_dict(), **dict(extra or {})}
    files["metrics"].write_text(json.dumps(payload, indent=2) + "\n")
    np.save(files["confusion"], result.confusion.astype(np.int64))
    confusion_image(result.confusion, result.class_names).save(files["confusion_png"])
    return files


def evaluate_checkpoint(
    checkpoint: str | Path,
    *,
    out_dir: str | Path | None = None,
    overrides: Sequence[str] = (),
    inference: Mapping[str, Any] | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    compile_mode: str | None = None,
) -> EvalOutcome:
    """Evaluate a checkpoint on the validation split of its run config and write the report.

    Args:
        checkpoint: the ``.pt`` file.
        out_dir: report folder (default: ``eval/`` next to the checkpoint).
        overrides: dotted ``KEY=VALUE`` config overrides (``data.root=...``, ``eval.mode=slide``).
        inference: :class:`InferenceOptions` fields overriding the config (``mode``,
            ``crop_size``, ``stride``, ``scales``, ``flip``).
        device: ``None`` for CUDA when available, else the CPU.
        progress: show a tqdm bar on stderr.
        compile_mode: ``torch.compile`` the model with this mode (:func:`prepare_model`).
    """
    checkpoint = Path(checkpoint)
    ckpt = load_checkpoint(checkpoint)
    config = resolve_config(ckpt.get("config"), overrides)
    options = InferenceOptions.from_config(config).override(**dict(inference or {}))
    data = config["data"]
    classes = list(ckpt["classes"])
    dataset = _validation_set(data, classes)
    model = prepare_model(
        model_from_checkpoint(ckpt), channels_last=options.channels_last, compile_mode=compile_mode
    )
    result = evaluate_dataset(
        model,
        dataset,
        num_classes=len(classes),
        options=options,
        normalization=Normalization.from_dict(ckpt["normalization"]),
        class_names=classes,
        ignore_index=getattr(dataset, "ignore_index", IGNORE_INDEX),
        device=device,
        num_workers=int(data.get("num_workers") or 0),
        progress=progress,
    )
    extra = _report_header(checkpoint, ckpt.get("iteration"), data, len(dataset), options)
    files = write_report(result, out_dir or checkpoint.parent / "eval", extra)
    return EvalOutcome(result, files, options, _describe_dataset(data, len(dataset)))


def _validation_set(data: Mapping[str, Any], classes: Sequence[str]) -> Dataset:
    """The ``data.val_split`` of the config's dataset; refused when its class count is not the
    checkpoint's."""
    from ..data import build_dataset

    dataset = build_dataset(
        data["name"], root=data.get("root"), split=data["val_split"], **(data.get("options") or {})
    )
    if len(dataset.classes) != len(classes):
        raise CheckpointError(
            f"the checkpoint predicts {len(classes)} classes, dataset {data['name']!r} has "
            f"{len(dataset.classes)}"
        )
    return dataset


def _describe_dataset(data: Mapping[str, Any], images: int) -> str:
    """``folder (split val, 12 images) at /data/person_part``."""
    where = f" at {data['root']}" if data.get("root") else ""
    return f"{data['name']} (split {data['val_split']}, {images} images){where}"


def _report_header(
    checkpoint: Path,
    iteration: int | None,
    data: Mapping[str, Any],
    images: int,
    options: InferenceOptions,
) -> dict[str, Any]:
    """What ``metrics.json`` says beside the scores: the checkpoint, the data, the inference."""
    return {
        "checkpoint": str(checkpoint),
        "iteration": iteration,
        "dataset": {
            "name": data["name"],
            "root": data.get("root"),
            "split": data["val_split"],
            "images": images,
        },
        "inference": {key: _jsonable(value) for key, value in asdict(options).items()},
    }


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
