"""Run configuration: YAML files checked against a typed schema, plus dotted ``KEY=VALUE`` overrides.

A config has four sections, ``model``, ``data``, ``train`` and ``eval`` (the dataclasses below, which
are also the documentation of every key and its default). Files are plain YAML without inheritance;
the packaged ones live in ``pdn/configs/`` and can be named without a path (``pdn train nuclei``).
Loading goes through OmegaConf with the dataclasses as the structured schema, so a value of the wrong
type and an unknown key are errors (:class:`~pdn.errors.ConfigError`, one line, with close matches).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..errors import ConfigError
from ..vocabulary import EVAL_MODES, MIN_INPUT_SIZE, OPTIMIZERS, PRECISIONS

DEFAULT_CONFIG = "demo"
# Free-form mappings: an override that gives a whole mapping replaces the old one.
_REPLACED_MAPPINGS = ("data.options",)


@dataclass
class ModelConfig:
    """``build_model`` arguments. Head options left at ``None`` take the architecture's default."""

    arch: str = "pdn"  # pdn | fcn | aspp | ppm
    backbone: str = "resnet50"  # resnet18/34/50/101 | efficientnet_lite0 | tiny
    output_stride: int = 8  # 8 | 16 | 32
    backbone_weights: str | None = None  # None | file or URL of a state dict | "imagenet"
    aux: bool = True  # auxiliary FCN head on stage 3 (training loss only)
    low_level_stage: int | None = None  # earlier backbone stage joined to the head's input
    low_level_channels: int = 48  # that skip's width after its 1x1 projection
    image_skip: bool | None = None  # the pooled input image joins the head's input (pdn: on)
    channels: int | None = None  # head width (default min(512, backbone width))
    dropout: float | None = None  # before the classifier (default 0.1)
    num_layers: int | None = None  # pdn: diffusion layers (default 2)
    hidden: int | None = None  # pdn: LSTM hidden size per direction (default channels // 4)
    directions: list[str] | None = None  # pdn: subset of down, up, right, left (default all)
    rates: list[int] | None = None  # pdn: atrous rates of the recurrent filters (default 1 2 4)
    kernel_size: int | None = None  # pdn: recurrent filter length (default 3)
    mode: str | None = None  # pdn: sweep | layerwise (default sweep)
    forget_bias: float | None = None  # pdn: initial forget-gate bias without chrono (default 1.0)
    chrono_steps: int | None = None  # pdn: chrono init over T slices (sweep: 32; 0: off)
    recurrent_dilations: list[int] | None = None  # pdn sweep: h_{s-d} also feeds slice s
    gate_norm: bool | None = None  # pdn sweep: layer-normalised LSTM gates (default off)
    atrous_rates: list[int] | None = None  # aspp: rates (default 12 24 36 at output stride 8)
    bins: list[int] | None = None  # ppm: pooling bins (default 1 2 3 6)


@dataclass
class DataConfig:
    """Dataset and augmentation."""

    name: str = "context"  # a registered dataset (pdn.data.list_datasets(), pdn data check --help)
    root: str | None = None  # dataset directory (None: the dataset's default, if it has one)
    train_split: str = "train"
    val_split: str | None = "val"  # None: no evaluation
    options: dict[str, Any] = field(default_factory=dict)  # extra build_dataset keyword arguments
    crop_size: int = 512  # square training crop
    scale_range: list[float] = field(default_factory=lambda: [0.5, 2.0])  # random rescale
    flip: bool = True  # random horizontal flip
    jitter: bool = True  # photometric jitter
    rotation: float = 0.0  # random rotation range in degrees (0: off)
    eval_resize: int | None = None  # resize the shorter side for evaluation (None: as is)
    num_workers: int = 2  # DataLoader worker processes per training process
    check_files: bool = True  # pdn train scans every file's header before training


