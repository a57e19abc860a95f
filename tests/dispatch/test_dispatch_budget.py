"""Invariant 6: batched sweeps within ceil(N/100) + changed, and the hourly budget."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from hitl_agent.dispatch import CallBudget
from hitl_agent.testing import FakeClock

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from bench_poller import measure


def test_sweep_calls_stay_within_the_batched_bound() -> None:
    row = measure(150)
    # Issue 12: ceil(pending/100) listing pages + ceil(answered/100) batched reads.
    assert row["sweep_calls"] <= row["bound"] == 2 + 1
    assert row["idle_calls"] == 2  # two pages of pending, nothing else
    assert row["baseline_calls"] == 150


def test_budget_is_a_sliding_hour_and_honours_429() -> None:
    clock = FakeClock()
    budget = CallBudget(3, clock=clock)
    assert budget.try_spend(2) and budget.try_spend(1)
    assert not budget.try_spend(1) and budget.remaining() == 0
    clock.advance(3600)
    assert budget.try_spend(3)
    clock.advance(3600)
    budget.block_until(datetime.fromtimestamp(clock() + 120, tz=UTC))
    assert not budget.try_spend(1)
    clock.advance(121)
    assert budget.try_spend(1)
    budget.block_until(None)  # a 429 without reset_at: the fallback pause
    assert not budget.try_spend(1)
