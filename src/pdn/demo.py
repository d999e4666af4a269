"""``python -m pdn.demo`` (``make demo``): train, evaluate and predict with the embedded default.

1. ``pdn train`` with the embedded default config (``pdn/configs/demo.yaml``): PDN on the tiny
   backbone, on the CPU, on the generated context benchmark, where an object's class is written
   only in a cue stripe at least half the image away (a purely local model cannot exceed mIoU
   11/35 ~= 0.31 there).
2. ``pdn eval`` of the trained checkpoint on the benchmark's held-out ``test`` split (the ``val``
   split chose ``best.pt``, so it is not used for the final score).
3. ``pdn predict`` on a few test scenes, written as PNG files next to their ground truth.

Everything lands in ``demo_out/`` (or ``--out``), which is cleared first. The run takes a few
minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import PdnError

if TYPE_CHECKING:
    from .engine.evaluate import EvalOutcome

NUM_PICTURES = 6


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pdn.demo",
        description="Train PDN on the context benchmark on the CPU, evaluate it on held-out scenes, "
        "and label a few of them.",
    )
    parser.add_argument(
        "--out",
        default="demo_out",
        metavar="DIR",
        help="output folder (cleared first; default demo_out)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides for the training run, e.g. train.iters=200 for a quicker look",
    )
    return parser


def _write_inputs(cfg, folder: Path) -> dict[Path, Any]:
    """Save the first test scenes as ``sceneN.png`` and their ground truth as ``truth/sceneN.png``;
    returns each scene's path with its label array."""
    from .data import build_dataset
    from .engine.visualize import write_samples

    options = dict(cfg.data.options)
    dataset = build_dataset(cfg.data.name, root=cfg.data.root, split="test", **options)
    indices = range(min(NUM_PICTURES, len(dataset)))
    return write_samples(dataset, indices, folder, folder.parent / "truth")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(Path(args.out), args.overrides)
    except PdnError as error:
        print(f"pdn demo: error: {error}", file=sys.stderr)
        return 2


def _run(out: Path, overrides: list[str]) -> int:
    from .engine.config import load_config

    start = time.monotonic()
    cfg = load_config(None, overrides)
    checkpoint = _train(cfg, out)
    if checkpoint is None:
        return 130
    outcome = _evaluate(checkpoint, out)
    failures = _label_scenes(cfg, checkpoint, out)
    if failures:
        for failure in failures:
            print(f"pdn demo: error: {failure}", file=sys.stderr)
        return 2
    elapsed = time.monotonic() - start
    _print_summary(outcome, out, elapsed)
    return 0


def _train(cfg, out: Path) -> Path | None:
    """``pdn train`` into ``out/run`` (the demo's earlier outputs removed first); its
    ``best.pt``, or None when the run was stopped."""
    from .data import CONTEXT_LOCAL_MIOU_CEILING
    from .engine.trainer import train

    for name in ("run", "eval", "inputs", "truth", "predictions"):
        shutil.rmtree(out / name, ignore_errors=True)
    print(
        f"pdn demo: training {cfg.model.arch} on the {cfg.model.backbone} backbone, "
        f"{cfg.train.iters} iterations on the {cfg.train.device} "
        f"({cfg.data.name} benchmark; a purely local model reaches at most mIoU {CONTEXT_LOCAL_MIOU_CEILING:.3f})",
        flush=True,
    )
    trained = train(cfg, out / "run")
    if trained.stopped_by is not None:
        return None
    return out / "run" / "best.pt"


def _evaluate(checkpoint: Path, out: Path) -> EvalOutcome:
    """``pdn eval`` of ``checkpoint`` on the held-out test split, reports in ``out/eval``."""
    from .engine.evaluate import evaluate_checkpoint

    print("\npdn demo: evaluating best.pt on the held-out test split", flush=True)
    return evaluate_checkpoint(
        checkpoint, out_dir=out / "eval", overrides=["data.val_split=test"], progress=False
    )


def _label_scenes(cfg, checkpoint: Path, out: Path) -> list[str]:
    """``pdn predict`` with panels on the first test scenes (written to ``out/inputs``) into
    ``out/predictions``; returns the failures."""
    from .engine.predict import predict_to_folder
    from .engine.segmenter import Segmenter

    inputs = _write_inputs(cfg, out / "inputs")
    segmenter = Segmenter.from_checkpoint(checkpoint, device=cfg.train.device)
    report = predict_to_folder(
        segmenter, list(inputs), out / "predictions", progress=False, panels=True, truths=inputs
    )
    return report.failures


def _print_summary(outcome: EvalOutcome, out: Path, elapsed: float) -> None:
    """The test-split table, whether its mIoU beats a local model, and where the files are."""
    from .data import CONTEXT_LOCAL_MIOU_CEILING

    result = outcome.result
    print(f"\ntest split, {outcome.dataset}:")
    print(result.table())
    verdict = (
        "above"
        if result.mIoU is not None and result.mIoU > CONTEXT_LOCAL_MIOU_CEILING
        else "NOT above"
    )
    print(
        f"\nmIoU {result.mIoU:.4f} on held-out scenes: {verdict} the local-model ceiling "
        f"{CONTEXT_LOCAL_MIOU_CEILING:.4f}, so the network uses long-range context (in 64 px "
        "scenes the tiny backbone alone sees the cue; BENCHMARKS.md compares the heads)."
        if verdict == "above"
        else f"\nmIoU {result.mIoU} on held-out scenes: NOT above the local-model ceiling "
        f"{CONTEXT_LOCAL_MIOU_CEILING:.4f}."
    )
    print(
        f"pictures: {out / 'predictions'} (sceneN_panel.png: scene | truth | prediction | "
        f"overlay with a legend; label maps, overlays, legend.png); inputs in {out / 'inputs'}, "
        f"ground truth in {out / 'truth'}"
    )
    print(
        f"reports: {out / 'eval'} (metrics.json, confusion.npy, confusion.png); run: {out / 'run'}"
    )
    print(f"done in {elapsed / 60:.1f} min")


if __name__ == "__main__":
    sys.exit(main())
