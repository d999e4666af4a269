"""``pdn train`` end to end on tiny settings: run directory, refusals, NaN handling, signals,
data order. (Kill-and-resume and DDP run in subprocesses: tests/test_train_processes.py.)"""

from __future__ import annotations

import json
import math
import os
import signal

import numpy as np
import pytest
import torch

from pdn.cli.main import main
from pdn.engine import checkpoint as ck
from pdn.engine import seeding
from pdn.engine import trainer as trainer_module
from pdn.engine.config import load_config, model_kwargs
from pdn.errors import CheckpointError
from pdn.models import build_model
from pdn.models.weights import load_matching_weights

# A few seconds on 2 CPU cores: 64 px context scenes, 2 images per step.
TINY = [
    "data.options={size: 64, num_samples: 8}",
    "data.crop_size=64",
    "data.num_workers=0",
    "train.batch_size=2",
    "train.iters=4",
    "train.log_interval=1",
    "model.channels=16",
]


def _train(
    tmp_path, *extra: str, config: str | None = None, resume: bool = False, out: str = "run"
):
    args = ["train", *([config] if config else []), *TINY, *extra, "--out", str(tmp_path / out)]
    return main(args + (["--resume"] if resume else []))


def test_short_train_writes_the_run_directory(tmp_path, capsys):
    recipe = ["train.optimizer=sgd", "train.lr=0.01", "train.head_lr_mult=10"]
    intervals = [
        "train.eval_interval=2",
        "train.checkpoint_interval=2",
        "train.keep_checkpoints=true",
    ]
    assert _train(tmp_path, *recipe, *intervals) == 0
    run = tmp_path / "run"
    kept = ck.load_checkpoint(run / "iter_2.pt")  # the periodic checkpoint of iteration 2, kept
    assert kept["iteration"] == 2 and "optimizer" not in kept
    assert not (run / "iter_4.pt").exists()  # the end of the run is last.pt
    assert {p.name for p in run.iterdir()} >= {
        "config.yaml",
        "last.pt",
        "best.pt",
        "log.jsonl",
        "metrics.json",
    }
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]

    last = torch.load(run / "last.pt", weights_only=True)
    assert last["format"] == ck.FORMAT and last["iteration"] == 4
    assert last["classes"][0] == "background" and len(last["palette"]) == 5
    assert last["config"]["train"]["iters"] == 4
    assert {"optimizer", "scheduler", "scaler", "rng"} <= set(last)
    assert "momentum_buffer" in last["optimizer"]["state"][0]  # SGD with momentum
    best = ck.load_checkpoint(run / "best.pt")
    assert "optimizer" not in best and best["metrics"]["mIoU"] is not None

    model = ck.model_from_checkpoint(last)
    assert model(torch.rand(1, 3, 40, 56)).shape == (1, 5, 40, 56)

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["iteration"] == 4
    for key in ("aAcc", "mAcc", "mIoU", "fwIoU"):
        assert 0.0 <= metrics[key] <= 1.0
    assert set(metrics["per_class"]) == set(last["classes"])

    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    train_iters = [r["iter"] for r in records if r["kind"] == "train"]
    assert train_iters == [1, 2, 3, 4]
    assert [r["iter"] for r in records if r["kind"] == "val"] == [2, 4]
    reach = [r for r in records if r["kind"] == "reach"]  # the context benchmark's cue share
    assert [r["iter"] for r in reach] == [0, 1, 2, 3, 4]
    assert all(0.0 <= r["cue_share"] <= 1.0 for r in reach)
    assert all(math.isfinite(r["loss"]) and r["lr"] >= 0 for r in records if r["kind"] == "train")
    # poly decay: the head runs at 10x the backbone's rate
    first = next(r for r in records if r["kind"] == "train")
    assert first["lr_head"] == pytest.approx(10 * first["lr"])

    saved = (run / "config.yaml").read_text()
    assert "iters: 4" in saved and "crop_size: 64" in saved
    captured = capsys.readouterr()
    assert "mIoU" in captured.out  # the final table
    header = captured.err.splitlines()[:3]  # what the run is, before its first step
    assert header[0].startswith("pdn train: pdn on tiny (output stride 8)")
    assert "M parameters" in header[0] and "backbone weights: from scratch" in header[0]
    assert "data: context (5 classes), train 8 samples, val 8; crop 64, batch 2" in header[1]
    assert "recipe: sgd lr 0.01 (head x10), 4 iterations; device cpu" in header[2]
    assert f"run directory {run}" in header[2] and "warning" not in captured.err


