"""``pdn bench``: the FLOP accounting, the exponent fit and the memory measure are exact on cases
worked out by hand; the ablation and speed commands run end to end on tiny settings."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from pdn.bench.ablation import (
    TASKS,
    VARIANTS,
    Row,
    check_reusable,
    markdown_table,
    overrides_for,
    select_variants,
    train_run,
)
from pdn.bench.speed import (
    Budget,
    dense_conv_flops,
    diffusion_flops,
    end_to_end_table,
    fit_exponent,
    measure,
    run_end_to_end,
    run_scaling,
)
from pdn.bench.timing import time_interleaved, training_memory
from pdn.cli.main import main
from pdn.engine.config import load_config, save_config
from pdn.errors import ConfigError
from pdn.models import DiffusionLayer


def _counted_flops(module: nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(x)
    return counter.get_total_flops()


@pytest.mark.parametrize("height,width", [(6, 6), (5, 7)])
def test_diffusion_flops_match_the_executed_convolutions(height: int, width: int) -> None:
    """With contiguous taps (rate 1) every multiplied tap is useful: PyTorch's own FLOP counter must
    agree exactly. With rates (1, 2, 4) the grouped conv1d also multiplies the zero taps at +-3,
    which the useful count leaves out: 7 of 9 taps."""
    x = torch.randn(1, 16, height, width)
    dense = DiffusionLayer(16, hidden=4, rates=(1,), kernel_size=3).eval()
    assert diffusion_flops(dense, height, width) == _counted_flops(dense, x)
    atrous = DiffusionLayer(16, hidden=4, rates=(1, 2, 4)).eval()
    counted = _counted_flops(atrous, x)
    useful = diffusion_flops(atrous, height, width)
    one_tap = diffusion_flops(DiffusionLayer(16, hidden=4, kernel_size=1), height, width)
    per_tap = (useful - one_tap) // 6  # 7 useful taps against 1
    assert counted - useful == 2 * per_tap
    conv = nn.Conv2d(16, 16, 3, padding=1, bias=False)
    assert dense_conv_flops(16, height, width) == _counted_flops(conv, x)


def test_exponent_fit_recovers_a_power_law() -> None:
    pixels = [1e4, 4e4, 9e4, 2.5e5]
    assert fit_exponent(pixels, [3e-7 * p**1.25 for p in pixels]) == pytest.approx(1.25, abs=1e-9)


def test_training_memory_counts_what_autograd_saves() -> None:
    """Conv -> BatchNorm -> ReLU saves the conv output (for BatchNorm) and the ReLU output, plus
    BatchNorm's two per-channel statistics; the input and the weights are not counted."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()).train()
    x = torch.randn(2, 3, 10, 12)
    activation = 2 * 8 * 10 * 12 * 4
    assert training_memory(model, x) == 2 * activation + 2 * 8 * 4


def test_interleaved_timing_calls_each_once_per_round_starting_one_further_on() -> None:
    order: list[str] = []
    calls = {name: (lambda name=name: order.append(name)) for name in "abc"}
    timings = time_interleaved(calls, torch.device("cpu"), warmup=1, repeats=3)
    assert "".join(order) == "abc" + "bca" + "cab" + "abc"
    assert sorted(timings) == ["a", "b", "c"]
    assert all(len(timing.seconds) == 3 for timing in timings.values())


@pytest.mark.parametrize("seconds,rounds", [(0.0, 3), (1e9, 20)])
def test_speed_measure_times_every_competitor_for_the_same_rounds(
    seconds: float, rounds: int
) -> None:
    """One sizing round, ``warmup - 1`` untimed rounds, then the budget's rounds clamped to
    ``[min_repeats, max_repeats]``, every call once in each."""
    order: list[str] = []
    calls = {name: (lambda name=name: order.append(name)) for name in "ab"}
    budget = Budget(seconds=seconds, warmup=2, min_repeats=3, max_repeats=20)
    timings = measure(calls, torch.device("cpu"), budget)
    assert order.count("a") == order.count("b") == 1 + 1 + rounds
    assert [len(timings[name].seconds) for name in "ab"] == [rounds, rounds]


def test_speed_scaling_measures_an_arch_named_twice_once() -> None:
    budget = Budget(seconds=0.0, warmup=1, min_repeats=1, max_repeats=1)
    results = run_scaling(
        ["fcn", "fcn"], "tiny", [32, 48], device=torch.device("cpu"), budget=budget
    )
    assert [result["model"] for result in results] == ["fcn-tiny"]
    assert [point["size"] for point in results[0]["points"]] == [32, 48]


