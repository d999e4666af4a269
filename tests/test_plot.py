"""``pdn plot``: the curves of runs from their log.jsonl, as one PNG."""

from __future__ import annotations

import json

from PIL import Image

from pdn.cli.main import main
from pdn.engine.plot import RunLog, legend_names, line_chart


def _write_log(run, records) -> None:
    run.mkdir()
    lines = [json.dumps(r) for r in records] + ['{"iter": 9, "kind": "tr']  # cut short by a kill
    (run / "log.jsonl").write_text("\n".join(lines) + "\n")


def test_plot_draws_every_run_on_one_png(tmp_path, capsys) -> None:
    for name, scale in (("a", 1.0), ("b", 2.0)):
        records = []
        for it in (0, 50, 100):
            records.append({"iter": it, "kind": "reach", "cue_share": 0.01 * scale * (1 + it)})
            if it:
                records.append(
                    {
                        "iter": it,
                        "kind": "train",
                        "loss_main": scale / it,
                        "loss_aux": 1.0,
                        "lr": 0.01 - it * 1e-4,
                    }
                )
        records.append({"iter": 100, "kind": "val", "mIoU": 0.5 * scale})
        _write_log(tmp_path / name, records)
    out = tmp_path / "curves.png"
    assert main(["plot", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    picture = Image.open(out).convert("RGB")
    assert picture.width >= 1000 and picture.height >= 600
    colours = {c for _, c in picture.getcolors(1 << 20)}
    assert (31, 119, 180) in colours and (214, 39, 40) in colours  # one colour per run
    log = RunLog.read(tmp_path / "a")
    assert log.series("reach", "cue_share") == [(0.0, 0.01), (50.0, 0.51), (100.0, 1.01)]
    assert log.series("train", "nothing") == []


def test_plot_of_a_folder_without_a_log_is_one_line(tmp_path, capsys) -> None:
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "no log.jsonl" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_legend_names_take_as_many_folders_as_tell_the_runs_apart(tmp_path) -> None:
    """Runs in folders of the same name are told apart by their parents, every run alike; a
    log file stands for its folder."""
    runs = [
        tmp_path / "chrono" / "seed0",
        tmp_path / "chrono" / "seed1",
        tmp_path / "aspp" / "seed0",
    ]
    for run in [*runs, tmp_path / "a", tmp_path / "b"]:
        run.mkdir(parents=True)
    assert legend_names([tmp_path / "a", tmp_path / "b"]) == ["a", "b"]
    assert legend_names(runs) == ["chrono/seed0", "chrono/seed1", "aspp/seed0"]
    assert legend_names([runs[0] / "log.jsonl", runs[2]]) == ["chrono/seed0", "aspp/seed0"]


def test_dots_of_equal_scores_stay_apart() -> None:
    """Two runs with the same final mIoU: the second dot is a ring around the first, so both
    colours show."""
    red, blue = (214, 39, 40), (31, 119, 180)
    lines = [("a", [(100.0, 0.5)], red, False), ("b", [(100.0, 0.5)], blue, False)]
    chart = line_chart("validation mIoU", lines, x_max=100.0)
    colours = {c for _, c in chart.getcolors(1 << 20)}
    assert red in colours and blue in colours
