"""Issue 7 Q1: every decision is found under 100 calls/hour, whatever the number pending.

Three simulated hours on a FakeClock against the local server with its rate limit on (it
answers 429 past 100 calls in a window): N reviews pending, ~3 % answered at random (seeded)
times, the dispatcher sweeping on its own schedule. On the old poller (pending listing first,
60 s sweeps, one GET per change) 150 pending found 0 of 4 and 1,000 pending 0 of 30.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from bench_poller import simulate

_FULL = os.environ.get("HITL_STRESS") == "full"


def _check(
    pending: int,
    callbacks: bool = False,
    decisions: int | None = None,
    poll_interval: float | None = None,
) -> dict[str, float]:
    row = simulate(pending, callbacks=callbacks, decisions=decisions, poll_interval=poll_interval)
    print(
        f"\nQ1 N={pending} callbacks={callbacks}: "
        f"calls={row['calls']} ({row['calls_per_hour']:.0f}/h) "
        f"429s={row['rate_limited']} sweeps={row['sweeps']} "
        f"found={row['found']}/{row['decisions']} latency p50={row['latency_p50']:.0f}s "
        f"max={row['latency_max']:.0f}s wall={row['wall_seconds']:.1f}s"
    )
    assert row["rate_limited"] == 0
    assert row["found"] == row["decisions"] > 0, row
    assert row["calls_per_hour"] <= 100
    # Detection stays within a few steady sweeps, not "whenever the budget frees up".
    assert row["latency_max"] <= 15 * 60, row
    return row


@pytest.mark.parametrize("pending", [150, 1000])
def test_every_decision_is_found_under_100_calls_an_hour(pending: int) -> None:
    _check(pending)


def test_with_callbacks_each_answer_is_fetched_when_its_doorbell_rings() -> None:
    # The doorbell's truth GET comes first and is never starved by listings.
    row = _check(150, callbacks=True)
    assert row["latency_max"] == 0


def test_a_fixed_3s_sweep_cannot_starve_itself() -> None:
    # Old: 100 pending at a 3 s sweep spent the hour in minutes and found 0 of 3 in time.
    row = _check(100, poll_interval=3.0)
    assert row["latency_max"] <= 60


@pytest.mark.slow
@pytest.mark.skipif(not _FULL, reason="N = 100 … 10,000 runs under HITL_STRESS=full (make stress)")
@pytest.mark.parametrize("pending", [100, 150, 1000, 10_000])
def test_every_decision_is_found_under_100_calls_an_hour_full(pending: int) -> None:
    _check(pending)


@pytest.mark.slow
@pytest.mark.skipif(not _FULL, reason="runs under HITL_STRESS=full (make stress)")
def test_half_of_1000_answered_are_all_found() -> None:
    # The old poller resumed 89 of 500 in the first hour, then none.
    _check(1000, decisions=500)
