"""The benchmark harness and runner (bench/_harness.py, bench/run.py): the figures a row
reports, when a target counts as met, and the results.json the runner writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from _harness import INFO, Result, Target, paired, percentile, skipped  # noqa: E402


def test_row_reports_medians_and_the_median_of_paired_ratios() -> None:
    values = iter([(10.0, 5.0), (30.0, 10.0), (12.0, 12.0)])
    row = paired("x", "ms", Target("ratio<=", 1.3), lambda: next(values), 3)
    assert row.ours == 12.0 and row.baseline == 10.0
    # Per-run ratios 2.0, 3.0, 1.0: the median is 2.0, not 12 / 10.
    assert row.ratio == 2.0
    assert row.met is False
    doc = row.as_json()
    assert set(doc) >= {"name", "ours", "baseline", "ratio", "unit", "target", "met", "runs"}
    assert doc["runs"]["ours"] == {"min": 10.0, "median": 12.0, "max": 30.0}
    assert doc["runs"]["ratio"] == {"min": 1.0, "median": 2.0, "max": 3.0}


@pytest.mark.parametrize(
    ("target", "ours", "baseline", "met"),
    [
        (Target("ratio<=", 1.3), 13.0, 10.0, True),
        (Target("ratio<=", 1.3), 13.1, 10.0, False),
        (Target("ratio>=", 0.8), 8.0, 10.0, True),
        (Target("ratio>=", 0.8), 7.9, 10.0, False),
        (Target("ours<=", 10.0), 10.5, 1.0, False),
        (Target("over<=", 50.0), 60.0, 12.0, True),
        (Target("over<=", 50.0), 63.0, 12.0, False),
        (INFO, 1.0, 2.0, None),
    ],
)
def test_targets(target: Target, ours: float, baseline: float, met: bool | None) -> None:
    row = Result("x", "µs", target, ours_runs=[ours], baseline_runs=[baseline])
    assert row.met is met


def test_skipped_row_says_why_and_is_never_met() -> None:
    row = skipped("wrk load", "1/s", Target("ratio>=", 0.8), "wrk is not installed")
    doc = row.as_json()
    assert doc["met"] is None and doc["ours"] is None and doc["skipped"] == "wrk is not installed"


def test_percentile_is_nearest_rank() -> None:
    samples = [float(i) for i in range(1, 101)]
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert percentile([3.0], 99) == 3.0


def test_runner_writes_results_json(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--only", "loopback",
         "--output", str(out)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["mode"] == "quick"
    assert document["machine"]["cpus"] and document["machine"]["versions"]["hitl-agent"]
    names = [row["name"] for row in document["results"]]
    assert any(name.startswith("loopback GET") for name in names)
    loopback = next(r for r in document["results"] if r["name"].startswith("loopback GET"))
    assert loopback["runs"]["count"] == 2 and loopback["baseline"] > loopback["ours"]
    assert "| benchmark |" in done.stdout  # the table, plain when stdout is not a terminal