@dataclass
class TrainConfig:
    """Optimisation (the standard dilated-ResNet recipe by default)."""

    iters: int = 40000  # optimizer steps
    batch_size: int = 8  # images per process per step (global batch = batch_size * processes)
    optimizer: str = "sgd"  # sgd (the recipe) | adamw (for networks trained from scratch)
    lr: float = 0.01  # backbone learning rate; new layers get lr * head_lr_mult
    head_lr_mult: float = 10.0
    backbone_frozen_iters: int = 0  # backbone lr 0 for the first N steps (new layers learn first)
    momentum: float = 0.9  # sgd only
    weight_decay: float = 1e-4  # sgd: L2 penalty; adamw: decoupled decay
    poly_power: float = 0.9  # lr = base * (1 - iter / iters) ** poly_power
    aux_weight: float = 0.4  # weight of the auxiliary head's loss
    # Per-class weights of both losses, one per class in the dataset's order (mmsegmentation's
    # class_weight): the loss is the weighted mean over labelled pixels. None: every class 1.
    class_weights: list[float] | None = None
    clip_grad_norm: float = 0.0  # clip the global gradient L2 norm to this before a step (0: off)
    eval_interval: int = 4000  # validate every N steps (0: only at the end)
    checkpoint_interval: int = 4000  # write last.pt every N steps (0: only at the end)
    keep_checkpoints: bool = False  # also keep each periodic checkpoint's weights as iter_N.pt
    log_interval: int = 50  # scalar log every N steps
    seed: int = 0
    amp: bool = True  # fp16 mixed precision on CUDA when precision is None (ignored on the CPU)
    precision: str | None = None  # fp32 | bf16 | fp16 autocast (None: fp16 if amp on CUDA)
    freeze_bn: bool = False  # BatchNorm layers use running statistics (small per-process batches)
    # Start from these weights (a pdn checkpoint or a state dict, file or URL): every tensor whose
    # name and shape match; the rest keep their initialisation. Ignored by --resume.
    init_from: str | None = None
    device: str = "auto"  # auto | cpu | cuda | cuda:N


@dataclass
class EvalConfig:
    """Evaluation (``pdn eval``; the periodic evaluation during training is whole-image)."""

    mode: str = "whole"  # whole | slide
    crop_size: int | None = None  # sliding-window size (default data.crop_size)
    stride: int | None = None  # sliding-window stride (default 2/3 of the crop)
    scales: list[float] = field(default_factory=lambda: [1.0])  # multi-scale factors
    flip: bool = False  # also average the horizontally flipped prediction


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def schema_keys(schema: type = Config, prefix: str = "") -> list[str]:
    """Every dotted key of the schema, e.g. ``["model.arch", ..., "eval.flip"]``."""
    keys = []
    for item in fields(schema):
        section = _section(item)
        keys += (
            schema_keys(section, f"{prefix}{item.name}.") if section else [f"{prefix}{item.name}"]
        )
    return keys


def _section(item: Any) -> type | None:
    """The dataclass of a sub-section field, or None for a leaf."""
    factory = item.default_factory
    return factory if isinstance(factory, type) and is_dataclass(factory) else None


def packaged_configs() -> list[str]:
    """Names of the configs shipped with pdn (``pdn train NAME`` finds them without a path)."""
    return sorted(
        p.name[: -len(".yaml")]
        for p in resources.files("pdn").joinpath("configs").iterdir()
        if p.name.endswith(".yaml")
    )


