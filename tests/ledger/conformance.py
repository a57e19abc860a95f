"""Helpers shared by the conformance tests: drive a row to any state of the machine."""

from __future__ import annotations

from typing import Literal

from hitl_agent.ledger import Ledger, ReviewRecord

RowState = Literal["intent", "pending", "decided", "resuming", "expired", "resumed"]
ALL_STATES: tuple[RowState, ...] = (
    "intent",
    "pending",
    "decided",
    "resuming",
    "expired",
    "resumed",
)
LEASE = 30.0
CLAIMED_AT = 100.0
OWNER = "owner-a"


class LeaseClock:
    """The ledger's own clock in the conformance suite: leases are judged by it, not by the
    ``now`` the caller passes (issue 19, F6). Settable both ways, so a test can put the
    ledger at any time; the fixtures inject one into every ledger they open."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t


def at(ledger: Ledger, t: float) -> None:
    """Set the ledger's lease clock (the fixture's :class:`LeaseClock`) to ``t``."""
    clock = getattr(ledger, "clock", None)
    assert isinstance(clock, LeaseClock), "open the ledger through the conformance fixtures"
    clock.t = t


def make_row(
    ledger: Ledger, state: RowState, key: str = "k", request_id: str = "r"
) -> ReviewRecord:
    """Create ``key`` and walk it to ``state``.

    ``expired`` is a ``resuming`` row whose lease (taken by ``OWNER`` at ``CLAIMED_AT`` on
    the ledger's clock, which is left there) is over once the ledger's clock reaches
    ``CLAIMED_AT + LEASE``.
    """
    _, inserted = ledger.record_intent(key, now=10.0, payload={"spec": key})
    assert inserted
    if state != "intent":
        ledger.mark_created(key, request_id, now=20.0, deadline=1000.0)
    if state not in ("intent", "pending"):
        assert ledger.record_decision(request_id, {"approved": True}, now=30.0)
    if state in ("resuming", "expired", "resumed"):
        at(ledger, CLAIMED_AT)
        assert ledger.claim(request_id, OWNER, now=CLAIMED_AT, lease_seconds=LEASE)
    if state == "resumed":
        assert ledger.complete(request_id, OWNER, now=CLAIMED_AT + 1)
    row = ledger.get(key)
    assert row is not None
    assert row.state == ("resuming" if state == "expired" else state)
    return row