def _varied_weights(path, overrides) -> str:
    """Weights for the model of ``overrides`` whose predictions mix classes: BatchNorm statistics
    spread, the classifier's weights scaled up and its bias centring the logits on a batch of
    noise images (at initialisation, the bias and the features' common mean decide every
    pixel)."""
    torch.manual_seed(0)
    model = build_model(**model_kwargs(load_config(None, overrides), 5)).eval()
    classifier = model.decode_head.classifier[-1]
    seen = {}
    classifier.register_forward_pre_hook(lambda module, args: seen.update(features=args[0]))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
        classifier.weight.mul_(20)
        model(torch.randn(4, 3, 40, 40))
        mean = seen["features"].mean(dim=(0, 2, 3))
        classifier.bias.copy_(-classifier.weight.flatten(1) @ mean)
    torch.save(model.state_dict(), path)
    return str(path)


def test_training_scores_the_checkpoint_exactly_as_pdn_eval(tmp_path, capsys):
    """The final validation of a run and ``pdn eval`` of its last.pt run one evaluation loop: the
    same confusion matrix and the same metrics.json scores, with data.eval_resize shrinking each
    64 px scene to 40 px before the forward pass and the prediction scored at the mask's size."""
    overrides = [*TINY, "data.eval_resize=40", "train.iters=1", "train.lr=1e-30"]
    overrides.append("train.freeze_bn=true")  # the statistics of _varied_weights stay
    weights = _varied_weights(tmp_path / "varied.pt", overrides)
    cfg = load_config(None, [*overrides, f"train.init_from={weights}"])
    trained = trainer_module.train(cfg, tmp_path / "run")
    assert main(["eval", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--quiet"]) == 0
    evaluated = np.load(tmp_path / "run" / "eval" / "confusion.npy")
    np.testing.assert_array_equal(trained.metrics.confusion, evaluated)
    assert evaluated.sum() == 8 * 64 * 64  # every pixel of the 8 val scenes, at the mask's size
    assert (evaluated.sum(0) > 0).sum() >= 2  # more than one class predicted
    scores = json.loads((tmp_path / "run" / "metrics.json").read_text())
    report = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    assert {key: report[key] for key in scores} == scores
    assert "shorter side 40" in capsys.readouterr().out


def test_existing_run_is_not_overwritten(tmp_path, capsys):
    assert _train(tmp_path) == 0
    capsys.readouterr()
    assert _train(tmp_path) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_resume_refuses_another_model(tmp_path, capsys):
    assert _train(tmp_path) == 0
    capsys.readouterr()
    assert _train(tmp_path, "model.arch=fcn", config="demo", resume=True) == 2
    err = capsys.readouterr().err
    assert "arch 'pdn', the config asks for 'fcn'" in err and err.count("\n") == 1
    # nuclei is another dataset (with 2 classes; the run was made for the context benchmark's 5)
    assert _train(tmp_path, "data.options={}", config="nuclei", resume=True) == 2
    err = capsys.readouterr().err
    assert "the run was trained with data." in err and "data.name" in err and err.count("\n") == 1


def test_resume_refuses_another_recipe_or_data_and_takes_a_longer_run(tmp_path, capsys):
    """A resumed run continues the same run: another learning rate (the restored schedule would
    keep the old one), seed or scene size is refused with the key named, with or without CONFIG;
    more iterations, another device or log interval are taken."""
    assert _train(tmp_path, "data.val_split=null") == 0
    capsys.readouterr()
    for config, change, key in (
        (None, "train.lr=0.5", "train.lr=0.002"),
        ("demo", "train.seed=3", "train.seed=0"),
        ("demo", "data.options={size: 96, num_samples: 8}", "data.options.size=64"),
    ):
        args = ("data.val_split=null", "train.iters=6", change)
        assert _train(tmp_path, *args, config=config, resume=True) == 2
        err = capsys.readouterr().err
        assert f"the run was trained with {key}" in err and err.count("\n") == 1
    assert _train(tmp_path, "data.val_split=null", "train.batch_size=4", resume=True) == 2
    assert "global batch of 2 (train.batch_size=2 x 1 processes)" in capsys.readouterr().err
    assert ck.load_checkpoint(tmp_path / "run" / "last.pt")["iteration"] == 4  # untouched
    longer = ("data.val_split=null", "train.iters=6", "train.log_interval=2", "train.device=cpu")
    assert _train(tmp_path, *longer, config="demo", resume=True) == 0
    assert ck.load_checkpoint(tmp_path / "run" / "last.pt")["iteration"] == 6


def test_resume_of_a_finished_run_continues_with_more_iterations(tmp_path):
    assert _train(tmp_path, "data.val_split=null") == 0
    assert _train(tmp_path, "data.val_split=null", "train.iters=6", resume=True) == 0
    assert ck.load_checkpoint(tmp_path / "run" / "last.pt")["iteration"] == 6


def test_init_from_starts_a_new_run_from_another_runs_weights(tmp_path, capsys):
    """With lr 1e-30 a run started from another run's last.pt ends with that run's weights (BatchNorm
    statistics aside, which move in training mode); a missing or unreadable file is a one-line
    error."""
    assert _train(tmp_path, "data.val_split=null", out="first") == 0
    first = ck.load_checkpoint(tmp_path / "first" / "last.pt")["model"]
    source = str(tmp_path / "first" / "last.pt")
    extra = ("data.val_split=null", "train.lr=1e-30", "train.seed=5", f"train.init_from={source}")
    assert _train(tmp_path, *extra, out="second") == 0
    assert f"tensors from {source}" in capsys.readouterr().err
    second = ck.load_checkpoint(tmp_path / "second" / "last.pt")["model"]
    learned = [k for k in first if not k.endswith(("running_mean", "running_var", "tracked"))]
    assert all(torch.allclose(first[k], second[k], rtol=0, atol=1e-20) for k in learned)
    assert _train(tmp_path, "train.init_from=nowhere.pt", out="third") == 2
    assert "nowhere.pt: weights file not found" in capsys.readouterr().err
    notes = tmp_path / "notes.pt"
    notes.write_text("not weights\n")
    assert _train(tmp_path, f"train.init_from={notes}", out="fourth") == 2
    err = capsys.readouterr().err
    assert f"{notes}: corrupt or not a weights file" in err and len(err.strip().splitlines()) == 1


def test_load_matching_weights_leaves_another_class_count_at_its_initialisation():
    """Fine-tuning to another class count: everything but the classifier is copied, and the
    classifier is named with both shapes; weights of another architecture do not load at all."""
    source = build_model("fcn", 5, backbone="tiny", channels=16, aux=False)
    target = build_model("fcn", 3, backbone="tiny", channels=16, aux=False)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    loaded, kept = load_matching_weights(target, source.state_dict(), "five.pt")
    assert kept and all("(file (5," in k for k in kept)
    for key, value in target.state_dict().items():
        expected = source.state_dict()[key] if key in loaded else before[key]
        assert torch.equal(value, expected)
    with pytest.raises(CheckpointError, match="other.pt: no tensor matches"):
        load_matching_weights(target, {"encoder.w": torch.zeros(2)}, "other.pt")


def test_data_errors_are_one_line(tmp_path, capsys):
    assert _train(tmp_path, "data.name=ade") == 2
    err = capsys.readouterr().err
    assert err.startswith("pdn train: error: unknown dataset 'ade'") and err.count("\n") == 1
    assert (
        _train(tmp_path, "data.name=ade20k", f"data.root={tmp_path / 'missing'}", "data.options={}")
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("pdn train: error:") and "missing" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()  # a run that failed before writing leaves no folder
    (tmp_path / "mine").mkdir()  # a folder the user made stays
    missing = ("data.name=ade20k", f"data.root={tmp_path / 'missing'}", "data.options={}")
    assert _train(tmp_path, *missing, out="mine") == 2
    assert (tmp_path / "mine").is_dir()


def _inject(monkeypatch, at_call: int, action):
    """Wrap the training loss so that ``action(result)`` replaces it on call number ``at_call``."""
    original = trainer_module.training_loss
    calls = {"n": 0}

    def patched(*args, **kwargs):
        calls["n"] += 1
        result = original(*args, **kwargs)
        return action(result) if calls["n"] == at_call else result

    monkeypatch.setattr(trainer_module, "training_loss", patched)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    """A non-finite loss is injected at iteration 3 (test-only monkeypatch of the loss)."""
    _inject(monkeypatch, 3, lambda r: (r[0] * float("nan"), r[1], r[2]))
    assert _train(tmp_path, "train.checkpoint_interval=2", "data.val_split=null") == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress lines
    assert line.startswith("pdn train: error: loss is nan at iteration 3;")
    assert line.endswith("last.pt (iteration 2)")
    last = ck.load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["iteration"] == 2
    assert all(torch.isfinite(t).all() for t in last["model"].values() if t.is_floating_point())


def test_exploding_weights_are_never_saved(tmp_path, capsys):
    """With lr = 1e30 the weights overflow; whatever stops the run, no checkpoint holds NaN/inf."""
    code = _train(tmp_path, "train.lr=1e30", "train.checkpoint_interval=1", "data.val_split=null")
    assert code == 2
    err = capsys.readouterr().err.lower()
    assert "nan" in err or "inf" in err
    last = tmp_path / "run" / "last.pt"
    if last.exists():
        state = ck.load_checkpoint(last)["model"]
        assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())


def test_sigterm_saves_and_exits_cleanly(tmp_path, monkeypatch, capsys):
    """SIGTERM arrives during iteration 2: the step finishes, last.pt is saved, exit code 143."""

    def send(result):
        os.kill(os.getpid(), signal.SIGTERM)
        return result

    _inject(monkeypatch, 2, send)
    assert _train(tmp_path, "data.val_split=null") == 143
    assert "stopped by SIGTERM at iteration 2" in capsys.readouterr().err
    assert ck.load_checkpoint(tmp_path / "run" / "last.pt")["iteration"] == 2
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


def test_batches_depend_only_on_iteration_and_shard_by_rank():
    one = seeding.IterationBatches(10, 4, seed=3, start=0, stop=7)
    ranks = [
        seeding.IterationBatches(10, 2, seed=3, start=0, stop=7, rank=r, world_size=2)
        for r in (0, 1)
    ]
    resumed = seeding.IterationBatches(10, 4, seed=3, start=5, stop=7)
    full = list(one)
    assert list(resumed) == full[5:]
    for t, batch in enumerate(full):
        assert sorted(ranks[0].batch(t) + ranks[1].batch(t)) == sorted(batch)
    # every epoch is a permutation: 10 samples, 4 per step -> epoch 0 is the first 10 positions
    stream = [pair for batch in full for pair in batch]
    assert sorted(i for e, i in stream[:10]) == list(range(10)) and {e for e, _ in stream[:10]} == {
        0
    }
    g1, g2 = seeding.sample_generator(3, 1, 4), seeding.sample_generator(3, 1, 4)
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))