def find_config(name_or_path: str | Path | None) -> Path:
    """Resolve a config argument: an existing file, else a packaged config name (``demo``, ...)."""
    if name_or_path is None:
        name_or_path = DEFAULT_CONFIG
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    stem = path.name[:-5] if path.name.endswith(".yaml") else path.name
    packaged = resources.files("pdn").joinpath("configs", f"{stem}.yaml")
    if path.parent == Path(".") and packaged.is_file():
        return Path(str(packaged))
    close = difflib.get_close_matches(stem, packaged_configs(), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(
        f"{name_or_path}: config file not found{hint} (packaged: {', '.join(packaged_configs())})"
    )


def _unknown_key_error(key: str, where: str) -> ConfigError:
    known = schema_keys()
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    close += [
        k
        for k in known
        if k not in close and difflib.get_close_matches(leaf, [k.rsplit(".", 1)[-1]], cutoff=0.8)
    ]
    hint = f"; did you mean {', '.join(close[:3])}?" if close else ""
    return ConfigError(f"unknown config key {key!r} {where}{hint}")


def _check_keys(
    data: Mapping[str, Any], where: str, schema: type = Config, prefix: str = ""
) -> None:
    """Raise ConfigError for the first key of ``data`` that the schema lacks."""
    by_name = {item.name: item for item in fields(schema)}
    for key, value in data.items():
        full = f"{prefix}{key}"
        item = by_name.get(str(key))
        if item is None:
            raise _unknown_key_error(full, where)
        section = _section(item)
        if section is not None:
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"config key {full!r} {where} must be a section (mapping), got {value!r}"
                )
            _check_keys(value, where, section, f"{full}.")


def _merge(base: DictConfig, data: Mapping[str, Any], where: str) -> DictConfig:
    _check_keys(data, where)
    try:
        return OmegaConf.merge(base, data)  # type: ignore[return-value]
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or "?"
        message = str(error).strip().splitlines()[0]
        raise ConfigError(f"config key {key!r} {where}: {message}") from None


def _read_yaml(file: Path) -> dict[str, Any]:
    try:
        data = OmegaConf.to_container(OmegaConf.load(file), resolve=False)
    except (OSError, OmegaConfBaseException, ValueError) as error:
        first = str(error).strip().splitlines()[0]
        raise ConfigError(f"{file}: cannot read config ({first})") from None
    except Exception as error:  # YAML parser errors
        first = str(error).strip().splitlines()[0]
        raise ConfigError(f"{file}: not valid YAML ({first})") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{file}: a config file must be a mapping of sections, got {type(data).__name__}"
        )
    if not data:  # the defaults alone are ResNet-50 at 512 px: never what an empty file meant
        raise ConfigError(
            f"{file}: the config is empty; give at least its data section (see pdn config demo)"
        )
    return data


def parse_override(item: str) -> dict[str, Any]:
    """``"train.iters=100"`` -> ``{"train": {"iters": 100}}``; values parse as YAML (``null``, lists...)."""
    key, sep, _ = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r} is not KEY=VALUE (for example train.iters=1000)")
    try:
        return OmegaConf.to_container(OmegaConf.from_dotlist([item]), resolve=False)  # type: ignore[return-value]
    except Exception as error:  # YAML parser errors
        first = str(error).strip().splitlines()[0]
        raise ConfigError(f"override {item!r}: cannot parse the value ({first})") from None


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> DictConfig:
    """Load and check a run config.

    Args:
        path: a YAML file, a packaged config name, or None for the embedded default (``demo``).
        overrides: dotted ``KEY=VALUE`` strings applied after the file (``train.iters=1000``).

    Returns:
        A structured ``DictConfig``: ``cfg.train.lr`` etc., types enforced on assignment.

    Raises:
        ConfigError: unreadable file, unknown key (with close matches), wrong type, bad value.
    """
    file = find_config(path)
    cfg = _merge(OmegaConf.structured(Config), _read_yaml(file), f"in {file}")
    check_resolvable(cfg, str(file))
    return apply_overrides(cfg, overrides)


