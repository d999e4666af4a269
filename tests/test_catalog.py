"""``pdn list`` and ``pdn config``: what exists, and a config as pdn train resolves it."""

from __future__ import annotations

import yaml

from pdn.cli.main import main
from pdn.data import list_datasets
from pdn.engine.config import packaged_configs
from pdn.models import list_architectures, list_backbones


def test_list_names_everything_with_a_line_each(capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    sections = {line[:-1]: [] for line in out if not line.startswith(" ")}
    assert list(sections) == ["configs", "archs", "backbones", "datasets"]
    current = None
    for line in out:
        if not line.startswith(" "):
            current = line[:-1]
        else:
            name, summary = line.split(maxsplit=1)
            sections[current].append(name)
            assert len(summary) > 10  # a description, not only the name
    assert sections["configs"] == packaged_configs()
    assert sections["archs"] == list_architectures()
    assert sections["backbones"] == list_backbones()
    assert sections["datasets"] == list_datasets()
    assert main(["list", "backbones"]) == 0
    assert capsys.readouterr().out.startswith("backbones:\n")
    assert main(["list", "backbone"]) == 2
    assert "did you mean backbones?" in capsys.readouterr().err


def test_config_prints_the_resolved_yaml(capsys) -> None:
    assert main(["config", "nuclei", "train.iters=7", "model.arch=aspp"]) == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["train"]["iters"] == 7 and resolved["model"]["arch"] == "aspp"
    assert resolved["data"]["name"] == "nuclei" and "eval" in resolved
    assert main(["config", "train.iters=3"]) == 0  # overrides alone: the embedded default
    assert yaml.safe_load(capsys.readouterr().out)["data"]["name"] == "context"
    assert main(["config", "demo", "train.iterz=3"]) == 2
    assert "did you mean train.iters" in capsys.readouterr().err
