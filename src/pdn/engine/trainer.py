"""The training loop: the standard recipe, iteration-based, resumable, single process or DDP.

Recipe: SGD (momentum 0.9, weight decay 1e-4) over two parameter groups, the backbone at ``lr`` and
every newly added layer at ``lr * head_lr_mult``; poly decay ``(1 - t / T) ** 0.9`` per iteration;
cross-entropy with ignore index 255 on the main logits plus ``aux_weight`` (0.4) times the same
loss on the auxiliary head's logits. ``train.optimizer=adamw`` swaps SGD for AdamW (same groups and
schedule) for networks trained from scratch, such as the CPU demo, where SGD's recipe, made for
ImageNet-pretrained backbones, learns far too slowly.

The loss is normalised by the number of labelled pixels of the *global* batch (summed over ranks),
so that DDP's gradient averaging gives exactly the gradient one process would compute on the whole
global batch (plain per-rank means would weigh ranks with many ignored pixels too much).

Run directory (written by rank 0)::

    config.yaml    the resolved config
    last.pt        the latest checkpoint, with optimizer / scheduler / scaler / RNG states
    best.pt        the checkpoint with the best validation mIoU so far (no resume states)
    iter_N.pt      with train.keep_checkpoints, the weights at each periodic checkpoint
    log.jsonl      scalar log: {"iter", "kind": "train" | "val" | "reach", ...}; "reach" records
                   (context benchmark only) hold cue_share, see engine/explain.py
    metrics.json   the final evaluation (SegmentationResult.to_dict() plus "iteration")
"""

from __future__ import annotations

import json
import math
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..errors import CheckpointError, ConfigError, DataError, PdnError
from ..metrics import SegmentationResult
from ..vocabulary import IGNORE_INDEX, MIN_INPUT_SIZE
from . import distributed, seeding
from .checkpoint import (
    check_compatible,
    load_checkpoint,
    make_checkpoint,
    save_checkpoint,
)
from .config import (
    DEFAULT_CONFIG,
    RUN_NEUTRAL_KEYS,
    apply_overrides,
    config_differences,
    from_plain,
    load_config,
    model_kwargs,
    save_config,
    to_plain,
)
from .evaluate import evaluate_dataset
from .explain import CueProbe
from .inference import InferenceOptions, autocast_for
from .loaders import ignore_signals_in_worker, loader_iteration
from .reporting import Progress, ScalarLog


class TrainingDiverged(PdnError):
    """The loss (or the weights) became NaN or infinite; the run stopped without saving them."""


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    run_dir: Path
    iteration: int  # optimizer steps done
    metrics: SegmentationResult | None  # final evaluation (None when stopped early or no val split)
    stopped_by: str | None = None  # "SIGINT" / "SIGTERM" when a signal ended the run early


class TrainSamples(Dataset):
    """Training samples addressed by ``(epoch, index)``: sample ``index``, augmented with the
    generator seeded from ``(seed, epoch, index)`` (see :mod:`pdn.engine.seeding`)."""

    def __init__(self, dataset: Any, transform: Any, seed: int):
        self.dataset, self.transform, self.seed = dataset, transform, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = key
        image, mask = self.dataset[index]
        return self.transform(
            image, mask, generator=seeding.sample_generator(self.seed, epoch, index)
        )


class _TrainForward(nn.Module):
    """Makes ``forward_train`` the ``forward`` that DDP wraps (DDP only synchronises ``forward``)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.model.forward_train(x)


def training_loss(
    logits: torch.Tensor,
    aux_logits: torch.Tensor | None,
    target: torch.Tensor,
    aux_weight: float,
    class_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Summed cross-entropy (ignore index 255) of the main and auxiliary logits.

    Args:
        logits, aux_logits: ``(B, K, H, W)`` (``aux_logits`` may be None).
        target: int64 ``(B, H, W)``.
        class_weights: ``(K,)`` float32, each pixel's term weighted by its class's entry, or None.

    Returns:
        ``(total, main, aux)``: sums over labelled pixels (``total = main + aux_weight * aux``);
        the caller divides by :func:`labelled_weight`.
    """
    terms = {"weight": class_weights, "ignore_index": IGNORE_INDEX, "reduction": "sum"}
    main = F.cross_entropy(logits.float(), target, **terms)
    if aux_logits is None:
        return main, main, None
    aux = F.cross_entropy(aux_logits.float(), target, **terms)
    return main + aux_weight * aux, main, aux


