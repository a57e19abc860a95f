"""bench/bench_blocking.py at a small N: the figures its rows report are real ones."""

from __future__ import annotations

import math
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import bench_blocking  # noqa: E402

from hitl_agent.gate._blocking import hub  # noqa: E402

WAITS = 200


def test_every_wait_returns_approved_on_one_poll_thread() -> None:
    before = hub.waiting
    ours = bench_blocking.measure_waits(WAITS, traced=False)["ours"]
    assert ours["approved"] == WAITS  # measure_waits raises before that; kept as the claim
    assert ours["poll_threads"] == 1
    assert 0 < ours["registered"] < 60 and 0 < ours["resolved"] < 60
    assert hub.waiting == before  # every wait returned and left the hub


def test_traced_memory_per_wait_is_positive_and_bounded() -> None:
    before = hub.waiting
    result = bench_blocking.measure_waits(WAITS, traced=True)
    ours, bare = result["ours"]["bytes"] / WAITS, result["bare"]["bytes"] / WAITS
    assert math.isfinite(ours) and math.isfinite(bare)
    # A wait holds at least a bare task's task, coroutine and future, and (issue 12) no
    # more than 4 KB: the row and spec, a concurrent Future per wait, would break it.
    assert 0 < bare < ours <= 4096
    assert hub.waiting == before  # the cancelled waits left the hub


def test_blocked_review_threads_all_return_approved() -> None:
    threads = bench_blocking.measure_threads(20)
    assert threads["approved"] == 20
    assert threads["ours"] > 0 or math.isnan(threads["ours"])  # NaN: no /proc (not Linux)