def test_end_to_end_times_every_precision_of_the_same_weights_in_one_run() -> None:
    budget = Budget(seconds=0.0, warmup=1, min_repeats=1, max_repeats=1)
    rows = run_end_to_end(
        ["pdn", "aspp"], "tiny", 32, device=torch.device("cpu"), budget=budget,
        precisions=["fp32", "bf16", "fp32"],
    )  # fmt: skip
    assert [(row["arch"], row["precision"]) for row in rows] == [
        ("pdn", "fp32"), ("aspp", "fp32"), ("pdn", "bf16"), ("aspp", "bf16"),
    ]  # fmt: skip
    assert rows[0]["parameters"] == rows[2]["parameters"] != rows[1]["parameters"]
    assert rows[2]["model"] == "pdn-tiny (bf16 autocast)"


def test_end_to_end_table_relates_rows_within_and_across_precisions() -> None:
    def row(arch: str, precision: str, ms: float) -> dict:
        model = f"{arch} {precision}"
        return {"model": model, "arch": arch, "precision": precision, "size": 8, "parameters": 1e6,
                "forward_ms": ms}  # fmt: skip

    table = end_to_end_table(
        [row("pdn", "fp32", 30), row("aspp", "fp32", 10), row("pdn", "bf16", 15),
         row("aspp", "bf16", 6)]
    )  # fmt: skip
    lines = table.splitlines()
    assert lines[0].endswith("| relative to the last row of its precision | relative to fp32 |")
    assert [line.split("|")[-3:-1] for line in lines[2:]] == [
        [" 3.00 ", " 1.00 "], [" 1.00 ", " 1.00 "], [" 2.50 ", " 0.50 "], [" 1.00 ", " 0.60 "],
    ]  # fmt: skip
    single = end_to_end_table([row("pdn", "fp32", 30), row("aspp", "fp32", 10)])
    assert single.splitlines()[0].endswith("| relative to the last row |")
    assert single.splitlines()[2].endswith("| 3.00 |")


def test_ablation_variants_cover_the_issue() -> None:
    names = [variant.name for variant in VARIANTS]
    assert names[:3] == ["fcn", "aspp", "ppm"]
    assert {"pdn (sweep, L=1)", "pdn (sweep, L=2)", "pdn (sweep, L=3)"} <= set(names)
    assert any("layerwise" in n for n in names) and any("rates=(1,)" in n for n in names)
    assert any("2 directions" in n for n in names)
    with pytest.raises(ConfigError, match="did you mean sweep2"):
        select_variants(["swep2"])


def test_ablation_costs_only_trains_nothing_and_counts_the_deployed_parameters(
    tmp_path, capsys
) -> None:
    from pdn.bench.timing import count_parameters
    from pdn.models import build_model

    out = tmp_path / "ablation"
    argv = ["bench", "ablation", "nuclei", "--variants", "fcn", "aspp", "--costs-only"]
    assert main([*argv, "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert not out.exists()
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1] for line in lines if line[:2] == "| "}
    rows.pop("model")
    assert list(rows) == ["fcn", "aspp"]
    fcn = build_model("fcn", 2, backbone="tiny", aux=False)
    assert rows["fcn"] == f"{count_parameters(fcn) / 1e6:.2f} M"


def test_ablation_command_trains_scores_and_resumes(tmp_path, capsys) -> None:
    """Two seeds of one variant on nuclei, a few iterations each: a table row with the mean and std
    of the two runs' held-out mIoU; a second call reuses the finished runs instead of training."""
    argv = ["bench", "ablation", "nuclei", "--variants", "fcn", "--seeds", "0", "1"]
    argv += ["--iters", "3", "--out", str(tmp_path)]
    assert main(argv) == 0
    folder = tmp_path / "nuclei-tiny-3iters"  # not the config's budget: a folder of its own
    scores = [
        json.loads((folder / "fcn" / f"seed{s}" / "metrics.json").read_text())["mIoU"]
        for s in (0, 1)
    ]
    results = json.loads((folder / "results.json").read_text())
    row = results["rows"][0]
    assert row["name"] == "fcn" and row["mean"] == pytest.approx(sum(scores) / 2)
    assert row["std"] == pytest.approx(abs(scores[0] - scores[1]) / math.sqrt(2))
    table = capsys.readouterr().out
    assert f"| fcn | {100 * row['mean']:.1f} ± {100 * row['std']:.1f} |" in table
    log = (folder / "fcn" / "seed0" / "train.log").read_text()
    assert main(argv) == 0
    assert (folder / "fcn" / "seed0" / "train.log").read_text() == log
    assert markdown_table([]) == ""


