"""Issue 19, F6: resume leases are judged by ONE clock, the ledger's, on every backend.

Before, ``claim``/``renew`` compared leases on the ``now`` each caller passed: a replica
whose clock ran 301 s ahead took over a live 300 s claim, and a claimant whose clock stepped
back 250 s (NTP) renewed its lease into the past and lost it; either way the approved action
ran twice. Now the ledger's clock (the database's ``now()`` for PostgreSQL, ``time.time``
for SQLite, or a clock injected into the ledger) grants and judges every lease, and ``now``
only stamps ``updated_at``.
"""

from __future__ import annotations

import time

from hitl_agent.ledger import Ledger

from .conformance import CLAIMED_AT, LEASE, OWNER, at, make_row
from .conftest import LedgerSpec

AHEAD = LEASE + 1.0  # a replica's clock 301 s ahead of a 300 s lease, scaled to LEASE
BEHIND = 250.0 / 300.0 * LEASE  # a clock stepped back 250 s of a 300 s lease, scaled


def test_a_caller_clock_ahead_cannot_take_over_a_live_claim(ledger: Ledger) -> None:
    """B's clock reads past A's lease; the ledger's does not: B gets nothing."""
    stored = make_row(ledger, "resuming", request_id="req-1")  # A claimed at CLAIMED_AT
    at(ledger, CLAIMED_AT + 1)
    assert ledger.claim("req-1", "b", now=CLAIMED_AT + 1 + AHEAD, lease_seconds=LEASE) is False
    assert ledger.renew("req-1", "b", now=CLAIMED_AT + 1 + AHEAD, lease_seconds=LEASE) is False
    assert ledger.get("k") == stored


def test_a_claimant_whose_clock_stepped_back_keeps_its_claim(ledger: Ledger) -> None:
    """A renews with a clock stepped back: the lease still runs from the ledger's time, and
    B (on a correct clock) cannot take over while it lasts."""
    make_row(ledger, "resuming", request_id="req-1")
    renewed_at = CLAIMED_AT + LEASE / 3
    at(ledger, renewed_at)
    assert ledger.renew("req-1", OWNER, now=renewed_at - BEHIND, lease_seconds=LEASE) is True
    row = ledger.get("k")
    assert row is not None
    assert (row.claimed_by, row.lease_until) == (OWNER, renewed_at + LEASE)
    assert row.updated_at == renewed_at - BEHIND  # the caller's now still stamps the row
    # Past the stepped-back lease's end (renewed_at - BEHIND + LEASE), within the real one.
    at(ledger, renewed_at + LEASE - 1)
    assert ledger.claim("req-1", "b", now=renewed_at + LEASE - 1, lease_seconds=LEASE) is False
    assert ledger.get("k") == row


def test_a_claim_lasts_a_lease_on_the_ledgers_clock_whatever_the_callers_now(
    ledger: Ledger,
) -> None:
    """A claim made with a clock far behind is neither over at once nor longer than a lease;
    one made with a clock far ahead is not longer either."""
    make_row(ledger, "decided", request_id="req-1")
    at(ledger, 1000.0)
    assert ledger.claim("req-1", OWNER, now=1000.0 - 10 * LEASE, lease_seconds=LEASE) is True
    row = ledger.get("k")
    assert row is not None and row.lease_until == 1000.0 + LEASE
    at(ledger, 1000.0 + LEASE - 0.001)
    assert ledger.claim("req-1", "b", now=0.0, lease_seconds=LEASE) is False
    at(ledger, 1000.0 + LEASE)
    # The taker's clock is far behind: the ledger's time still says the lease is over.
    assert ledger.claim("req-1", "b", now=0.0, lease_seconds=LEASE) is True
    row = ledger.get("k")
    assert row is not None and (row.claimed_by, row.lease_until) == ("b", 1000.0 + 2 * LEASE)


def test_without_an_injected_clock_the_ledger_judges_on_its_own_time(
    ledger_spec: LedgerSpec,
) -> None:
    """The production default: SQLite's host time, PostgreSQL's server time (``now()``).
    Callers' clocks 301 s ahead and 250 s behind change nothing."""
    ledger = ledger_spec.open()
    try:
        make_row_default(ledger)
        before = time.time()
        assert ledger.claim("req-1", OWNER, now=before - 250.0, lease_seconds=300.0) is True
        after = time.time()
        row = ledger.get("k")
        assert row is not None and row.lease_until is not None
        # Local PostgreSQL shares this host's clock; allow it a second either way.
        assert before + 300.0 - 1.0 <= row.lease_until <= after + 300.0 + 1.0
        assert ledger.claim("req-1", "b", now=after + 301.0, lease_seconds=300.0) is False
        assert ledger.renew("req-1", OWNER, now=before - 250.0, lease_seconds=300.0) is True
        renewed = ledger.get("k")
        assert renewed is not None and renewed.lease_until is not None
        assert renewed.lease_until >= row.lease_until
        assert ledger.claim("req-1", "b", now=after + 10 * 300.0, lease_seconds=300.0) is False
    finally:
        ledger.close()


def make_row_default(ledger: Ledger) -> None:
    """A decided row ``k``/``req-1`` (make_row's walk, without claiming)."""
    ledger.record_intent("k", now=10.0)
    ledger.mark_created("k", "req-1", now=20.0)
    assert ledger.record_decision("req-1", {"approved": True}, now=30.0)
