"""Issue 19, F6 on every backend: two resolvers with skewed clocks, one ledger clock.

Replica A resumes (its resume blocks, as an approved action that takes minutes would) while
replica B, whose clock is 301 s ahead, or A, whose clock stepped back 250 s, competes for
the claim. The ledger's one FakeClock moves in 75 s steps through several leases. Before the
fix each replica's ``now`` judged the lease: B took the live claim over at once, and the
stepped-back A let its lease run out; the resume ran twice either way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from hitl_agent.decision import Decision
from hitl_agent.dispatch import Resolver
from hitl_agent.dispatch._budget import CallBudget
from hitl_agent.ledger import Ledger, ReviewRecord
from hitl_agent.testing import FakeClock

from .conftest import LedgerSpec

LEASE = 300.0
STEP = LEASE / 4

DECISION = {
    "request_id": "req-1",
    "status": "completed",
    "outcome": "approved",
    "value": "approve",
    "approved": True,
}


class Skewed:
    """A replica's clock: the true time plus an offset the test may change (an NTP step)."""

    def __init__(self, base: Callable[[], float], offset: float = 0.0) -> None:
        self.base, self.offset = base, offset

    def __call__(self) -> float:
        return self.base() + self.offset


class Action:
    """The resumer: each resume is one execution; the first blocks until released."""

    def __init__(self) -> None:
        self.executions = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []  # resumes in flight, joined at teardown

    def resume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool:
        with self.lock:
            self.executions += 1
            first = self.executions == 1
        if first:
            self.started.set()
            assert self.release.wait(30), "the test never released the action"
        return True

    async def aresume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool:
        raise AssertionError("sync only")

    def finished(self, record: ReviewRecord) -> bool:
        return False

    async def afinished(self, record: ReviewRecord) -> bool:
        raise AssertionError("sync only")

    def proceed(self, record: ReviewRecord) -> bool:
        return False

    async def aproceed(self, record: ReviewRecord) -> bool:
        raise AssertionError("sync only")


@pytest.fixture
def setup(ledger_spec: LedgerSpec) -> Iterator[tuple[Ledger, FakeClock, Action]]:
    clock = FakeClock()
    ledger = ledger_spec.open(clock=clock)  # the ledger's one clock
    action = Action()
    ledger.record_intent("k", now=clock())
    ledger.mark_created("k", "req-1", now=clock())
    assert ledger.record_decision(
        "req-1", Decision.model_validate(DECISION).model_dump(mode="json"), now=clock()
    )
    try:
        yield ledger, clock, action
    finally:
        action.release.set()
        for thread in action.threads:
            thread.join(10)
        ledger.close()


def replica(ledger: Ledger, action: Action, clock: Callable[[], float], owner: str) -> Resolver:
    return Resolver(
        ledger=ledger,
        client=None,  # type: ignore[arg-type]  # deliver() never fetches
        resumer=action,
        budget=CallBudget(clock=clock),
        clock=clock,
        owner=owner,
        lease_seconds=LEASE,
        heartbeat_interval=0.01,
    )


def wait_renewed(ledger: Ledger, at_least: float) -> None:
    deadline = time.monotonic() + 10
    while True:
        row = ledger.get("k")
        assert row is not None and row.lease_until is not None
        if row.lease_until >= at_least:
            return
        assert time.monotonic() < deadline, "the claim was not renewed"
        time.sleep(0.005)


def start(resolver: Resolver, action: Action) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(resolver.deliver("req-1")), daemon=True)
    action.threads.append(thread)
    thread.start()
    return thread, out


@pytest.mark.parametrize(
    ("a_step", "b_offset"), [(0.0, 301.0), (-250.0, 0.0)], ids=["B+301s", "A-250s"]
)
def test_one_execution_whatever_the_replicas_clocks(
    setup: tuple[Ledger, FakeClock, Action], a_step: float, b_offset: float
) -> None:
    """B 301 s ahead, or A stepped back 250 s mid-resume: B never gets the claim."""
    ledger, clock, action = setup
    mine = Skewed(clock)
    a = replica(ledger, action, mine, "replica-a")
    b = replica(ledger, action, Skewed(clock, b_offset), "replica-b")
    thread, out = start(a, action)
    assert action.started.wait(10)
    mine.offset += a_step
    for _ in range(12):  # 12 x 75 s: three leases
        clock.advance(STEP)
        assert b.deliver("req-1") == []
        assert action.executions == 1
        wait_renewed(ledger, clock() + LEASE - LEASE / 3)
    action.release.set()
    thread.join(10)
    print(
        f"\nF6 A{a_step:+.0f}s B{b_offset:+.0f}s: executions={action.executions} "
        f"claims_refused_to_B={b.stats['claim_lost']} renewals={a.stats['lease_renewed']}"
    )
    assert len(out[0]) == 1
    assert action.executions == 1
    assert b.stats["claim_lost"] == 12
    row = ledger.get("k")
    assert row is not None and (row.state, row.claimed_by) == ("resumed", "replica-a")


def test_renewals_resume_within_seconds_after_a_195_s_outage(
    setup: tuple[Ledger, FakeClock, Action], monkeypatch: pytest.MonkeyPatch
) -> None:
    """F7: ``renew`` fails from +105 s to +300 s. A's keeper renews again at +302 s (its
    backoff: 1 s, then 2 s), and B, sweeping at +400 s when the lease renewed at +100 s
    would have ended, gets nothing."""
    from hitl_agent.ledger import LedgerError

    ledger, clock, action = setup
    a = replica(ledger, action, clock, "replica-a")
    b = replica(ledger, action, clock, "replica-b")
    t0 = clock()
    renew = ledger.renew
    failed: list[float] = []

    def flaky_renew(*args: Any, **kwargs: Any) -> bool:
        if t0 + 105 <= clock() <= t0 + 300:
            failed.append(clock() - t0)
            raise LedgerError("PostgreSQL ledger: OperationalError: the server is gone")
        return bool(renew(*args, **kwargs))

    monkeypatch.setattr(ledger, "renew", flaky_renew)
    thread, out = start(a, action)
    assert action.started.wait(10)
    clock.advance(100)
    wait_renewed(ledger, t0 + 100 + LEASE)
    for when in (200.0, 300.0):
        clock.advance(when - (clock() - t0))
        deadline = time.monotonic() + 10
        while when not in failed:
            assert time.monotonic() < deadline, f"no renewal tried at +{when} s"
            time.sleep(0.005)
    clock.advance(1)
    clock.advance(1)
    wait_renewed(ledger, t0 + 302 + LEASE)
    clock.advance(98)  # +400 s
    assert b.deliver("req-1") == []
    action.release.set()
    thread.join(10)
    print(f"\nF7: failed renewals at +{failed} s; executions={action.executions}")
    assert len(out[0]) == 1
    assert action.executions == 1
    assert a.stats["lease_renew_failed"] == 2 and a.stats["lease_lost"] == 0
