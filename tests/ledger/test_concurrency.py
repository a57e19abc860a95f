"""Races: N callers hit one row at once; exactly one may win, every trial.

Three races, on every backend: ``claim`` on a decided row, ``claim`` taking over an expired
lease, and ``record_decision`` with N different decisions. Each runs with N threads (for
PostgreSQL: N pooled connections) and with N separate processes on the same store (SQLite:
one file; PostgreSQL: one connection each). Trials and N grow under ``HITL_STRESS=full``;
``HITL_SEED`` replays a run's jitter.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from hitl_agent.ledger import Ledger

from ._workers import LEASE, race_worker
from .conftest import LedgerSpec

FULL = os.environ.get("HITL_STRESS") == "full"
SEED = int(os.environ.get("HITL_SEED", "1729"))
THREAD_TRIALS, THREAD_N = (500, 16) if FULL else (50, 8)
PROCESS_TRIALS, PROCESS_N = (300, 16) if FULL else (50, 8)
KINDS = ["claim", "takeover", "decide"]

pytestmark = pytest.mark.slow


def _past(spec: LedgerSpec) -> Ledger:
    """The same store through a ledger whose clock runs 10 leases behind: a claim taken
    through it is already over by the ledger's own clock (the one the racers' claims are
    judged by; the ``now`` they pass does not count)."""
    return spec.open(clock=lambda: time.time() - 10 * LEASE)


def _prepare(
    ledger: Ledger, kind: str, trial: int, past: Ledger | None = None
) -> tuple[str, float]:
    """Make the row a race starts from; returns its request id and the racers' ``now``.
    A ``takeover`` row is claimed by ``dead`` through ``past`` (see :func:`_past`)."""
    key, request_id = f"k{trial}", f"req-{trial}"
    ledger.record_intent(key, now=float(trial))
    ledger.mark_created(key, request_id, now=float(trial))
    if kind == "decide":
        return request_id, 10.0
    assert ledger.record_decision(request_id, {"approved": True}, now=float(trial))
    if kind == "takeover":
        assert past is not None
        assert past.claim(request_id, "dead", now=0.0, lease_seconds=LEASE)
        return request_id, LEASE + 1.0  # the dead owner's lease is over
    return request_id, 10.0


def _check(ledger: Ledger, kind: str, trial: int, results: list[Any]) -> None:
    """Exactly one winner, and the row shows that winner."""
    assert all(isinstance(r, bool) for r in results), f"trial {trial}: {results}"
    winners = [i for i, won in enumerate(results) if won]
    assert len(winners) == 1, f"trial {trial} (seed {SEED}): winners {winners}"
    row = ledger.get_by_request_id(f"req-{trial}")
    assert row is not None
    if kind == "decide":
        assert (row.state, row.decision) == ("decided", {"by": winners[0]})
    else:
        assert (row.state, row.claimed_by) == ("resuming", f"w{winners[0]}")


def _jitters(rng: random.Random, n: int) -> list[float]:
    # Up to 0.5 ms of skew, so that arrival order varies from trial to trial.
    return [rng.choice([0.0, rng.uniform(0, 0.0005)]) for _ in range(n)]


@pytest.mark.parametrize("kind", KINDS)
def test_threads_race_one_winner(ledger_spec: LedgerSpec, kind: str) -> None:
    """N threads (own connections) race on one row: one True, every trial."""
    rng = random.Random(f"{SEED}-threads-{kind}")
    ledger = ledger_spec.open(min_size=THREAD_N, max_size=THREAD_N)
    past = _past(ledger_spec)
    barrier = threading.Barrier(THREAD_N)

    def racer(index: int, request_id: str, now: float, jitter: float) -> bool:
        barrier.wait(timeout=60)
        if jitter:
            threading.Event().wait(jitter)
        if kind == "decide":
            return ledger.record_decision(request_id, {"by": index}, now=now)
        return ledger.claim(request_id, f"w{index}", now=now, lease_seconds=LEASE)

    try:
        with ThreadPoolExecutor(THREAD_N) as pool:
            for trial in range(THREAD_TRIALS):
                request_id, now = _prepare(ledger, kind, trial, past)
                jitters = _jitters(rng, THREAD_N)
                futures = [
                    pool.submit(racer, i, request_id, now, jitters[i]) for i in range(THREAD_N)
                ]
                _check(ledger, kind, trial, [f.result(timeout=60) for f in futures])
    finally:
        ledger.close()
        past.close()
    print(
        f"\n[{ledger_spec.backend}] {kind}: {THREAD_TRIALS} trials x {THREAD_N} threads, "
        "1 winner each"
    )


class _Racers:
    """N worker processes, each with its own ledger connection, started once per test."""

    def __init__(self, spec: LedgerSpec, n: int) -> None:
        ctx = multiprocessing.get_context("spawn")  # no inherited connections or locks
        self.barrier = ctx.Barrier(n)
        self.inboxes = [ctx.Queue() for _ in range(n)]
        self.outbox = ctx.Queue()
        self.procs = [
            ctx.Process(
                target=race_worker,
                args=(spec, i, self.barrier, self.inboxes[i], self.outbox),
                daemon=True,
            )
            for i in range(n)
        ]
        for proc in self.procs:
            proc.start()

    def race(self, kind: str, request_id: str, now: float, jitters: list[float]) -> list[Any]:
        for inbox, jitter in zip(self.inboxes, jitters, strict=True):
            inbox.put(("decide" if kind == "decide" else "claim", request_id, now, jitter))
        results: list[Any] = [None] * len(self.procs)
        for _ in self.procs:
            index, ok = self.outbox.get(timeout=60)
            results[index] = ok
        return results

    def stop(self) -> None:
        for inbox in self.inboxes:
            inbox.put(None)
        for proc in self.procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.terminate()
                proc.join()
        for queue in [*self.inboxes, self.outbox]:
            queue.close()
            queue.join_thread()


@pytest.fixture
def racers(ledger_spec: LedgerSpec) -> Iterator[Callable[[], _Racers]]:
    started: list[_Racers] = []

    def start() -> _Racers:
        started.append(_Racers(ledger_spec, PROCESS_N))
        return started[-1]

    yield start
    for pool in started:
        pool.stop()


def test_processes_race_one_winner(ledger_spec: LedgerSpec, racers: Callable[[], _Racers]) -> None:
    """N processes on the same store race claim, takeover and decide: one True each trial."""
    rng = random.Random(f"{SEED}-processes")
    pool = racers()
    ledger = ledger_spec.open()
    past = _past(ledger_spec)
    try:
        for trial in range(PROCESS_TRIALS):
            kind = KINDS[trial % len(KINDS)]
            request_id, now = _prepare(ledger, kind, trial, past)
            results = pool.race(kind, request_id, now, _jitters(rng, PROCESS_N))
            _check(ledger, kind, trial, results)
    finally:
        ledger.close()
        past.close()
    print(
        f"\n[{ledger_spec.backend}] claim/takeover/decide: {PROCESS_TRIALS} trials x "
        f"{PROCESS_N} processes, 1 winner each"
    )


def test_harness_catches_a_check_then_act_claim(tmp_path: Any) -> None:
    """The race harness fails a ledger whose claim reads, then acts, without a CAS."""
    spec = LedgerSpec("sqlite", str(tmp_path / "racy.db"))
    ledger = spec.open()
    ledger.setup()
    barrier = threading.Barrier(THREAD_N)

    def racy_claim(index: int, request_id: str) -> bool:
        barrier.wait(timeout=60)
        row = ledger.get_by_request_id(request_id)
        return row is not None and row.state == "decided"  # everyone sees "decided"

    try:
        request_id, _ = _prepare(ledger, "claim", 0)
        with ThreadPoolExecutor(THREAD_N) as pool:
            futures = [pool.submit(racy_claim, i, request_id) for i in range(THREAD_N)]
            results = [f.result(timeout=60) for f in futures]
        with pytest.raises(AssertionError, match="winners"):
            _check(ledger, "claim", 0, results)
    finally:
        ledger.close()