def test_the_cue_probe_does_not_change_training(tmp_path, monkeypatch):
    """The cue share is measured between steps (eval mode, autograd.grad): the weights a run
    ends with are the same with and without it."""
    assert _train(tmp_path, out="probed") == 0
    monkeypatch.setattr(trainer_module.CueProbe, "from_dataset", classmethod(lambda *a, **k: None))
    assert _train(tmp_path, out="plain") == 0
    probed = torch.load(tmp_path / "probed" / "last.pt", weights_only=True)["model"]
    plain = torch.load(tmp_path / "plain" / "last.pt", weights_only=True)["model"]
    assert probed.keys() == plain.keys()
    assert all(torch.equal(probed[k], plain[k]) for k in probed)
    kinds = [json.loads(line)["kind"] for line in (tmp_path / "plain" / "log.jsonl").open()]
    assert "reach" not in kinds


def test_a_run_directory_in_use_is_refused(tmp_path, capsys):
    """A second pdn train in a directory another process trains in gets a one-line error naming
    the holder, and changes nothing there."""
    from pdn.engine.rundir import LOCK_FILE, run_directory_lock

    with run_directory_lock(tmp_path / "run"):
        holder = (tmp_path / "run" / LOCK_FILE).read_text().strip()
        assert holder.startswith(f"pid {os.getpid()} on ")
        for resume in (False, True):
            assert _train(tmp_path, resume=resume) == 2
            err = capsys.readouterr().err
            assert "is in use by another pdn train" in err and holder in err
            assert len(err.strip().splitlines()) == 1
        assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [LOCK_FILE]
    assert _train(tmp_path) == 0  # released at the end of the block


