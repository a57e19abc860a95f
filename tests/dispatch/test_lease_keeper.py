"""LeaseKeeper under a ledger outage and a clock stepped back (issue 19, F6/F7).

Deterministic: the keeper is woken by the test, one clock second at a time (no renewer
thread), and a second replica tries to claim before each wake-up, the worst order.

Before the fix a failed renewal counted as a renewal: failures at +200 s and +300 s (a 195 s
outage) put the next try at +400 s, the second the lease (renewed at +100 s) ended, and the
replica that swept first took the claim over. A claimant whose clock stepped back 250 s
waited 350 s for its next renewal. The keeper also could not tell the resumer that its
lease might be gone.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hitl_agent.dispatch._lease import LeaseKeeper
from hitl_agent.ledger import LedgerError, SqliteLedger
from hitl_agent.testing import FakeClock

LEASE = 300.0
RID = "req-1"


class Skewed:
    """A replica's clock: the true time plus an offset the test may change (an NTP step)."""

    def __init__(self, base: Callable[[], float], offset: float = 0.0) -> None:
        self.base, self.offset = base, offset

    def __call__(self) -> float:
        return self.base() + self.offset


class Outage:
    """Makes ``ledger.renew`` raise while the ledger's clock is in ``[start, end]``."""

    def __init__(self, ledger: SqliteLedger, start: float, end: float) -> None:
        self.ledger, self.start, self.end = ledger, start, end
        self.attempts: list[tuple[float, bool]] = []  # (ledger time, landed)
        self._renew = ledger.renew

    def renew(self, request_id: str, owner: str, **kwargs: Any) -> bool:
        t = self.ledger.clock()
        if self.start <= t <= self.end:
            self.attempts.append((t, False))
            raise LedgerError("SQLite ledger 'test': OperationalError: disk I/O error")
        self.attempts.append((t, True))
        return self._renew(request_id, owner, **kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ledger(tmp_path: Path, clock: FakeClock) -> Iterator[SqliteLedger]:
    made = SqliteLedger(tmp_path / "ledger.db", clock=clock)
    made.setup()
    made.record_intent("k", now=clock())
    made.mark_created("k", RID, now=clock())
    made.record_decision(RID, {"approved": True}, now=clock())
    try:
        yield made
    finally:
        made.close()


def keeper_for(ledger: SqliteLedger, clock: Callable[[], float]) -> LeaseKeeper:
    assert ledger.claim(RID, "a", now=clock(), lease_seconds=LEASE)
    # Not started: the test wakes it (the renewer thread would call the same _wake).
    return LeaseKeeper(
        ledger, "a", [RID], clock=clock, lease_seconds=LEASE, interval=1.0, stats=Counter()
    )


def run(
    clock: FakeClock, ledger: SqliteLedger, keeper: LeaseKeeper, until: float, taker_skew: float
) -> list[float]:
    """Advance one second at a time to ``until`` seconds after the start; each second replica
    B (its clock ``taker_skew`` off) tries to claim first, then A's keeper wakes. The times
    (since the start) at which B got the claim."""
    t0 = clock()
    taken: list[float] = []
    while clock() - t0 < until:
        clock.advance(1.0)
        if ledger.claim(RID, "b", now=clock() + taker_skew, lease_seconds=LEASE):
            taken.append(clock() - t0)
            break
        keeper._wake()
    return taken


def test_a_failed_renewal_is_retried_within_seconds_and_the_claim_is_kept(
    clock: FakeClock, ledger: SqliteLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    t0 = clock()
    keeper = keeper_for(ledger, clock)
    outage = Outage(ledger, t0 + 105, t0 + 300)  # 195 s without the ledger
    monkeypatch.setattr(ledger, "renew", outage.renew)

    taken = run(clock, ledger, keeper, 800, taker_skew=0.0)

    tries = [(t - t0, ok) for t, ok in outage.attempts]
    failed = [t for t, ok in tries if not ok]
    first_back = min((t for t, ok in tries if ok and t > 300), default=None)
    print(f"\nF7: takeovers={taken} failed_tries={failed} first_renewal_after={first_back}")
    assert taken == []
    assert first_back is not None
    # The first try in the outage at +200 (a third of a lease after +100), then backoff:
    # 1, 2, 4, 8 s, then every 10 s (a thirtieth of the lease), not a third of a lease.
    assert failed[:6] == [200.0, 201.0, 203.0, 207.0, 215.0, 225.0]
    assert all(b - a <= LEASE / 30 for a, b in itertools.pairwise(failed))
    assert first_back <= 300 + LEASE / 30  # within seconds of the ledger's return
    assert keeper.stats["lease_renew_failed"] == len(failed)
    assert not keeper.lost
    assert not keeper.expired()
    row = ledger.get("k")
    assert row is not None and row.claimed_by == "a"


def test_a_keeper_knows_when_its_lease_may_have_run_out(
    clock: FakeClock, ledger: SqliteLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An outage longer than the lease: expired() turns true when the lease from the last
    renewal that landed ends (never later than the ledger's view), and once B took the
    claim over the first renewal that answers makes it lost for good."""
    t0 = clock()
    keeper = keeper_for(ledger, clock)
    monkeypatch.setattr(ledger, "renew", Outage(ledger, t0 + 105, t0 + 500).renew)
    expired_at: float | None = None
    taken_at: float | None = None
    while clock() - t0 < 520:
        clock.advance(1.0)
        keeper._wake()
        if expired_at is None and keeper.expired():
            expired_at = clock() - t0
        if taken_at is None and ledger.claim(RID, "b", now=clock(), lease_seconds=LEASE):
            taken_at = clock() - t0
    print(f"\nF7: expired() from +{expired_at} s; B took over at +{taken_at} s")
    # The last renewal that landed was sent at +100: the lease ran to +400.
    assert expired_at == 400.0
    assert taken_at == 400.0
    assert keeper.remaining() == 0.0
    assert keeper.lost  # the renewal after the outage found B's claim
    assert keeper.expired()


def test_a_clock_stepped_back_renews_at_once_and_keeps_the_claim(
    clock: FakeClock, ledger: SqliteLedger
) -> None:
    """A's clock steps back 250 s (NTP) after the claim: its next wake-up renews instead of
    waiting 350 s for a third of a lease on the stepped clock; B, on a correct clock,
    never takes over, and expired() does not count the step as time won."""
    mine = Skewed(clock)
    keeper = keeper_for(ledger, mine)
    clock.advance(90.0)
    keeper._wake()  # not yet due
    assert keeper.stats["lease_renewed"] == 0
    mine.offset = -250.0
    taken = run(clock, ledger, keeper, 1200, taker_skew=0.0)
    print(f"\nF6: stepped back 250 s: takeovers={len(taken)} "
          f"renewals={keeper.stats['lease_renewed']}")  # fmt: skip
    assert taken == []
    assert keeper.stats["lease_renewed"] >= 11  # at once, then every third of a lease
    assert not keeper.expired()


def test_expired_counts_only_forward_clock_movement(clock: FakeClock, ledger: SqliteLedger) -> None:
    """A clock stepped back never makes the lease look younger (the keeper not woken)."""
    mine = Skewed(clock)
    keeper = keeper_for(ledger, mine)
    clock.advance(200.0)
    assert keeper.remaining() == pytest.approx(100.0)
    mine.offset = -250.0
    assert keeper.remaining() == pytest.approx(100.0)
    clock.advance(100.0)
    assert keeper.expired()
    # ... and the ledger agrees: the lease taken at the start is over.
    assert ledger.claim(RID, "b", now=clock(), lease_seconds=LEASE)


def test_a_lost_claim_is_not_renewed_again_but_its_siblings_are(
    clock: FakeClock, tmp_path: Path
) -> None:
    """Two claims of one task; B takes one over: the keeper reports lost and keeps renewing
    the other (the resume may already be running), without asking for the lost one."""
    ledger = SqliteLedger(tmp_path / "two.db", clock=clock)
    ledger.setup()
    try:
        for rid in ("r1", "r2"):
            ledger.record_intent(rid, now=clock())
            ledger.mark_created(rid, rid, now=clock())
            ledger.record_decision(rid, {"approved": True}, now=clock())
            assert ledger.claim(rid, "a", now=clock(), lease_seconds=LEASE)
        keeper = LeaseKeeper(
            ledger, "a", ["r1", "r2"], clock=clock, lease_seconds=LEASE, interval=1.0,
            stats=Counter(),
        )  # fmt: skip
        ledger.release("r1", "a", now=clock())
        assert ledger.claim("r1", "b", now=clock(), lease_seconds=LEASE)
        clock.advance(LEASE / 3)
        keeper._wake()
        assert keeper.lost and keeper.expired()
        assert keeper.stats["lease_lost"] == 1 and keeper.stats["lease_renewed"] == 1
        clock.advance(LEASE / 3)
        keeper._wake()
        assert keeper.stats["lease_lost"] == 1 and keeper.stats["lease_renewed"] == 2
        row = ledger.get("r1")
        assert row is not None and row.claimed_by == "b"
    finally:
        ledger.close()
