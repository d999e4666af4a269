"""What a training run reports: a progress bar (or plain lines off a terminal), a JSONL scalar log,
and TensorBoard events when ``tensorboard`` is installed. Only rank 0 creates these."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm


class ScalarLog:
    """Append-only ``log.jsonl``: one JSON object per line, ``{"iter": t, "kind": ..., ...}``.

    On resume, :meth:`truncate_after` drops the records a killed run wrote after its last
    checkpoint, so that the log reads as one uninterrupted run.
    """

    def __init__(self, path: str | Path, *, tensorboard: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = _tensorboard_writer(self.path.parent) if tensorboard else None

    def truncate_after(self, iteration: int) -> None:
        """Keep only the records with ``iter <= iteration``."""
        if not self.path.is_file():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line).get("iter", 0) <= iteration:
                    kept.append(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
        self.path.write_text("".join(f"{line}\n" for line in kept))

    def write(self, iteration: int, kind: str, **scalars: Any) -> None:
        """Append one record; numeric scalars also go to TensorBoard as ``kind/name``."""
        record = {"iter": int(iteration), "kind": kind, "time": round(time.time(), 3), **scalars}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self._writer is not None:
            for name, value in scalars.items():
                if (
                    isinstance(value, int | float)
                    and not isinstance(value, bool)
                    and math.isfinite(value)
                ):
                    self._writer.add_scalar(f"{kind}/{name}", value, iteration)
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _tensorboard_writer(directory: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(log_dir=str(directory / "tensorboard"))


class Progress:
    """A tqdm bar with loss, lr and ETA on a terminal; off a terminal, one plain line every
    ``every`` iterations (so CI logs stay readable). Silent when ``enabled`` is False."""

    def __init__(self, *, start: int, total: int, every: int, enabled: bool = True):
        self.enabled = enabled
        self.total, self.every = total, max(1, every)
        self._tty = enabled and sys.stderr.isatty()
        self._bar = (
            tqdm(
                total=total,
                initial=start,
                desc="train",
                unit="it",
                dynamic_ncols=True,
                smoothing=0.05,  # an ETA from the recent rate, not from the slow first steps
            )
            if self._tty
            else None
        )
        self._start_iter, self._start_time = start, time.monotonic()
        self._first: tuple[int, float] | None = None

    def update(self, iteration: int, **values: float) -> None:
        """Report that ``iteration`` steps are done, with scalars such as ``loss`` and ``lr``."""
        if not self.enabled:
            return
        shown = {k: f"{v:.4g}" for k, v in values.items()}
        if self._bar is not None:
            self._bar.set_postfix(shown, refresh=False)
            self._bar.update(iteration - self._bar.n)
        elif iteration % self.every == 0 or iteration == self.total:
            eta = self._eta(iteration)
            fields = "  ".join(f"{k} {v}" for k, v in shown.items())
            print(
                f"iter {iteration}/{self.total}  {fields}  eta {_duration(eta)}",
                file=sys.stderr,
                flush=True,
            )

    def _eta(self, iteration: int) -> float:
        """Seconds left, from the rate since the first reported step: the first step (start-up,
        first allocations) and an evaluation before it do not inflate the estimate."""
        now = time.monotonic()
        if self._first is None:
            self._first = (iteration, now)
            done, elapsed = iteration - self._start_iter, now - self._start_time
        else:
            done, elapsed = iteration - self._first[0], now - self._first[1]
        return elapsed / done * (self.total - iteration) if done > 0 else 0.0

    def write(self, message: str) -> None:
        """Print a line without breaking the bar."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
