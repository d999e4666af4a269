"""Run configs: packaged files, typed schema, dotted overrides, unknown keys with close matches."""

from __future__ import annotations

import dataclasses

import pytest

from pdn.engine import config as C
from pdn.errors import ConfigError
from pdn.models import DiffusionOptions, list_architectures
from pdn.models.build import head_options


def test_default_is_the_demo_config():
    cfg = C.load_config()
    assert cfg.model.arch == "pdn" and cfg.model.backbone == "tiny"
    assert cfg.data.name == "context" and cfg.train.device == "cpu"


@pytest.mark.parametrize("name", C.packaged_configs())
def test_every_packaged_config_loads(name):
    cfg = C.load_config(name)
    assert cfg.train.iters >= 1
    kwargs = C.model_kwargs(cfg, num_classes=7)
    assert kwargs["num_classes"] == 7
    assert all(value is not None for key, value in kwargs.items() if key != "backbone_weights")


def test_packaged_configs_cover_the_benchmarks():
    names = set(C.packaged_configs())
    assert {
        "demo",
        "nuclei",
        "ade20k_pdn_r101",
        "voc_pdn_r101",
        "context59_pdn_r101",
        "cityscapes_pdn_r101",
        "person_part",
    } <= names


def test_model_section_has_a_key_for_every_head_option():
    """Every option of every head can be set from a config, pdn's diffusion options included; the
    pdn head's options are its own, then the fields of DiffusionOptions, then dropout."""
    keys = {item.name for item in dataclasses.fields(C.ModelConfig)}
    for arch in list_architectures():
        assert set(head_options(arch)) <= keys, arch
    diffusion = [item.name for item in dataclasses.fields(DiffusionOptions)]
    assert head_options("pdn") == ["channels", "num_layers", *diffusion, "dropout"]
    assert diffusion == [
        "hidden",
        "directions",
        "rates",
        "kernel_size",
        "mode",
        "forget_bias",
        "chrono_steps",
        "recurrent_dilations",
        "gate_norm",
    ]
    assert head_options("aspp") == ["channels", "atrous_rates", "dropout"]


def test_overrides_of_the_documented_keys():
    cfg = C.load_config(
        "demo",
        [
            "train.iters=7",
            "train.batch_size=3",
            "train.lr=1e-3",
            "data.name=folder",
            "data.root=/data/x",
            "model.arch=fcn",
            "model.backbone=resnet18",
            "model.rates=[1,3]",
            "model.backbone_weights=null",
            "data.options={num_classes: 4}",
        ],
    )
    assert (cfg.train.iters, cfg.train.batch_size, cfg.train.lr) == (7, 3, 0.001)
    assert (cfg.data.name, cfg.data.root, cfg.model.arch, cfg.model.backbone) == (
        "folder",
        "/data/x",
        "fcn",
        "resnet18",
    )
    assert list(cfg.model.rates) == [1, 3]
    assert cfg.data.options["num_classes"] == 4
    kwargs = C.model_kwargs(cfg, 4)
    assert kwargs["rates"] == [1, 3] and "hidden" not in kwargs  # None options are left out


def test_unknown_override_lists_close_matches():
    with pytest.raises(ConfigError) as info:
        C.load_config("demo", ["train.itres=5"])
    message = str(info.value)
    assert "train.itres" in message and "train.iters" in message and "\n" not in message
    with pytest.raises(ConfigError, match="did you mean train.iters"):
        C.load_config("demo", ["iters=5"])  # the right key in the wrong place
    with pytest.raises(ConfigError, match="unknown config key 'optimizer'"):
        C.load_config("demo", ["optimizer.lr=0.1"])


def test_unknown_key_in_a_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  arch: pdn\n  backbnoe: tiny\n")
    with pytest.raises(ConfigError) as info:
        C.load_config(path)
    assert "model.backbnoe" in str(info.value) and "model.backbone" in str(info.value)
    assert str(path) in str(info.value)


