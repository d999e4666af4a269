"""Training across processes: a SIGKILLed run resumed in a fresh process ends bit-identical to an
uninterrupted one, and 2 DDP processes (gloo, CPU) match 1 process with the same global batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from layouts import random_image, write_folder
from pdn.engine import checkpoint as ck
from pdn.models import build_model

# Runs ``pdn`` in a fresh interpreter; with KILL_AT > 0 the process SIGKILLs itself inside the
# KILL_AT-th training step (a hard crash: no handler runs, nothing is saved).
LAUNCHER = """
import os, signal, sys
import pdn.engine.trainer as trainer
kill_at = int(sys.argv[1])
if kill_at:
    original, calls = trainer.training_loss, [0]
    def training_loss(*args, **kwargs):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)
    trainer.training_loss = training_loss
from pdn.cli.main import main
sys.exit(main(sys.argv[2:]))
"""

SMALL = [
    "data.options={size: 64, num_samples: 16}",
    "data.crop_size=48",
    "data.scale_range=[0.75,1.25]",
    "data.jitter=true",
    "data.num_workers=0",
    "model.channels=16",
    "train.log_interval=1",
]


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _pdn(args: list[str], kill_at: int = 0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", LAUNCHER, str(kill_at), *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )


def _train_losses(run: Path) -> list[tuple[int, float]]:
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [(r["iter"], r["loss"]) for r in records if r["kind"] == "train"]


def test_sigkill_and_resume_is_identical_to_an_uninterrupted_run(tmp_path):
    """Dropout, random scale / crop / flip / jitter and an evaluation in between all draw random
    numbers; the resumed run must still reproduce every one of them."""
    args = ["train", *SMALL, "train.iters=7", "train.batch_size=2", "train.checkpoint_interval=2"]
    args += ["train.eval_interval=3", "model.dropout=0.5"]
    reference = _pdn([*args, "--out", str(tmp_path / "reference")])
    assert reference.returncode == 0, reference.stderr

    crashed = _pdn([*args, "--out", str(tmp_path / "crashed")], kill_at=6)  # killed in step 6
    assert crashed.returncode == -signal.SIGKILL
    assert ck.load_checkpoint(tmp_path / "crashed" / "last.pt")["iteration"] == 4

    stale = tmp_path / "crashed" / ".last.pt.abc123.tmp"  # a partial write cut short by a kill
    stale.write_bytes(b"partial")
    # the killed process held the run directory's lock; the kernel released it at the kill
    resumed = _pdn([*args, "--out", str(tmp_path / "crashed"), "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert not stale.exists()
    assert "resuming" in resumed.stderr and "at iteration 4/7" in resumed.stderr

    want = ck.load_checkpoint(tmp_path / "reference" / "last.pt")
    got = ck.load_checkpoint(tmp_path / "crashed" / "last.pt")
    assert got["iteration"] == want["iteration"] == 7
    assert want["model"].keys() == got["model"].keys()
    for key, value in want["model"].items():
        assert torch.equal(got["model"][key], value), key
    for index, state in want["optimizer"]["state"].items():  # AdamW moments and step counts
        for name, value in state.items():
            assert torch.equal(got["optimizer"]["state"][index][name], value), (index, name)
    # the killed run's log lines after its checkpoint were dropped: one uninterrupted history
    assert _train_losses(tmp_path / "crashed") == _train_losses(tmp_path / "reference")


@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="needs the gloo backend")
def test_two_ddp_processes_match_one_process_with_the_same_global_batch(tmp_path):
    """Two processes with 2 images each vs one process with 4, for 3 steps.

    The data order makes both see the same 4 images per step, identically augmented, and the loss
    is normalised by the labelled pixels of the global batch, so the averaged gradients agree.
    Two things would still differ and are switched off here: BatchNorm statistics (plain
    BatchNorm on the CPU normalises each process's 2 images by their own statistics; SyncBatchNorm
    only exists for GPUs), so the test sets ``train.freeze_bn=true`` (BatchNorm uses its running
    statistics, like in eval mode, and only its affine weights train); and dropout masks, which
    come from per-rank RNG streams, so ``model.dropout=0`` and no aux head (its dropout is fixed).
    What remains is float summation order (gloo's all-reduce vs one batch): parameters must agree
    within 1e-5 absolute after 3 steps.
    """
    common = [*SMALL, "train.iters=3", "train.freeze_bn=true", "model.dropout=0", "model.aux=false"]
    common += ["train.checkpoint_interval=0", "train.eval_interval=0", "data.scale_range=[1,1]"]
    single = subprocess.run(
        [
            sys.executable,
            "-m",
            "pdn",
            "train",
            *common,
            "train.batch_size=4",
            "--out",
            str(tmp_path / "one"),
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert single.returncode == 0, single.stderr
    launch = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
    ]
    double = subprocess.run(
        [
            *launch,
            "-m",
            "pdn",
            "train",
            *common,
            "train.batch_size=2",
            "--out",
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        env={**_env(), "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert double.returncode == 0, double.stderr

    one = ck.load_checkpoint(tmp_path / "one" / "last.pt")
    two = ck.load_checkpoint(tmp_path / "two" / "last.pt")
    assert two["iteration"] == 3 and two["config"]["train"]["batch_size"] == 2
    worst = max(
        (one["model"][k].double() - v.double()).abs().max().item() for k, v in two["model"].items()
    )
    assert worst < 1e-5, f"parameters differ by up to {worst}"
    # the weights moved (the trainer seeds with train.seed = 0 before building the model)
    torch.manual_seed(0)
    initial = build_model(**one["model_config"]).state_dict()
    moved = max(
        (initial[k] - v).abs().max().item()
        for k, v in one["model"].items()
        if v.is_floating_point()
    )
    assert moved > 1e-3
    # the logged loss is the global batch's: the same in both runs
    (iters_one, losses_one), (iters_two, losses_two) = (
        zip(*_train_losses(tmp_path / name), strict=True) for name in ("one", "two")
    )
    assert iters_one == iters_two == (1, 2, 3)  # rank 0 alone wrote the log
    assert losses_two == pytest.approx(losses_one, rel=1e-5)

    # each process evaluated half of the validation images; the matrices were summed
    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert m1["num_pixels"] == m2["num_pixels"] == 16 * 64 * 64
    assert m2["mIoU"] == pytest.approx(m1["mIoU"], abs=1e-3)


def test_a_bad_file_with_two_workers_ends_the_run_with_one_line(tmp_path):
    """A worker's DataError used to hang the run at exit (multiprocessing waited for workers that
    ignore SIGTERM); now it ends promptly with the one line num_workers=0 gives."""
    rng = np.random.default_rng(0)
    samples = [
        (f"s{k}", random_image(48, 48, k), rng.integers(0, 3, (48, 48), dtype=np.uint8))
        for k in range(6)
    ]
    pairs = write_folder(tmp_path / "data", "train", samples)
    pairs[3][0].write_bytes(b"not an image")
    args = ["train", "model.arch=fcn", "model.backbone=tiny", "data.name=folder"]
    args += [f"data.root={tmp_path / 'data'}", "data.options={}", "data.val_split=null"]
    args += ["data.crop_size=32", "train.iters=20", "train.batch_size=2", "train.device=cpu"]
    args += ["data.check_files=false"]  # the up-front scan would find the file first
    for workers in (2, 0):
        done = _pdn([*args, f"data.num_workers={workers}", "--out", str(tmp_path / f"w{workers}")])
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        expected = f"pdn train: error: {pairs[3][0]}: cannot read image "
        expected += "(not an image format Pillow recognises, or corrupt)"
        assert lines[-1] == expected and "Traceback" not in done.stderr, done.stderr