def labelled_weight(target: torch.Tensor, class_weights: torch.Tensor | None = None) -> float:
    """What :func:`training_loss`'s sums are divided by to make a mean: the number of labelled
    pixels of ``target`` ``(B, H, W)``, or the sum of their classes' weights."""
    labelled = target[target != IGNORE_INDEX]
    if class_weights is None:
        return float(labelled.numel())
    return float(class_weights[labelled].sum())


def class_weight_tensor(
    weights: Sequence[float] | None, classes: Sequence[str], device: torch.device
) -> torch.Tensor | None:
    """``train.class_weights`` as a ``(K,)`` float32 tensor on ``device``; raises ConfigError
    when it does not give one weight per class of the dataset."""
    if weights is None:
        return None
    if len(weights) != len(classes):
        raise ConfigError(
            f"train.class_weights has {len(weights)} entries, the dataset has {len(classes)} "
            f"classes ({', '.join(classes)})"
        )
    return torch.tensor([float(w) for w in weights], dtype=torch.float32, device=device)


def param_groups(model: nn.Module, lr: float, head_lr_mult: float) -> list[dict[str, Any]]:
    """Backbone parameters at ``lr``; every other parameter (new layers) at ``lr * head_lr_mult``."""
    backbone = [p for p in model.backbone.parameters() if p.requires_grad]
    in_backbone = {id(p) for p in backbone}
    head = [p for p in model.parameters() if p.requires_grad and id(p) not in in_backbone]
    return [
        {"params": backbone, "lr": lr, "name": "backbone"},
        {"params": head, "lr": lr * head_lr_mult, "name": "head"},
    ]


def build_optimizer(model: nn.Module, tcfg: DictConfig) -> torch.optim.Optimizer:
    """SGD with momentum (the recipe) or AdamW, over :func:`param_groups`."""
    groups = param_groups(model, tcfg.lr, tcfg.head_lr_mult)
    if tcfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    return torch.optim.SGD(
        groups, lr=tcfg.lr, momentum=tcfg.momentum, weight_decay=tcfg.weight_decay
    )


def poly_schedule(total: int, power: float) -> Callable[[int], float]:
    """``t -> (1 - t / total) ** power`` (the factor ``LambdaLR`` applies to each group's lr)."""

    def factor(step: int) -> float:
        return (1.0 - min(step, total) / total) ** power

    return factor


def group_schedules(tcfg: DictConfig) -> list[Callable[[int], float]]:
    """The lr factor of each :func:`param_groups` group (backbone, head): poly decay, and 0 for
    the backbone during its first ``train.backbone_frozen_iters`` steps."""
    poly = poly_schedule(tcfg.iters, tcfg.poly_power)
    frozen = int(tcfg.backbone_frozen_iters)

    def backbone(step: int) -> float:
        return 0.0 if step < frozen else poly(step)

    return [backbone, poly]


def training_precision(tcfg: DictConfig, device: torch.device) -> str:
    """``train.precision``, or when it is unset fp16 where ``train.amp`` and CUDA, else fp32."""
    if tcfg.precision is None:
        return "fp16" if tcfg.amp and device.type == "cuda" else "fp32"
    if tcfg.precision == "fp16" and device.type != "cuda":
        raise ConfigError(
            f"train.precision=fp16 needs a CUDA device, got {device}; use bf16 on the CPU"
        )
    return str(tcfg.precision)