def apply_overrides(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """Apply dotted ``KEY=VALUE`` strings to a checked config and validate the result.

    A value merges into the config, except that a mapping given for a free-form key
    (``data.options={...}``) replaces the old mapping, so that switching ``data.name`` can drop
    options the new dataset does not take; ``data.options.size=96`` sets a single option.
    """
    for item in overrides:
        key = item.partition("=")[0].strip()
        nested = parse_override(item)
        if key in _REPLACED_MAPPINGS:
            _check_keys(nested, f"in override {item!r}")
            cfg = cfg.copy()
            try:
                OmegaConf.update(
                    cfg, key, OmegaConf.select(OmegaConf.create(nested), key), merge=False
                )
            except OmegaConfBaseException as error:
                message = str(error).strip().splitlines()[0]
                raise ConfigError(f"config key {key!r} in override {item!r}: {message}") from None
        else:
            cfg = _merge(cfg, nested, f"in override {item!r}")
    check_resolvable(cfg, "the overrides")
    validate(cfg)
    return cfg


def check_resolvable(cfg: DictConfig, where: str) -> None:
    """Every ``${...}`` interpolation must resolve now, not when a key is first read mid-run."""
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as error:
        message = str(error).strip().splitlines()[0]
        raise ConfigError(f"{where}: an interpolation does not resolve ({message})") from None


def validate(cfg: DictConfig) -> None:
    """Value checks the types cannot express; raises ConfigError naming the key."""
    checks = [
        ("train.iters", cfg.train.iters >= 1, "must be at least 1"),
        ("train.batch_size", cfg.train.batch_size >= 1, "must be at least 1"),
        ("train.lr", cfg.train.lr > 0, "must be positive"),
        ("train.eval_interval", cfg.train.eval_interval >= 0, "must be >= 0"),
        ("train.checkpoint_interval", cfg.train.checkpoint_interval >= 0, "must be >= 0"),
        ("train.log_interval", cfg.train.log_interval >= 1, "must be at least 1"),
        (
            "data.crop_size",
            cfg.data.crop_size >= MIN_INPUT_SIZE,
            f"must be at least {MIN_INPUT_SIZE}",
        ),
        ("data.num_workers", cfg.data.num_workers >= 0, "must be >= 0"),
        (
            "data.scale_range",
            len(cfg.data.scale_range) == 2
            and 0 < cfg.data.scale_range[0] <= cfg.data.scale_range[1],
            "must be [low, high] with 0 < low <= high",
        ),
        ("train.head_lr_mult", cfg.train.head_lr_mult > 0, "must be positive"),
        ("train.backbone_frozen_iters", cfg.train.backbone_frozen_iters >= 0, "must be >= 0"),
        ("train.momentum", 0 <= cfg.train.momentum < 1, "must be in [0, 1)"),
        ("train.weight_decay", cfg.train.weight_decay >= 0, "must be >= 0"),
        ("train.poly_power", cfg.train.poly_power >= 0, "must be >= 0"),
        ("train.aux_weight", cfg.train.aux_weight >= 0, "must be >= 0"),
        ("train.clip_grad_norm", cfg.train.clip_grad_norm >= 0, "must be >= 0 (0: off)"),
        ("data.rotation", 0 <= cfg.data.rotation <= 180, "must be in [0, 180] degrees"),
        ("model.output_stride", cfg.model.output_stride in (8, 16, 32), "must be 8, 16 or 32"),
        *_optional_checks(cfg),
        ("eval.mode", cfg.eval.mode in EVAL_MODES, "must be " + " or ".join(EVAL_MODES)),
        (
            "train.optimizer",
            cfg.train.optimizer in OPTIMIZERS,
            "must be " + " or ".join(OPTIMIZERS),
        ),
        (
            "train.precision",
            cfg.train.precision in (None, *PRECISIONS),
            "must be " + ", ".join(PRECISIONS) + " or null",
        ),
        (
            "eval.scales",
            len(cfg.eval.scales) >= 1 and all(s > 0 for s in cfg.eval.scales),
            "must be a non-empty list of positive factors",
        ),
        (
            "train.device",
            cfg.train.device in ("auto", "cpu", "cuda") or cfg.train.device.startswith("cuda:"),
            "must be auto, cpu, cuda or cuda:N",
        ),
    ]
    for key, ok, message in checks:
        if not ok:
            value = OmegaConf.select(cfg, key)
            raise ConfigError(f"config key {key!r} {message}, got {_show(value)}")


def _optional_checks(cfg: DictConfig) -> list[tuple[str, bool, str]]:
    """Range checks of the keys that may be left at None (the architecture's default)."""
    model, evaluation = cfg.model, cfg.eval
    rules: list[tuple[str, Any, Any, str]] = [
        ("model.dropout", model.dropout, lambda v: 0 <= v < 1, "must be in [0, 1)"),
        ("model.channels", model.channels, lambda v: v >= 1, "must be at least 1"),
        ("model.num_layers", model.num_layers, lambda v: v >= 1, "must be at least 1"),
        ("model.hidden", model.hidden, lambda v: v >= 1, "must be at least 1"),
        (
            "model.kernel_size",
            model.kernel_size,
            lambda v: v >= 1 and v % 2 == 1,
            "must be a positive odd number",
        ),
        ("model.rates", model.rates, lambda v: len(v) > 0 and min(v) >= 1, "must be >= 1 each"),
        (
            "model.atrous_rates",
            model.atrous_rates,
            lambda v: len(v) > 0 and min(v) >= 1,
            "must be >= 1 each",
        ),
        ("model.bins", model.bins, lambda v: len(v) > 0 and min(v) >= 1, "must be >= 1 each"),
        ("model.forget_bias", model.forget_bias, math.isfinite, "must be a finite number"),
        ("model.chrono_steps", model.chrono_steps, lambda v: v == 0 or v >= 3, "must be 0 or >= 3"),
        ("model.low_level_stage", model.low_level_stage, lambda v: v >= 0, "must be at least 0"),
        ("model.low_level_channels", model.low_level_channels, lambda v: v >= 1, "must be >= 1"),
        (
            "eval.crop_size",
            evaluation.crop_size,
            lambda v: v >= MIN_INPUT_SIZE,
            f"must be at least {MIN_INPUT_SIZE}",
        ),
        ("eval.stride", evaluation.stride, lambda v: v >= 1, "must be at least 1"),
        (
            "train.class_weights",
            cfg.train.class_weights,
            lambda v: all(w >= 0 and math.isfinite(w) for w in v) and any(w > 0 for w in v),
            "must be finite and >= 0, at least one of them positive",
        ),
    ]
    return [
        (key, value is None or bool(test(value)), message) for key, value, test, message in rules
    ]


def _show(value: Any) -> Any:
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def to_plain(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain dicts / lists / scalars (for checkpoints and JSON)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def save_config(cfg: DictConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML (``config.yaml`` in the run directory)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return path


def from_plain(data: Mapping[str, Any]) -> DictConfig:
    """Rebuild a checked config from :func:`to_plain` output (e.g. the one stored in a checkpoint)."""
    cfg = _merge(OmegaConf.structured(Config), data, "in the stored config")
    validate(cfg)
    return cfg


# Keys that change neither what a run learns nor how it is scored: a run may be resumed, or
# reused by the ablation, under other values of these.
RUN_NEUTRAL_KEYS = frozenset(
    {
        "train.device",
        "train.eval_interval",
        "train.log_interval",
        "train.checkpoint_interval",
        "train.keep_checkpoints",
        "data.num_workers",
        "data.check_files",
    }
)


def _flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``, down to the option dicts' own keys."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_differences(
    stored: DictConfig, wanted: DictConfig, ignored: Collection[str] = RUN_NEUTRAL_KEYS
) -> list[tuple[str, Any, Any]]:
    """``(dotted key, stored value, wanted value)`` of every key outside ``ignored`` where two
    resolved configs differ, sorted by key (``data.options.*`` compared option by option)."""
    old, new = _flat(to_plain(stored)), _flat(to_plain(wanted))
    return [
        (key, old.get(key), new.get(key))
        for key in sorted(set(old) | set(new))
        if key not in ignored and old.get(key) != new.get(key)
    ]


def model_kwargs(cfg: DictConfig, num_classes: int) -> dict[str, Any]:
    """``build_model`` keyword arguments from the ``model`` section; ``None`` head options are left out."""
    model = to_plain(cfg)["model"]
    fixed = ("arch", "backbone", "output_stride", "backbone_weights", "aux")
    kwargs = {key: model[key] for key in fixed}
    kwargs.update(
        {key: value for key, value in model.items() if key not in fixed and value is not None}
    )
    kwargs["num_classes"] = int(num_classes)
    return kwargs