def test_ablation_refuses_a_folder_that_holds_another_runs_scores(tmp_path) -> None:
    """A finished run is reused only when its stored config is this call's (up to keys that do
    not change the run, and keys the stored file predates); otherwise its old score would be
    passed off as the new task's."""
    task, variant = TASKS["paths"], next(v for v in VARIANTS if v.key == "aspp")
    overrides = overrides_for(task, "tiny", variant, 0, None)
    run = tmp_path / "aspp" / "seed0"
    save_config(
        load_config(task.config, [*overrides, "data.options.size=128"]), run / "config.yaml"
    )
    (run / "metrics.json").write_text(json.dumps({"mIoU": 0.29, "per_class": {}}))
    with pytest.raises(ConfigError, match=r"data.options.size=128, but this call asks for 256"):
        train_run(task.config, overrides, run)
    stored = load_config(task.config, [*overrides, "train.device=cuda", "train.log_interval=7"])
    save_config(stored, run / "config.yaml")
    assert train_run(task.config, overrides, run)["mIoU"] == 0.29  # reused as it is
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text.replace("  backbone_frozen_iters: 0\n", ""))
    check_reusable(task.config, overrides, run)  # a file from before that option: its default
    frozen = [*overrides, "train.backbone_frozen_iters=1000"]  # ... which this call changes
    with pytest.raises(ConfigError, match=r"backbone_frozen_iters=0, but this call asks for 1000"):
        check_reusable(task.config, frozen, run)
    with pytest.raises(ConfigError, match=r"train.seed=0, but this call asks for 1"):
        check_reusable(task.config, overrides_for(task, "tiny", variant, 1, None), run)


def test_ablation_table_gives_no_spread_for_one_seed() -> None:
    """A sample standard deviation of one score is undefined: the row's std is None (results.json
    writes null) and the table prints the score alone instead of ± 0.0."""
    row = Row("fcn", "fcn", {0: 0.5}, 160_000, 2.0, (64, 64), torch_threads=1)
    assert row.std is None
    table = markdown_table([row]).splitlines()
    assert table[0].startswith("| model | mIoU % (1 seed) | per seed |")
    assert table[2] == "| fcn | 50.0 | 50.0 | 0.16 M | 2.0 |"
    two = Row("fcn", "fcn", {0: 0.5, 1: 0.7}, 160_000, 2.0, (64, 64), torch_threads=1)
    assert "| fcn | 60.0 ± 14.1 | 50.0 / 70.0 |" in markdown_table([two])


def test_ablation_calls_with_other_variants_build_one_table(tmp_path, capsys) -> None:
    """A call with another variant adds its row to results.json and table.md and keeps the earlier
    row as it was; a call with other seeds cannot share a table with it and replaces the file."""
    base = ["bench", "ablation", "nuclei", "--iters", "2", "--out", str(tmp_path)]
    folder = tmp_path / "nuclei-tiny-2iters"
    assert main([*base, "--variants", "ppm", "--seeds", "0", "1"]) == 0
    first = json.loads((folder / "results.json").read_text())["rows"]
    assert main([*base, "--variants", "fcn", "--seeds", "0", "1"]) == 0
    rows = json.loads((folder / "results.json").read_text())["rows"]
    assert [row["name"] for row in rows] == ["fcn", "ppm"]  # the table's order, not the calls'
    assert rows[1] == first[0]
    table = (folder / "table.md").read_text()
    assert "| fcn |" in table and "| ppm |" in table
    threads = torch.get_num_threads()
    assert f"CPU, {threads} thread{'s' if threads > 1 else ''}) |" in table
    assert main([*base, "--variants", "fcn", "--seeds", "0"]) == 0
    assert "replacing it" in capsys.readouterr().out
    rows = json.loads((folder / "results.json").read_text())["rows"]
    assert [row["name"] for row in rows] == ["fcn"] and list(rows[0]["scores"]) == ["0"]
    assert main([*base[:-4], "--iters", "0", "--out", str(tmp_path)]) == 2
    assert "at least one training iteration" in capsys.readouterr().err