class _StopRequest:
    """Turns SIGINT / SIGTERM into a flag that the loop checks after each step (a second SIGINT
    interrupts at once). Installed only in the main thread."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> _StopRequest:
        import threading

        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _all_finite(model: nn.Module) -> bool:
    return all(
        bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point()
    )


def _set_train_mode(model: nn.Module, freeze_bn: bool) -> None:
    model.train()
    if freeze_bn:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def _palette(dataset: Any) -> list[list[int]]:
    return [[int(c) for c in colour] for colour in dataset.palette]


def _metrics_record(result: SegmentationResult, iteration: int) -> dict[str, Any]:
    return {**result.to_dict(), "iteration": int(iteration)}


def train(
    cfg: DictConfig,
    run_dir: str | Path,
    *,
    resume: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``cfg`` into ``run_dir`` (from scratch, or from the ``resume`` checkpoint payload).

    Joins the ``torchrun`` process group when there is one. Rank 0 writes the run directory.

    Raises:
        TrainingDiverged: the loss became NaN / inf (names the iteration; nothing is saved).
        ConfigError, DataError, CheckpointError: bad config, data or checkpoint (one line).
    """
    context = distributed.setup(cfg.train.device)
    try:
        result = _Run(cfg, Path(run_dir), context, resume).run()
        # A rank that tears gloo down while another still writes its files can abort at exit.
        distributed.barrier(context)
        return result
    finally:
        distributed.teardown()


