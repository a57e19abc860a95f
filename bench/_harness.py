"""What every benchmark shares: repeat a measurement, summarise it, make a result row, and
write the rows as a table and as ``bench/results.json``.

A benchmark module (``bench/bench_*.py``) exposes ``run(quick: bool) -> list[Result]``; see
``bench/README.md``. A row compares *ours* with a *baseline measured in the same run*: each of
the ``runs`` repetitions measures both back to back (:func:`paired`), so a loaded machine
slows both alike and the ratio stays meaningful. The row's ``ours``/``baseline`` are medians,
its ``ratio`` the median of the per-run ratios, and ``runs`` keeps min/median/max of each.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "Result",
    "Target",
    "machine",
    "paired",
    "percentile",
    "print_table",
    "single",
    "skipped",
    "spread",
    "time_calls",
    "write_json",
]

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Target:
    """What a row must reach. ``kind`` says which figure is checked against ``value``:

    * ``ratio<=`` / ``ratio>=``: ours / baseline;
    * ``ours<=`` / ``ours>=``: ours itself, in the row's unit;
    * ``over<=``: ours − baseline, in the row's unit (an overhead);
    * ``info``: no target, reported for context.
    """

    kind: str
    value: float = 0.0

    def text(self, unit: str) -> str:
        if self.kind == "info":
            return "—"
        figure, op = self.kind[:-2], self.kind[-2:]
        sign = "≤" if op == "<=" else "≥"
        if figure == "ratio":
            return f"ratio {sign} {self.value:g}"
        if figure == "over":
            return f"{sign} baseline + {self.value:g} {unit}"
        return f"{sign} {self.value:g} {unit}"

    def met(self, ours: float, baseline: float | None, ratio: float | None) -> bool | None:
        if self.kind == "info":
            return None
        figure, op = self.kind[:-2], self.kind[-2:]
        if figure == "ratio":
            value = ratio
        elif figure == "over":
            value = None if baseline is None else ours - baseline
        else:
            value = ours
        if value is None or math.isnan(value):
            return None
        return value <= self.value if op == "<=" else value >= self.value


INFO = Target("info")


@dataclass
class Result:
    """One row of the table and of ``results.json``."""

    name: str
    unit: str
    target: Target
    ours_runs: list[float] = field(default_factory=list)
    baseline_runs: list[float] = field(default_factory=list)
    baseline_name: str = ""
    note: str = ""
    skipped: str = ""  # the reason, when the row could not be measured

    @property
    def ours(self) -> float | None:
        return statistics.median(self.ours_runs) if self.ours_runs else None

    @property
    def baseline(self) -> float | None:
        return statistics.median(self.baseline_runs) if self.baseline_runs else None

    @property
    def ratios(self) -> list[float]:
        return [
            o / b
            for o, b in zip(self.ours_runs, self.baseline_runs, strict=False)
            if b and not math.isnan(b)
        ]

    @property
    def ratio(self) -> float | None:
        ratios = self.ratios
        return statistics.median(ratios) if ratios else None

    @property
    def met(self) -> bool | None:
        ours = self.ours
        if ours is None:
            return None
        return self.target.met(ours, self.baseline, self.ratio)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ours": _round(self.ours),
            "baseline": _round(self.baseline),
            "ratio": _round(self.ratio),
            "unit": self.unit,
            "target": self.target.text(self.unit),
            "met": self.met,
            "runs": {
                "count": len(self.ours_runs),
                "ours": spread(self.ours_runs),
                "baseline": spread(self.baseline_runs),
                "ratio": spread(self.ratios),
            },
            "baseline_name": self.baseline_name,
            "note": self.note,
            "skipped": self.skipped or None,
        }


def _round(value: float | None) -> float | None:
    if value is None or math.isnan(value):
        return None
    return float(f"{value:.4g}")


def spread(values: Sequence[float]) -> dict[str, float | None]:
    """min / median / max (None when nothing was measured)."""
    if not values:
        return {"min": None, "median": None, "max": None}
    return {
        "min": _round(min(values)),
        "median": _round(statistics.median(values)),
        "max": _round(max(values)),
    }


def percentile(samples: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by nearest rank."""
    ordered = sorted(samples)
    if not ordered:
        return math.nan
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def time_calls(fn: Callable[[], object], count: int, *, warmup: int = 0) -> list[float]:
    """Seconds each of ``count`` calls of ``fn`` took (after ``warmup`` untimed calls)."""
    for _ in range(warmup):
        fn()
    samples = []
    clock = time.perf_counter
    for _ in range(count):
        start = clock()
        fn()
        samples.append(clock() - start)
    return samples


