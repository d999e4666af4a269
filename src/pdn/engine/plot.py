"""Curves of training runs from their ``log.jsonl``, drawn with Pillow only (``pdn plot``).

One chart per quantity, each run a line of its own colour: the training loss (main head, and the
auxiliary head thin), the learning rate, the validation mIoU and, on the context benchmark, the
cue share (engine/explain.py), which shows the local plateau and the break-away.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from ..errors import PdnError
from .visualize import _font

Points = list[tuple[float, float]]

# (title, record kind, key, companion key drawn thin)
CHARTS: tuple[tuple[str, str, str, str | None], ...] = (
    ("training loss (main; aux thin)", "train", "loss_main", "loss_aux"),
    ("learning rate", "train", "lr", None),
    ("gradient norm (before clipping)", "train", "grad_norm", None),
    ("validation mIoU", "val", "mIoU", None),
    ("cue share (context benchmark)", "reach", "cue_share", None),
)
COLOURS = (
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (255, 127, 14),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (23, 190, 207),
)


@dataclass
class RunLog:
    """One run's scalar log: ``name`` and its records, ``{"iter", "kind", ...}``."""

    name: str
    records: list[dict]

    @classmethod
    def read(cls, run_dir: str | Path) -> RunLog:
        """``RUN_DIR/log.jsonl`` (a line cut short by a kill is skipped); one-line errors."""
        path = Path(run_dir)
        path = path / "log.jsonl" if path.is_dir() else path
        if not path.is_file():
            raise PdnError(f"{run_dir}: no log.jsonl (give a run directory of pdn train)")
        records = []
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "iter" in record and "kind" in record:
                records.append(record)
        name = path.parent.name if path.parent.name else str(path.parent)
        return cls(name, records)

    def series(self, kind: str, key: str) -> Points:
        """``(iteration, value)`` of every finite ``key`` in the records of ``kind``."""
        return [
            (float(r["iter"]), float(r[key]))
            for r in self.records
            if r["kind"] == kind and isinstance(r.get(key), int | float) and math.isfinite(r[key])
        ]


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + k * step for k in range(int((high - first) / step + 1e-9) + 1)]


def _label(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.2e}"


def line_chart(
    title: str,
    lines: Sequence[tuple[str, Points, tuple[int, int, int], bool]],
    *,
    x_max: float,
    size: tuple[int, int] = (520, 300),
) -> Image.Image:
    """One chart: ``lines`` of ``(name, points, colour, thin)`` on shared axes from 0 to
    ``x_max`` iterations; the y range spans the data."""
    width, height = size
    left, right, top, bottom = 64, 14, 26, 34
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = _font(12)
    draw.text((left, 6), title, fill="black", font=font)
    values = [y for _, points, _, _ in lines for _, y in points]
    if not values:
        draw.text((left, height // 2), "not in these logs", fill=(120, 120, 120), font=font)
        return image
    low, high = min(values), max(values)
    if high - low < 1e-12:
        low, high = low - 0.5 * abs(low or 1), high + 0.5 * abs(high or 1)
    pad = 0.05 * (high - low)
    low, high = low - pad, high + pad
    x_max = max(x_max, 1.0)

    def at(x: float, y: float) -> tuple[float, float]:
        return (
            left + (width - left - right) * x / x_max,
            top + (height - top - bottom) * (1 - (y - low) / (high - low)),
        )

    draw.rectangle((left, top, width - right, height - bottom), outline="black")
    for y in _ticks(low, high):
        _, py = at(0, y)
        draw.line((left - 4, py, left, py), fill="black")
        draw.line((left + 1, py, width - right - 1, py), fill=(230, 230, 230))
        draw.text((4, py - 7), _label(y), fill="black", font=font)
    for x in _ticks(0, x_max):
        px, _ = at(x, low)
        draw.line((px, height - bottom, px, height - bottom + 4), fill="black")
        draw.text((px - 12, height - bottom + 6), f"{x:g}", fill="black", font=font)
    draw.text((width - right - 60, height - 16), "iteration", fill="black", font=font)
    dots = 0
    for _, points, colour, thin in lines:
        xy = [at(x, y) for x, y in points]
        if len(xy) == 1:  # each further dot a wider ring, so that equal scores stay visible
            (px, py), radius = xy[0], 3 + 3 * dots
            box = (px - radius, py - radius, px + radius, py + radius)
            draw.ellipse(box, fill=None if dots else colour, outline=colour, width=2)
            dots += 1
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=1 if thin else 2)
    return image


def plot_runs(run_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """Draw every chart of :data:`CHARTS` for the runs, two charts a row, a legend of run names
    below; writes the PNG ``out`` and returns its path."""
    runs = [RunLog.read(d) for d in run_dirs]
    names = legend_names(run_dirs)
    x_max = max((float(r["iter"]) for run in runs for r in run.records), default=1.0)
    charts = []
    for title, kind, key, companion in CHARTS:
        lines = []
        for index, run in enumerate(runs):
            colour = COLOURS[index % len(COLOURS)]
            lines.append((names[index], run.series(kind, key), colour, False))
            if companion:
                lines.append((names[index], run.series(kind, companion), colour, True))
        charts.append(line_chart(title, lines, x_max=x_max))
    chart_w, chart_h = charts[0].size
    font = _font(13)
    legend_h = 10 + 20 * len(runs)
    figure = Image.new(
        "RGB", (2 * chart_w, chart_h * math.ceil(len(charts) / 2) + legend_h), "white"
    )
    for k, chart in enumerate(charts):
        figure.paste(chart, ((k % 2) * chart_w, (k // 2) * chart_h))
    draw = ImageDraw.Draw(figure)
    base = chart_h * math.ceil(len(charts) / 2) + 4
    for index, name in enumerate(names):
        colour = COLOURS[index % len(COLOURS)]
        y = base + 20 * index
        draw.line((64, y + 8, 100, y + 8), fill=colour, width=3)
        draw.text((108, y), name, fill="black", font=font)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.save(path)
    return path


def legend_names(run_dirs: Sequence[str | Path]) -> list[str]:
    """Run names for the legend: the last folders of each run's path (a run folder or its
    ``log.jsonl``), as few as make every name differ, the same number for every run: ``a`` and
    ``b``; ``chrono/seed0``, ``chrono/seed1`` and ``aspp/seed0``."""
    parts = []
    for d in run_dirs:
        path = Path(d).absolute()
        parts.append((path if path.is_dir() else path.parent).parts)
    for depth in range(1, max(len(p) for p in parts) + 1):
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [str(Path(d)) for d in run_dirs]  # the same run given twice