class _Run:
    """One training run's state; :meth:`run` executes it."""

    def __init__(
        self, cfg: DictConfig, run_dir: Path, context: distributed.Context, resume: dict | None
    ):
        self.cfg, self.run_dir, self.context = cfg, run_dir, context
        self.train_set, self.val_set = self._datasets()
        torch.manual_seed(cfg.train.seed)  # the same initial weights on every rank (and every run)
        self.model = self._initial_model(resume)
        seeding.seed_process(cfg.train.seed, context.rank)
        self.train_transform = self._train_transform()
        self.precision = training_precision(cfg.train, context.device)
        self.class_weights = class_weight_tensor(
            cfg.train.class_weights, self.train_set.classes, context.device
        )
        self.use_amp = self.precision == "fp16"  # float16 needs the gradient scaler
        # the periodic and final evaluation: whole image at one scale, scored at the mask's size
        self.eval_options = InferenceOptions(
            short_side=cfg.data.eval_resize, precision=self.precision
        )
        self.cue_probe = self._cue_probe()
        if context.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.forward = distributed.prepare_model(_TrainForward(self.model), context)
        self.optimizer = build_optimizer(self.model, cfg.train)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, group_schedules(cfg.train)
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.start = 0
        self.best_miou = -math.inf
        self.last_metrics: dict[str, Any] | None = None
        if resume is not None:
            self._restore(resume)

    def _datasets(self) -> tuple[Any, Any | None]:
        """The training split and the validation split (None without ``data.val_split``), their
        files scanned first with ``data.check_files``."""
        from ..data import build_dataset

        data = self.cfg.data
        options = dict(to_plain(self.cfg)["data"]["options"])
        train_set = build_dataset(data.name, root=data.root, split=data.train_split, **options)
        val_set = (
            build_dataset(data.name, root=data.root, split=data.val_split, **options)
            if data.val_split
            else None
        )
        if len(train_set) == 0:
            raise PdnError(f"dataset {data.name!r} split {data.train_split!r} has no samples")
        if data.check_files:
            self._scan_files(train_set, val_set)
        return train_set, val_set

    def _initial_model(self, resume: dict | None) -> nn.Module:
        """The model of the config, with the weights of ``resume`` or ``train.init_from``."""
        from ..models import build_model

        model = build_model(**model_kwargs(self.cfg, self.train_set.num_classes))
        if resume is not None:
            check_compatible(resume, model.model_config)
            try:
                model.load_state_dict(resume["model"], strict=True)
            except RuntimeError as error:
                raise CheckpointError(
                    f"checkpoint weights do not fit the model ({str(error).splitlines()[0]})"
                ) from None
        elif self.cfg.train.init_from:
            self._initialise_from(model, str(self.cfg.train.init_from))
        return model

    def _train_transform(self) -> Any:
        from ..data.transforms import train_transforms

        data = self.cfg.data
        return train_transforms(
            self.model.normalization,
            data.crop_size,
            scale_range=tuple(data.scale_range),
            flip=data.flip,
            jitter=data.jitter,
            rotation=data.rotation,
        )

    def _cue_probe(self) -> CueProbe | None:
        """On the context benchmark (rank 0), the scenes that measure how much of an object's
        decision comes from its cue; None elsewhere. The scenes keep their size (no
        ``data.eval_resize``): the masks and cues that pick the pixels are at that size."""
        from ..data.transforms import eval_transforms

        if not self.context.is_main:
            return None
        return CueProbe.from_dataset(self.train_set, eval_transforms(self.model.normalization))

    def _scan_files(self, train_set: Any, val_set: Any | None) -> None:
        """Refuse to start when a file of a split is missing, unreadable, of another size than
        its image, or (evaluation split) smaller than the models accept: found now, from the
        headers, rather than when it is first drawn or at the final evaluation."""
        from ..data.check import scan_files

        data = self.cfg.data
        splits = [(data.train_split, train_set, 0)]
        if val_set is not None:
            splits.append((data.val_split, val_set, MIN_INPUT_SIZE))
        for split, dataset, min_size in splits:
            bad = scan_files(dataset, min_size=min_size)
            if bad:
                more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
                raise DataError(
                    f"split {split!r}: {bad[0]}{more}; nothing trained (pdn data check lists "
                    "every problem; data.check_files=false skips this scan)"
                )

    def _initialise_from(self, model: nn.Module, source: str) -> None:
        from ..models.weights import describe_keys, load_matching_weights, load_state_dict

        loaded, kept = load_matching_weights(model, load_state_dict(source), source)
        if self.context.rank == 0:
            left = f"; left at their initialisation: {describe_keys(kept)}" if kept else ""
            print(f"pdn train: {len(loaded)} tensors from {source}{left}", file=sys.stderr)

    def header(self) -> list[str]:
        """What this run is, printed at its start: model, weights, data, recipe, device."""
        cfg, ctx = self.cfg, self.context
        model, data, tcfg = cfg.model, cfg.data, cfg.train
        deployed = sum(
            p.numel() for name, p in self.model.named_parameters() if not name.startswith("aux_")
        )
        weights = model.backbone_weights or "from scratch"
        lines = [
            f"pdn train: {model.arch} on {model.backbone} (output stride {model.output_stride}), "
            f"{deployed / 1e6:.2f} M parameters without the aux head; backbone weights: {weights}",
            f"  data: {data.name} ({len(self.train_set.classes)} classes), {data.train_split} "
            f"{len(self.train_set)} samples"
            + (f", {data.val_split} {len(self.val_set)}" if self.val_set is not None else "")
            + f"; crop {data.crop_size}, batch {tcfg.batch_size} x {ctx.world_size} process(es)",
            f"  recipe: {tcfg.optimizer} lr {tcfg.lr:g} (head x{tcfg.head_lr_mult:g}"
            + (
                f"; backbone frozen for {tcfg.backbone_frozen_iters}"
                if tcfg.backbone_frozen_iters
                else ""
            )
            + f"), {tcfg.iters} iterations"
            + (f", gradient norm clipped to {tcfg.clip_grad_norm:g}" if tcfg.clip_grad_norm else "")
            + f"; device {ctx.device}"
            + (f", {torch.get_num_threads()} threads" if ctx.device.type == "cpu" else "")
            + f", precision {self.precision}"
            + (" autocast" if self.precision != "fp32" else "")
            + "; run directory "
            f"{self.run_dir}",
        ]
        if (
            model.backbone_weights is None
            and model.backbone.startswith(("resnet", "efficientnet"))
            and tcfg.optimizer == "sgd"
        ):
            lines.append(
                f"  warning: the {model.backbone} backbone starts from scratch, but the SGD "
                "recipe is made for ImageNet weights; give model.backbone_weights, or "
                "train.optimizer=adamw with head_lr_mult=1 to train from scratch"
            )
        return lines

    # -- checkpoints -------------------------------------------------------------------------

    def _restore(self, ckpt: dict[str, Any]) -> None:
        for key in ("optimizer", "scheduler", "scaler", "rng"):
            if key not in ckpt:
                raise CheckpointError(
                    f"checkpoint has no {key} state, so the run cannot resume from it (use last.pt)"
                )
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.start = int(ckpt["iteration"])
        if self.start > self.cfg.train.iters:
            raise ConfigError(
                f"the run is already at iteration {self.start}, past train.iters="
                f"{self.cfg.train.iters}; give train.iters={self.start} or more to resume it"
            )
        self.last_metrics = ckpt.get("metrics")
        ranks = ckpt["rng"].get("ranks", [])
        if len(ranks) == self.context.world_size:
            seeding.set_rng_state(ranks[self.context.rank])
        else:  # another process count: fresh per-rank streams, still determined by (seed, step)
            seeding.seed_process(
                seeding.derive_seed(self.cfg.train.seed, self.start), self.context.rank
            )
        best = self.run_dir / "best.pt"
        if best.is_file():
            metrics = load_checkpoint(best).get("metrics") or {}
            if metrics.get("mIoU") is not None:
                self.best_miou = float(metrics["mIoU"])

    def _payload(
        self, iteration: int, metrics: dict[str, Any] | None, *, resumable: bool
    ) -> dict[str, Any]:
        state: dict[str, Any] = {}
        if resumable:
            state = {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": {"ranks": distributed.all_gather_objects(seeding.rng_state(), self.context)},
            }
        return make_checkpoint(
            self.model,
            classes=list(self.train_set.classes),
            palette=_palette(self.train_set),
            config=to_plain(self.cfg),
            iteration=iteration,
            metrics=metrics,
            **state,
        )

    def _save(
        self, name: str, iteration: int, metrics: dict[str, Any] | None, *, resumable: bool
    ) -> None:
        """Write ``name`` (rank 0), unless the weights are no longer finite (then stop)."""
        if not _all_finite(self.model):  # identical weights on every rank: every rank stops
            raise TrainingDiverged(
                f"weights became NaN/inf by iteration {iteration}; stopped without saving them; "
                f"{self._last_good()}"
            )
        payload = self._payload(iteration, metrics, resumable=resumable)  # collective under DDP
        if self.context.is_main:
            save_checkpoint(self.run_dir / name, payload)

    def _last_good(self) -> str:
        last = self.run_dir / "last.pt"
        if not last.is_file():
            return "no checkpoint was written before"
        try:
            iteration = load_checkpoint(last)["iteration"]
        except CheckpointError:
            return f"the last checkpoint is {last}"
        return f"the last good checkpoint is {last} (iteration {iteration})"

    # -- evaluation ----------------------------------------------------------------------------

    def _evaluate(
        self, iteration: int, log: ScalarLog | None, progress: Progress
    ) -> SegmentationResult | None:
        if self.val_set is None:
            return None
        result = evaluate_dataset(
            self.model,
            self.val_set,
            num_classes=self.val_set.num_classes,
            options=self.eval_options,
            class_names=list(self.val_set.classes),
            ignore_index=self.val_set.ignore_index,
            context=self.context,
            num_workers=self.cfg.data.num_workers,
            progress=False,
        )
        self.last_metrics = _metrics_record(result, iteration)
        summary = {k: getattr(result, k) for k in ("mIoU", "mAcc", "aAcc", "fwIoU")}
        if log is not None:
            log.write(iteration, "val", **summary)
        shown = "  ".join(f"{k} {v:.4f}" for k, v in summary.items() if v is not None)
        progress.write(f"iter {iteration}: val {shown}")
        if result.mIoU is not None and result.mIoU > self.best_miou:
            self.best_miou = result.mIoU
            self._save("best.pt", iteration, self.last_metrics, resumable=False)
        return result

    # -- the loop --------------------------------------------------------------------------------

    def _loader(self) -> DataLoader:
        tcfg, ctx = self.cfg.train, self.context
        batches = seeding.IterationBatches(
            len(self.train_set),
            tcfg.batch_size,
            tcfg.seed,
            start=self.start,
            stop=tcfg.iters,
            rank=ctx.rank,
            world_size=ctx.world_size,
        )
        return DataLoader(
            TrainSamples(self.train_set, self.train_transform, tcfg.seed),
            batch_sampler=batches,
            num_workers=self.cfg.data.num_workers,
            pin_memory=ctx.device.type == "cuda",
            generator=torch.Generator(),  # keeps the global RNG untouched (resume identity)
            worker_init_fn=ignore_signals_in_worker,
            persistent_workers=False,
        )

    def run(self) -> TrainResult:
        """Train from ``self.start`` to ``train.iters``, then evaluate and write the run files."""
        tcfg = self.cfg.train
        log = self._open_log()
        progress = Progress(
            start=self.start,
            total=tcfg.iters,
            every=tcfg.log_interval,
            enabled=self.context.is_main,
        )
        self._announce(log, progress)
        window: list[list[float]] = []
        iteration = self.start
        try:
            with _StopRequest() as stop, loader_iteration(self._loader()) as batches:
                _set_train_mode(self.forward, tcfg.freeze_bn)
                for images, masks in batches:
                    losses, signalled = self._step(images, masks, stop, iteration)
                    iteration += 1
                    window.append(losses)
                    self._log_step(iteration, window, log, progress)
                    if signalled:
                        return self._stop_for_signal(stop, iteration, progress)
                    if iteration < tcfg.iters:
                        self._periodic(iteration, log, progress)
            return self._finish(iteration, log, progress)
        finally:
            progress.close()
            if log is not None:
                log.close()

    def _open_log(self) -> ScalarLog | None:
        """Rank 0: the run directory with its config, and ``log.jsonl`` cut back to the start."""
        if not self.context.is_main:
            return None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_config(self.cfg, self.run_dir / "config.yaml")
        log = ScalarLog(self.run_dir / "log.jsonl")
        log.truncate_after(self.start)
        return log

    def _announce(self, log: ScalarLog | None, progress: Progress) -> None:
        """The run header, the resume line, and the cue share at initialisation."""
        if not self.context.is_main:
            return
        for line in self.header():
            progress.write(line)
        if self.start:
            progress.write(
                f"resuming {self.run_dir} at iteration {self.start}/{self.cfg.train.iters}"
            )
        if log is not None and self.cue_probe is not None and self.start == 0:
            log.write(0, "reach", cue_share=self.cue_probe.measure(self.model, self.context.device))

    def _step(
        self, images: torch.Tensor, masks: torch.Tensor, stop: _StopRequest, iteration: int
    ) -> tuple[list[float], bool]:
        """One optimizer step on a batch; returns the global batch's (loss, main, aux) per
        labelled pixel with the gradient norm before clipping, and whether any rank got a stop
        signal. Raises TrainingDiverged, before
        touching the weights, when any rank's loss is not finite."""
        ctx, tcfg = self.context, self.cfg.train
        images = images.to(ctx.device, non_blocking=True)
        masks = masks.to(ctx.device, non_blocking=True)
        with autocast_for(self.precision, ctx.device):
            logits, aux_logits = self.forward(images)
        weights = self.class_weights
        total, main_loss, aux_loss = training_loss(
            logits, aux_logits, masks, tcfg.aux_weight, weights
        )
        labelled = labelled_weight(masks, weights)
        sums = [float(t.detach()) if t is not None else 0.0 for t in (total, main_loss, aux_loss)]
        # one collective per step: the global batch's labelled pixels and loss sums, whether any
        # rank's loss is non-finite, whether any rank got a signal
        flags = [float(not math.isfinite(sums[0])), float(stop.signal_name is not None)]
        shared = distributed.all_reduce_sum([labelled, *flags, *sums], ctx)
        global_labelled = max(shared[0], 1.0)
        if shared[1] > 0:
            raise TrainingDiverged(
                f"loss is {shared[3] / global_labelled} at iteration {iteration + 1}; stopped "
                f"without updating the weights; {self._last_good()}"
            )
        self.optimizer.zero_grad(set_to_none=True)
        # DDP averages gradients over ranks: scale so the result is d(sum / global_labelled)
        self.scaler.scale(total * (ctx.world_size / global_labelled)).backward()
        grad_norm = self._clip_gradients(float(tcfg.clip_grad_norm))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return [value / global_labelled for value in shared[3:]] + [grad_norm], shared[2] > 0

    def _clip_gradients(self, max_norm: float) -> float:
        """The global L2 norm of the (unscaled, all-reduced) gradients of the parameters this step
        moves (a frozen backbone's are left out), before clipping; with ``max_norm > 0`` they are
        scaled down to at most that norm, otherwise left untouched. The same on every rank."""
        self.scaler.unscale_(self.optimizer)
        params = [
            p
            for group in self.optimizer.param_groups
            if group["lr"] > 0
            for p in group["params"]
            if p.grad is not None
        ]
        if not params:
            return 0.0
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        if max_norm > 0:
            torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
        return float(norm)

    def _log_step(
        self, iteration: int, window: list[list[float]], log: ScalarLog | None, progress: Progress
    ) -> None:
        """The progress line; every ``log_interval`` steps the window's mean losses, the learning
        rates and (context benchmark) the cue share go to ``log.jsonl``, and the window empties."""
        tcfg = self.cfg.train
        lrs = self.scheduler.get_last_lr()
        progress.update(iteration, loss=window[-1][0], lr=lrs[0])
        if log is None or not (iteration % tcfg.log_interval == 0 or iteration == tcfg.iters):
            return
        means = [sum(col) / len(window) for col in zip(*window, strict=True)]
        # steps the fp16 scaler skipped have an infinite norm: the mean is over the others
        norms = [row[3] for row in window if math.isfinite(row[3])]
        means[3] = sum(norms) / len(norms) if norms else None
        log.write(
            iteration,
            "train",
            loss=means[0],
            loss_main=means[1],
            loss_aux=means[2],
            grad_norm=means[3],
            lr=lrs[0],
            lr_head=lrs[1],
        )
        window.clear()
        if self.cue_probe is not None:
            log.write(
                iteration,
                "reach",
                cue_share=self.cue_probe.measure(self.model, self.context.device),
            )
            _set_train_mode(self.forward, tcfg.freeze_bn)

    def _periodic(self, iteration: int, log: ScalarLog | None, progress: Progress) -> None:
        """The evaluation and checkpoint (and kept copy) due at ``iteration``, if any."""
        tcfg = self.cfg.train
        if tcfg.eval_interval and iteration % tcfg.eval_interval == 0:
            self._evaluate(iteration, log, progress)
            _set_train_mode(self.forward, tcfg.freeze_bn)
        if tcfg.checkpoint_interval and iteration % tcfg.checkpoint_interval == 0:
            self._save("last.pt", iteration, self.last_metrics, resumable=True)
            if tcfg.keep_checkpoints:
                self._save(f"iter_{iteration}.pt", iteration, None, resumable=False)

    def _stop_for_signal(
        self, stop: _StopRequest, iteration: int, progress: Progress
    ) -> TrainResult:
        """SIGINT/SIGTERM: save ``last.pt`` at this iteration and end the run, resumable."""
        stopped_by = stop.signal_name or "signal"
        self._save("last.pt", iteration, self.last_metrics, resumable=True)
        progress.write(
            f"stopped by {stopped_by} at iteration {iteration}; saved {self.run_dir / 'last.pt'}; "
            f"continue with --resume --out {self.run_dir}"
        )
        return TrainResult(self.run_dir, iteration, None, stopped_by)

    def _finish(self, iteration: int, log: ScalarLog | None, progress: Progress) -> TrainResult:
        """The final evaluation, ``last.pt``, ``metrics.json`` and the closing lines."""
        progress.close()
        result = self._evaluate(iteration, log, progress)
        self._save("last.pt", iteration, self.last_metrics, resumable=True)
        if self.context.is_main and result is not None:
            (self.run_dir / "metrics.json").write_text(
                json.dumps(_metrics_record(result, iteration), indent=2) + "\n"
            )
            data = self.cfg.data
            print(f"\nvalidation ({data.name}, {data.val_split}) after {iteration} iterations:")
            print(result.table())
        if self.context.is_main:
            files = ("config.yaml", "last.pt", "best.pt", "log.jsonl", "metrics.json")
            written = sorted(p.name for p in self.run_dir.iterdir() if p.name in files)
            print(f"run directory: {self.run_dir} ({', '.join(written)})")
        return TrainResult(self.run_dir, iteration, result, None)