def test_resume_past_the_requested_iterations_is_refused(tmp_path, capsys):
    assert _train(tmp_path) == 0
    capsys.readouterr()
    assert _train(tmp_path, "train.iters=2", resume=True) == 2
    err = capsys.readouterr().err
    assert (
        "already at iteration 4, past train.iters=2" in err and len(err.strip().splitlines()) == 1
    )


def test_a_resnet_from_scratch_with_the_sgd_recipe_is_warned_about(tmp_path, capsys):
    args = ["model.backbone=resnet18", "train.optimizer=sgd", "train.iters=1"]
    assert _train(tmp_path, *args, "data.val_split=null") == 0
    captured = capsys.readouterr()
    err = captured.out + captured.err
    # without a val split there is no best.pt or metrics.json, and the last line says so
    assert f"run directory: {tmp_path / 'run'} (config.yaml, last.pt, log.jsonl)" in captured.out
    assert "warning: the resnet18 backbone starts from scratch" in err
    assert "model.backbone_weights" in err


def test_a_frozen_backbone_keeps_its_weights_while_the_head_learns(tmp_path):
    """``train.backbone_frozen_iters=2``: at step 2 the backbone's weights are its initialisation
    bit for bit while the head's have moved; from step 3 on the backbone trains too."""
    frozen = ["train.backbone_frozen_iters=2", "train.checkpoint_interval=2"]
    assert _train(tmp_path, *frozen, "train.keep_checkpoints=true", "model.aux=false") == 0
    torch.manual_seed(0)  # as the trainer does with train.seed=0 before building the model
    initial = build_model("pdn", 5, backbone="tiny", aux=False, channels=16).state_dict()
    at_2 = ck.load_checkpoint(tmp_path / "run" / "iter_2.pt")["model"]
    at_4 = ck.load_checkpoint(tmp_path / "run" / "last.pt")["model"]
    backbone = [k for k in initial if k.startswith("backbone.") and k.endswith(".weight")]
    head = [k for k in initial if k.startswith("decode_head.") and k.endswith(".weight")]
    assert backbone and head
    assert all(torch.equal(at_2[k], initial[k]) for k in backbone)
    assert any(not torch.equal(at_2[k], initial[k]) for k in head)
    assert any(not torch.equal(at_4[k], initial[k]) for k in backbone)