def test_ablation_recipe_reaches_every_run_and_keeps_its_own_folder(tmp_path, capsys) -> None:
    """--set changes the recipe of every run (the run's saved config holds it) and its runs land in
    a folder of their own; a model key, a key with its own option or an unknown key is refused
    before anything trains."""
    base = ["bench", "ablation", "nuclei", "--iters", "2", "--seeds", "0", "--out", str(tmp_path)]
    argv = [*base, "--variants", "fcn", "--set", "train.aux_weight=0", "--set", "train.lr=0.0005"]
    assert main(argv) == 0
    folder = tmp_path / "nuclei-tiny-2iters-train.aux_weight=0-train.lr=0.0005"
    saved = load_config(folder / "fcn" / "seed0" / "config.yaml")
    assert saved.train.aux_weight == 0 and saved.train.lr == pytest.approx(0.0005)
    assert json.loads((folder / "results.json").read_text())["recipe"] == [
        "train.aux_weight=0",
        "train.lr=0.0005",
    ]
    assert "recipe train.aux_weight=0 train.lr=0.0005" in capsys.readouterr().out
    device = overrides_for(TASKS["nuclei"], "tiny", VARIANTS[0], 0, None, ["train.device=cuda"])
    assert load_config("nuclei", device).train.device == "cuda"  # the recipe is not overridden
    for bad, message in (
        ("model.arch=fcn", "must change train.* or data.*"),
        ("train.seed=3", "with --seeds"),
        ("train.aux_weigth=0", "did you mean"),
        ("train.lr", "is not KEY=VALUE"),
    ):
        assert main([*base, "--set", bad]) == 2
        assert message in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == [folder.name]


def test_ablation_init_from_starts_each_run_from_its_first_stage(tmp_path, capsys) -> None:
    """--init-from DIR starts each variant and seed from the run of the same variant and seed in
    DIR, in a folder of its own; a missing first-stage run is refused before anything trains."""
    base = ["bench", "ablation", "nuclei", "--iters", "2", "--seeds", "0", "--out", str(tmp_path)]
    assert main([*base, "--variants", "fcn", "--out", str(tmp_path / "stage1")]) == 0
    first = tmp_path / "stage1" / "nuclei-tiny-2iters"
    assert main([*base, "--variants", "fcn", "--init-from", str(first)]) == 0
    folder = tmp_path / "nuclei-tiny-2iters-from-nuclei-tiny-2iters"
    start = (first / "fcn" / "seed0" / "last.pt").resolve()
    assert load_config(folder / "fcn" / "seed0" / "config.yaml").train.init_from == str(start)
    assert f"tensors from {start}" in (folder / "fcn" / "seed0" / "train.log").read_text()
    assert json.loads((folder / "results.json").read_text())["init_from"] == str(first)
    assert f"each run started from its run in {first}" in capsys.readouterr().out
    for argv, message in (
        (
            ["--variants", "fcn", "aspp", "--init-from", str(first)],
            "no finished run of aspp seed 0",
        ),
        (["--init-from", str(tmp_path / "nowhere")], "no such ablation folder"),
        (["--set", f"train.init_from={start}"], "with --init-from"),
    ):
        assert main([*base, *argv]) == 2
        assert message in capsys.readouterr().err
    assert not (folder / "aspp").exists()
    (first / "fcn" / "seed0" / "metrics.json").unlink()  # as if the first stage was interrupted
    assert main([*base, "--variants", "fcn", "--init-from", str(first), "--iters", "3"]) == 2
    assert "no finished run of fcn seed 0" in capsys.readouterr().err


def test_speed_command_prints_every_section(capsys) -> None:
    argv = ["bench", "speed", "--channels", "16", "--sizes", "12", "--batches", "1"]
    argv += ["--efficiency-size", "12", "--backbone", "tiny", "--e2e-size", "48"]
    argv += ["--scaling-sizes", "48", "64", "--budget", "0.01", "--device", "cpu"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for header in ("| diffusion stack (L=2) |", "| aspp head |", "| ppm head |", "stack / conv"):
        assert header in out
    assert "| pdn-tiny |" in out and "| aspp-tiny |" in out
    assert "pdn-tiny ms | fcn-tiny ms" in out and "fitted exponent" in out


def test_speed_command_refuses_bad_sizes(capsys) -> None:
    assert main(["bench", "speed", "--sizes", "0"]) == 2
    assert "must be positive" in capsys.readouterr().err


def test_speed_command_times_whole_models_under_bf16(capsys) -> None:
    argv = ["bench", "speed", "--sections", "e2e", "scaling", "--backbone", "tiny"]
    argv += ["--e2e-size", "48", "--scaling-sizes", "48", "64", "--budget", "0.01"]
    assert main([*argv, "--device", "cpu", "--precision", "bf16"]) == 0
    out = capsys.readouterr().out
    assert "| pdn-tiny (bf16 autocast) |" in out and "| aspp-tiny (bf16 autocast) |" in out
    assert main([*argv, "--device", "cpu", "--precision", "fp32", "bf16"]) == 0
    out = capsys.readouterr().out
    assert "| pdn-tiny | 1 x 3 x 48 x 48 |" in out and "relative to fp32 |" in out
    assert "| pdn-tiny (bf16 autocast) ms |" in out  # the scaling table's column
    assert main([*argv, "--device", "cpu", "--precision", "fp16"]) == 2
    assert "--precision fp16 needs a CUDA device" in capsys.readouterr().err