def default_run_dir(config: str | None) -> Path:
    """``runs/<config name>``, where ``pdn train`` writes without ``--out``."""
    return Path("runs") / (Path(str(config)).stem if config is not None else DEFAULT_CONFIG)


def prepare_run(
    config: str | Path | None,
    overrides: Sequence[str],
    out: str | Path | None,
    *,
    resume: bool,
) -> tuple[DictConfig, Path, dict[str, Any] | None]:
    """Resolve what ``pdn train`` will do: the config, the run directory, the checkpoint to resume.

    - Without ``--resume``, a run directory that already holds ``last.pt`` is refused (nothing is
      overwritten by accident).
    - With ``--resume``, ``OUT/last.pt`` is loaded. Without CONFIG the run's own config (stored in
      the checkpoint) is used, with the overrides applied on top; with CONFIG, that config is
      loaded and must describe the same model. Either way only the keys of
      ``RESUME_CHANGEABLE_KEYS`` may differ from the run's (:func:`check_resumable`). If there is no ``last.pt`` yet, the run starts
      fresh (so one command line serves both the first start and every restart).
    """
    cfg = load_config(config, overrides) if (config is not None or not resume) else None
    run_dir = Path(out) if out is not None else default_run_dir(config)
    last = run_dir / "last.pt"
    if not resume:
        if last.is_file():
            raise PdnError(
                f"{run_dir} already holds a run (last.pt); pass --resume to continue it or choose another --out"
            )
        return cfg, run_dir, None  # type: ignore[return-value]
    if not last.is_file():
        print(f"pdn train: no {last} yet, starting a new run", file=sys.stderr)
        return (cfg if cfg is not None else load_config(None, overrides)), run_dir, None
    ckpt = load_checkpoint(last)
    if cfg is None:
        if not ckpt.get("config"):
            raise CheckpointError(f"{last}: holds no config; pass the CONFIG file as well")
        cfg = apply_overrides(from_plain(ckpt["config"]), overrides)
    if ckpt.get("config"):
        stored_world = len(ckpt.get("rng", {}).get("ranks", [])) or 1
        check_resumable(from_plain(ckpt["config"]), cfg, last, stored_world)
    return cfg, run_dir, ckpt