def _one_step_update(tmp_path, out: str, *extra: str) -> tuple[float, float]:
    """One plain-SGD step (no momentum or decay, lr 0.1 everywhere): the L2 norm of the weight
    change divided by the lr, and the gradient norm that ``log.jsonl`` records for the step."""
    lr = 0.1
    recipe = [
        "train.optimizer=sgd",
        f"train.lr={lr}",
        "train.head_lr_mult=1",
        "train.momentum=0",
        "train.weight_decay=0",
        "train.iters=1",
        "model.aux=false",
    ]
    assert _train(tmp_path, *recipe, *extra, out=out) == 0
    torch.manual_seed(0)  # as the trainer does with train.seed=0 before building the model
    initial = build_model("pdn", 5, backbone="tiny", aux=False, channels=16)
    final = ck.load_checkpoint(tmp_path / out / "last.pt")["model"]
    steps = [(p.detach() - final[name]) / lr for name, p in initial.named_parameters()]
    record = next(
        json.loads(line)
        for line in (tmp_path / out / "log.jsonl").read_text().splitlines()
        if json.loads(line)["kind"] == "train"
    )
    step = float(torch.linalg.vector_norm(torch.cat([s.flatten() for s in steps])))
    return step, record["grad_norm"]


def test_gradient_clipping_bounds_the_step_and_the_log_holds_the_norm(tmp_path, capsys):
    """Without clipping a plain-SGD step moves the weights by lr x the logged gradient norm; with
    ``train.clip_grad_norm`` below that norm it moves them by lr x the limit instead."""
    step, grad_norm = _one_step_update(tmp_path, "free")
    assert grad_norm > 0.01
    assert step == pytest.approx(grad_norm, rel=1e-4)
    limit = grad_norm / 10
    clipped_step, clipped_norm = _one_step_update(
        tmp_path, "clipped", f"train.clip_grad_norm={limit}"
    )
    assert clipped_norm == pytest.approx(grad_norm, rel=1e-5)  # the norm before clipping
    assert clipped_step == pytest.approx(limit, rel=1e-4)
    assert "gradient norm clipped to" in capsys.readouterr().err
    assert _train(tmp_path, "train.clip_grad_norm=-1", out="bad") == 2
    assert "'train.clip_grad_norm' must be >= 0" in capsys.readouterr().err