def test_types_and_values_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="train.iters"):
        C.load_config("demo", ["train.iters=many"])
    with pytest.raises(ConfigError, match="train.iters"):
        C.load_config("demo", ["train.iters=0"])
    with pytest.raises(ConfigError, match="eval.mode"):
        C.load_config("demo", ["eval.mode=sliding"])
    with pytest.raises(ConfigError, match="not KEY=VALUE"):
        C.load_config("demo", ["train.iters"])
    with pytest.raises(ConfigError, match="must be a section"):
        C.load_config("demo", ["train=5"])
    with pytest.raises(ConfigError, match="config file not found; did you mean demo"):
        C.load_config("dmeo")
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        C.load_config(broken)
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    with pytest.raises(ConfigError, match="empty.yaml: the config is empty"):
        C.load_config(empty)


@pytest.mark.parametrize(
    "override, shown",
    [
        ("model.dropout=1.5", "model.dropout' must be in [0, 1), got 1.5"),
        ("train.poly_power=-1", "train.poly_power' must be >= 0, got -1"),
        ("train.head_lr_mult=-2", "train.head_lr_mult' must be positive, got -2"),
        ("train.momentum=1", "train.momentum' must be in [0, 1), got 1"),
        ("train.aux_weight=-0.1", "train.aux_weight' must be >= 0"),
        ("model.kernel_size=4", "model.kernel_size' must be a positive odd number, got 4"),
        ("model.rates=[1,0]", "model.rates' must be >= 1 each, got [1, 0]"),
        ("model.output_stride=4", "model.output_stride' must be 8, 16 or 32, got 4"),
        ("model.forget_bias=inf", "model.forget_bias' must be a finite number"),
        ("model.chrono_steps=2", "model.chrono_steps' must be 0 or >= 3, got 2"),
        ("eval.crop_size=16", "eval.crop_size' must be at least 32, got 16"),
    ],
)
def test_out_of_range_values_name_the_key_the_value_and_the_range(override, shown):
    with pytest.raises(ConfigError) as error:
        C.load_config("demo", [override])
    assert shown in str(error.value) and "\n" not in str(error.value)


def test_saved_config_round_trips(tmp_path):
    cfg = C.load_config("nuclei", ["train.iters=11"])
    path = C.save_config(cfg, tmp_path / "config.yaml")
    assert C.to_plain(C.load_config(path)) == C.to_plain(cfg)
    assert C.to_plain(C.from_plain(C.to_plain(cfg))) == C.to_plain(cfg)


@pytest.mark.parametrize(
    "argv,hint",
    [
        (["trian"], "did you mean train?"),
        (["bench", "ablation", "nucli"], "did you mean nuclei?"),
        (["bench", "speed", "--sections", "head"], "did you mean heads?"),
    ],
)
def test_misspelt_command_line_choices_name_the_close_match(argv, hint, capsys):
    from pdn.cli.main import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "invalid choice" in error and error.endswith(hint)


def test_one_override_rule_gives_the_same_dataset_in_train_eval_and_data_check():
    """``data.options={...}`` replaces the options and ``data.options.KEY=V`` sets one, whether
    the override goes to pdn train, to pdn eval (on a checkpoint's stored config) or, as
    ``--option``, to pdn data check (before: eval merged the mapping into the old options)."""
    from pdn.cli.data import parse_option
    from pdn.engine.evaluate import resolve_config

    stored = C.to_plain(C.load_config("demo", ["data.options={size: 64, num_samples: 8}"]))
    for overrides, options in (
        (["data.options={size: 48}"], {"size": 48}),
        (["data.options.size=48"], {"size": 48, "num_samples": 8}),
    ):
        trained = C.to_plain(C.apply_overrides(C.from_plain(stored), overrides))["data"]["options"]
        evaluated = resolve_config(stored, overrides)["data"]["options"]
        assert trained == evaluated == options
    assert dict([parse_option("size=48"), parse_option("cue_segments=8")]) == {
        "size": 48,
        "cue_segments": 8,
    }
    assert parse_option("scale=1e3")[1] == parse_option_value("1e3")


def parse_option_value(raw: str):
    return C.parse_override(f"x={raw}")["x"]