# What a resumed run may change besides the neutral keys: its length, where its data lies, its
# evaluation settings (eval.*) and its precision. The model is checked against the weights (check_compatible).
RESUME_CHANGEABLE_KEYS = RUN_NEUTRAL_KEYS | {
    "train.iters",
    "train.init_from",
    "train.precision",
    "train.amp",
    "data.root",
}


def check_resumable(
    stored: DictConfig, wanted: DictConfig, last: Path, stored_world_size: int = 1
) -> None:
    """Refuse to resume the run of ``stored`` (its checkpoint ``last``, written by
    ``stored_world_size`` processes) under ``wanted`` when they differ in a key that changes what
    is learned (the data, the recipe, the seed), or in the global batch: the restored optimizer
    and schedule would silently keep the old values of some and take the new ones of others. The
    per-process ``train.batch_size`` may change with the process count when the global batch
    stays."""
    differing = [
        item
        for item in config_differences(
            stored, wanted, RESUME_CHANGEABLE_KEYS | {"train.batch_size"}
        )
        if not item[0].startswith(("model.", "eval."))
    ]
    if differing:
        key, old, new = differing[0]
        others = [item[0] for item in differing[1:]]
        more = (
            f" (and {', '.join(others[:4])}{', ...' if len(others) > 4 else ''})" if others else ""
        )
        raise ConfigError(
            f"{last}: the run was trained with {key}={old!r}, the config asks for {new!r}{more}; "
            "resume with the run's own config (pdn train --out DIR --resume) or start a new run "
            "from its weights (train.init_from)"
        )
    world = distributed.launched_world_size()
    before = stored.train.batch_size * stored_world_size
    after = wanted.train.batch_size * world
    if before != after:
        raise ConfigError(
            f"{last}: the run was trained with a global batch of {before} (train.batch_size="
            f"{stored.train.batch_size} x {stored_world_size} processes), this call asks for "
            f"{after} ({wanted.train.batch_size} x {world}); keep the global batch to resume"
        )


__all__ = [
    "TrainResult",
    "TrainingDiverged",
    "build_optimizer",
    "check_resumable",
    "default_run_dir",
    "param_groups",
    "poly_schedule",
    "prepare_run",
    "train",
    "training_loss",
]