def test_bf16_training_on_the_cpu_runs_under_autocast(tmp_path, capsys):
    """``train.precision=bf16``: the same steps as fp32 up to bfloat16 rounding (first losses
    differ, by little), said in the run header; fp16 on the CPU is refused in one line."""
    assert _train(tmp_path, "train.precision=bf16", out="bf16") == 0
    printed = capsys.readouterr()
    assert "precision bf16 autocast" in printed.out + printed.err
    assert _train(tmp_path, "train.precision=fp32", out="fp32") == 0

    def first_loss(run: str) -> float:
        rows = [json.loads(line) for line in (tmp_path / run / "log.jsonl").open()]
        return next(row["loss"] for row in rows if row["kind"] == "train")

    bf16, fp32 = first_loss("bf16"), first_loss("fp32")
    assert bf16 != fp32 and abs(bf16 - fp32) < 0.05 * fp32
    capsys.readouterr()
    assert _train(tmp_path, "train.precision=fp16", out="fp16") == 2
    err = capsys.readouterr().err.strip()
    assert "train.precision=fp16 needs a CUDA device" in err and "\n" not in err


def test_class_weighted_loss_is_pytorchs_weighted_mean() -> None:
    """The summed terms over :func:`labelled_weight` equal ``cross_entropy``'s weighted mean,
    ignored pixels left out; without weights, the plain mean over labelled pixels."""
    torch.manual_seed(0)
    logits, aux = torch.randn(2, 5, 6, 7), torch.randn(2, 5, 6, 7)
    target = torch.randint(0, 5, (2, 6, 7))
    target[0, :2] = 255
    weights = torch.tensor([0.05, 1.0, 2.0, 0.0, 1.0])
    total, main_sum, aux_sum = trainer_module.training_loss(logits, aux, target, 0.4, weights)
    denominator = trainer_module.labelled_weight(target, weights)
    for summed, scores in ((main_sum, logits), (aux_sum, aux)):
        expected = torch.nn.functional.cross_entropy(
            scores, target, weight=weights, ignore_index=255
        )
        torch.testing.assert_close(summed / denominator, expected)
    torch.testing.assert_close(total, main_sum + 0.4 * aux_sum)
    plain, _, _ = trainer_module.training_loss(logits, None, target, 0.4)
    assert trainer_module.labelled_weight(target) == float((target != 255).sum())
    expected = torch.nn.functional.cross_entropy(logits, target, ignore_index=255)
    torch.testing.assert_close(plain / trainer_module.labelled_weight(target), expected)


def test_class_weights_of_the_wrong_length_are_refused_in_one_line(tmp_path, capsys):
    assert _train(tmp_path, "train.class_weights=[0.1,1]") == 2
    err = capsys.readouterr().err
    assert "train.class_weights has 2 entries, the dataset has 5 classes (background" in err
    assert err.count("\n") == 1
    assert _train(tmp_path, "train.class_weights=[0.1,1,1,1,1]", "data.val_split=null") == 0