def paired(
    name: str,
    unit: str,
    target: Target,
    measure: Callable[[], tuple[float, float]],
    runs: int,
    *,
    baseline_name: str = "",
    note: str = "",
) -> Result:
    """Call ``measure() -> (ours, baseline)`` ``runs`` times into one row."""
    row = Result(name, unit, target, baseline_name=baseline_name, note=note)
    for _ in range(runs):
        ours, baseline = measure()
        row.ours_runs.append(ours)
        row.baseline_runs.append(baseline)
    return row


def single(
    name: str, unit: str, target: Target, values: Sequence[float], *, note: str = ""
) -> Result:
    """A row without a baseline (``values``: one per run)."""
    return Result(name, unit, target, ours_runs=list(values), note=note)


def skipped(name: str, unit: str, target: Target, reason: str) -> Result:
    """A row that could not be measured here, and why."""
    return Result(name, unit, target, skipped=reason)


# -- output -------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.01:
        return f"{value:.3g}"
    return f"{value:.2e}"


def _cells(row: Result) -> list[str]:
    if row.skipped:
        return [row.name, "skipped", "", "", "", row.target.text(row.unit), "—", row.skipped]
    ours = spread(row.ours_runs)
    span = f"{_fmt(ours['min'])}–{_fmt(ours['max'])}" if len(row.ours_runs) > 1 else ""
    met = {True: "yes", False: "NO", None: "—"}[row.met]
    return [
        row.name,
        _fmt(row.ours),
        _fmt(row.baseline),
        _fmt(row.ratio),
        row.unit,
        row.target.text(row.unit),
        met,
        f"n={len(row.ours_runs)} {span}".strip() + (f"; {row.note}" if row.note else ""),
    ]


HEADERS = ["benchmark", "ours", "baseline", "ratio", "unit", "target", "met", "runs (min–max)"]


def print_table(rows: Sequence[Result], title: str = "") -> None:
    """The rows as a table on stdout (``rich`` when installed, plain text otherwise)."""
    cells = [_cells(row) for row in rows]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        Console = None
    if Console is not None and sys.stdout.isatty():
        table = Table(title=title or None, show_lines=False)
        for index, header in enumerate(HEADERS):
            table.add_column(header, justify="right" if 1 <= index <= 3 else "left")
        for row, line in zip(rows, cells, strict=True):
            style = {True: "green", False: "red", None: ""}[row.met]
            table.add_row(*line, style=style)
        Console().print(table)
        return
    print(markdown_table(rows, title))


def markdown_table(rows: Sequence[Result], title: str = "") -> str:
    """The rows as a GitHub-flavoured table (what the README shows)."""
    lines = [f"{title}\n" if title else ""]
    lines.append("| " + " | ".join(HEADERS) + " |")
    lines.append("|" + "|".join("---" for _ in HEADERS) + "|")
    for line in (_cells(row) for row in rows):
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in line) + " |")
    return "\n".join(lines).lstrip("\n")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=HERE, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _postgres_version() -> str | None:
    try:
        import psycopg
    except ImportError:
        return None
    url = os.environ.get("HITL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except Exception:
        return None
    return str(row[0]) if row else None


def machine() -> dict[str, Any]:
    """Where and with what the figures were measured."""
    import sqlite3

    dists = (
        "hitl-agent", "langgraph", "langgraph-checkpoint", "langgraph-checkpoint-sqlite",
        "langgraph-checkpoint-postgres", "langchain-core", "httpx", "starlette", "uvicorn",
        "psycopg", "pydantic", "humanlayer",
    )  # fmt: skip
    try:
        load = os.getloadavg()
    except OSError:
        load = (math.nan, math.nan, math.nan)
    wrk = None
    try:
        wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=5).stdout
        wrk = (wrk or "").splitlines()[0] if wrk else None
    except (OSError, subprocess.SubprocessError):
        wrk = None
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg": [round(x, 2) for x in load],
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgres": _postgres_version(),
        "wrk": wrk,
        "git": _git("rev-parse", "--short", "HEAD"),
        "versions": {dist: _version(dist) for dist in dists},
    }


def write_json(
    rows: Sequence[Result], path: Path, *, meta: dict[str, Any], extra: dict[str, Any]
) -> None:
    """``{"machine": ..., "results": [row, ...], ...extra}`` to ``path``."""
    document = {"machine": meta, **extra, "results": [row.as_json() for row in rows]}
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
