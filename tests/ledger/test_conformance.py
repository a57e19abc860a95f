"""The ledger contract (hitl_agent/ledger/_base.py), run against every backend."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from hitl_agent.ledger import Ledger, ReviewRecord, SlotClaim

from .conformance import ALL_STATES, CLAIMED_AT, LEASE, OWNER, RowState, at, make_row

# -- setup ---------------------------------------------------------------------------


def test_setup_is_idempotent_and_keeps_rows(ledger: Ledger) -> None:
    """A second setup() neither fails nor loses rows."""
    ledger.record_intent("k", now=1.0)
    ledger.setup()
    ledger.setup()
    assert ledger.get("k") is not None


def test_close_is_idempotent(ledger: Ledger) -> None:
    """close() twice is fine."""
    ledger.close()
    ledger.close()


# -- record_intent -------------------------------------------------------------------


def test_record_intent_inserts_every_field(ledger: Ledger) -> None:
    """The first call inserts an intent row carrying what it was given."""
    row, inserted = ledger.record_intent(
        "thread-1::review:0",
        now=5.5,
        thread_id="thread-1",
        checkpoint_ns="review:abc",
        loop_id="loop-9",
        args_hash="a" * 64,
        token_hash="b" * 64,
        payload={"tool": "send_email"},
    )
    assert inserted is True
    assert row == ReviewRecord(
        key="thread-1::review:0",
        state="intent",
        thread_id="thread-1",
        checkpoint_ns="review:abc",
        loop_id="loop-9",
        args_hash="a" * 64,
        token_hash="b" * 64,
        payload={"tool": "send_email"},
        created_at=5.5,
        updated_at=5.5,
    )
    assert ledger.get("thread-1::review:0") == row


def test_record_intent_defaults(ledger: Ledger) -> None:
    """Omitted fields are None and the payload is an empty dict."""
    row, _ = ledger.record_intent("k", now=1.0)
    assert row.payload == {}
    assert (row.thread_id, row.request_id, row.decision, row.deadline) == (None,) * 4


def test_record_intent_second_call_returns_existing_row(ledger: Ledger) -> None:
    """A replayed gate gets the stored row back, untouched, and False."""
    first, _ = ledger.record_intent("k", now=1.0, thread_id="t1", payload={"n": 1})
    again, inserted = ledger.record_intent("k", now=2.0, thread_id="t2", payload={"n": 2})
    assert inserted is False
    assert again == first
    assert ledger.get("k") == first


@pytest.mark.parametrize("state", ALL_STATES)
def test_record_intent_returns_existing_row_in_any_state(ledger: Ledger, state: RowState) -> None:
    """Whatever the row's state, a second intent returns it and inserts nothing."""
    stored = make_row(ledger, state)
    again, inserted = ledger.record_intent("k", now=500.0)
    assert (again, inserted) == (stored, False)


# -- mark_created --------------------------------------------------------------------


def test_mark_created_moves_intent_to_pending(ledger: Ledger) -> None:
    """intent -> pending with the request id and deadline."""
    ledger.record_intent("k", now=1.0, payload={"x": 1})
    row = ledger.mark_created("k", "req-1", now=2.0, deadline=99.0)
    assert (row.state, row.request_id, row.deadline) == ("pending", "req-1", 99.0)
    assert (row.created_at, row.updated_at, row.payload) == (1.0, 2.0, {"x": 1})
    assert ledger.get("k") == row
    assert ledger.get_by_request_id("req-1") == row


@pytest.mark.parametrize("state", ["pending", "decided", "resuming", "resumed"])
def test_mark_created_is_idempotent_for_the_same_id(ledger: Ledger, state: RowState) -> None:
    """Repeating mark_created with the same id returns the row and changes nothing."""
    stored = make_row(ledger, state, request_id="req-1")
    assert ledger.mark_created("k", "req-1", now=999.0, deadline=5.0) == stored
    assert ledger.get("k") == stored


def test_mark_created_refuses_a_different_id(ledger: Ledger) -> None:
    """A second request id for one gate is a ValueError; the first id stays."""
    stored = make_row(ledger, "pending", request_id="req-1")
    with pytest.raises(ValueError, match="req-1"):
        ledger.mark_created("k", "req-2", now=3.0)
    assert ledger.get("k") == stored
    assert ledger.get_by_request_id("req-2") is None


def test_mark_created_refuses_an_id_owned_by_another_key(ledger: Ledger) -> None:
    """One request id maps to one gate: a ValueError, both rows unchanged."""
    first = make_row(ledger, "pending", key="k1", request_id="req-1")
    second, _ = ledger.record_intent("k2", now=1.0)
    with pytest.raises(ValueError, match="req-1"):
        ledger.mark_created("k2", "req-1", now=3.0)
    assert ledger.get("k1") == first
    assert ledger.get("k2") == second


def test_mark_created_unknown_key_is_a_key_error(ledger: Ledger) -> None:
    """No row, no transition."""
    with pytest.raises(KeyError):
        ledger.mark_created("missing", "req-1", now=1.0)
    assert ledger.get_by_request_id("req-1") is None


# -- discard_intent ------------------------------------------------------------------


def test_discard_intent_deletes_an_intent(ledger: Ledger) -> None:
    """A refused create leaves no row, and the key can be recorded afresh."""
    make_row(ledger, "intent")
    assert ledger.discard_intent("k") is True
    assert ledger.get("k") is None
    assert ledger.discard_intent("k") is False
    _, inserted = ledger.record_intent("k", now=2.0)
    assert inserted is True


@pytest.mark.parametrize("state", ["pending", "decided", "resuming", "resumed"])
def test_discard_intent_never_deletes_past_intent(ledger: Ledger, state: RowState) -> None:
    """Rows with a request id are never deleted."""
    stored = make_row(ledger, state)
    assert ledger.discard_intent("k") is False
    assert ledger.get("k") == stored


def test_discard_intent_unknown_key(ledger: Ledger) -> None:
    """Nothing to delete is False."""
    assert ledger.discard_intent("missing") is False


# -- get -----------------------------------------------------------------------------


def test_get_unknown_is_none(ledger: Ledger) -> None:
    """Unknown keys and request ids are None."""
    make_row(ledger, "pending", request_id="req-1")
    assert ledger.get("missing") is None
    assert ledger.get_by_request_id("missing") is None
    assert ledger.get_by_request_id("k") is None  # a key is not a request id


def test_get_by_request_id_finds_the_row(ledger: Ledger) -> None:
    """The request id leads to its own gate's row among several."""
    rows = [make_row(ledger, "decided", key=f"k{i}", request_id=f"req-{i}") for i in range(3)]
    for row in rows:
        assert row.request_id is not None
        assert ledger.get_by_request_id(row.request_id) == row


# -- record_decision -----------------------------------------------------------------


def test_record_decision_moves_pending_to_decided(ledger: Ledger) -> None:
    """pending -> decided with the decision stored."""
    make_row(ledger, "pending", request_id="req-1")
    assert ledger.record_decision("req-1", {"approved": False, "why": "no"}, now=40.0) is True
    row = ledger.get_by_request_id("req-1")
    assert row is not None
    assert (row.state, row.decision, row.updated_at) == (
        "decided",
        {"approved": False, "why": "no"},
        40.0,
    )


@pytest.mark.parametrize("state", ["decided", "resuming", "expired", "resumed"])
def test_record_decision_first_wins_forever(ledger: Ledger, state: RowState) -> None:
    """A later, different decision is refused at every later state; the first stays."""
    stored = make_row(ledger, state, request_id="req-1")
    assert ledger.record_decision("req-1", {"approved": False}, now=500.0) is False
    assert ledger.get("k") == stored
    assert stored.decision == {"approved": True}


def test_record_decision_unknown_request_id(ledger: Ledger) -> None:
    """No row has the id: False, nothing created."""
    assert ledger.record_decision("missing", {"approved": True}, now=1.0) is False
    assert ledger.get_by_request_id("missing") is None
    assert ledger.list_open() == []


def test_record_decisions_stores_each_first_decision(ledger: Ledger) -> None:
    """The batch form: one bool per item in order; a pending row is decided, an already
    decided one keeps its first decision, an unknown id is refused, a repeated id keeps the
    first of the two."""
    make_row(ledger, "pending", key="a", request_id="req-a")
    decided = make_row(ledger, "decided", key="b", request_id="req-b")
    make_row(ledger, "pending", key="c", request_id="req-c")
    stored = ledger.record_decisions(
        [
            ("req-a", {"approved": True}),
            ("req-b", {"approved": False}),
            ("missing", {"approved": True}),
            ("req-c", {"approved": False, "why": "no"}),
            ("req-c", {"approved": True}),
        ],
        now=60.0,
    )
    assert stored == [True, False, False, True, False]
    rows = {rid: ledger.get_by_request_id(rid) for rid in ("req-a", "req-b", "req-c")}
    assert {rid: (r.state, r.decision, r.decided_at) for rid, r in rows.items() if r} == {
        "req-a": ("decided", {"approved": True}, 60.0),
        "req-b": ("decided", {"approved": True}, decided.decided_at),
        "req-c": ("decided", {"approved": False, "why": "no"}, 60.0),
    }
    assert ledger.get_by_request_id("missing") is None
    assert ledger.record_decisions([], now=61.0) == []


def test_record_decisions_is_one_transaction(ledger: Ledger) -> None:
    """A decision that cannot be stored (not JSON) refuses the whole batch before anything
    is written: no row of it changes."""
    make_row(ledger, "pending", key="a", request_id="req-a")
    with pytest.raises((TypeError, ValueError)):
        ledger.record_decisions(
            [("req-a", {"approved": True}), ("req-a", {"bad": object()})], now=60.0
        )
    row = ledger.get_by_request_id("req-a")
    assert row is not None and row.state == "pending" and row.decision is None


# -- claim / release / complete ------------------------------------------------------


def test_claim_takes_a_lease(ledger: Ledger) -> None:
    """decided -> resuming, held by the owner until now + lease."""
    make_row(ledger, "decided", request_id="req-1")
    at(ledger, 50.0)
    assert ledger.claim("req-1", "w1", now=50.0, lease_seconds=15.0) is True
    row = ledger.get("k")
    assert row is not None
    assert (row.state, row.claimed_by, row.lease_until, row.updated_at) == (
        "resuming",
        "w1",
        65.0,
        50.0,
    )
    assert row.decision == {"approved": True}


def test_a_live_claim_is_not_granted_again(ledger: Ledger) -> None:
    """Neither another owner nor the holder itself gets a live claim."""
    stored = make_row(ledger, "resuming", request_id="req-1")
    assert ledger.claim("req-1", "other", now=CLAIMED_AT + 1, lease_seconds=LEASE) is False
    assert ledger.claim("req-1", OWNER, now=CLAIMED_AT + 1, lease_seconds=LEASE) is False
    assert ledger.get("k") == stored


def test_expired_lease_is_taken_over(ledger: Ledger) -> None:
    """A dead resumer's row is taken over at lease end; the old owner then loses it."""
    make_row(ledger, "resuming", request_id="req-1")
    end = CLAIMED_AT + LEASE
    at(ledger, end - 0.001)
    assert ledger.claim("req-1", "b", now=end - 0.001, lease_seconds=LEASE) is False
    at(ledger, end)
    assert ledger.claim("req-1", "b", now=end, lease_seconds=LEASE) is True
    row = ledger.get("k")
    assert row is not None
    assert (row.claimed_by, row.lease_until) == ("b", end + LEASE)
    assert ledger.release("req-1", OWNER, now=end + 1) is False
    assert ledger.complete("req-1", OWNER, now=end + 1) is False
    assert ledger.complete("req-1", "b", now=end + 2) is True


def test_renew_extends_only_the_owners_live_claim(ledger: Ledger) -> None:
    """A heartbeat keeps a long resume's claim: renewed leases are never taken over."""
    make_row(ledger, "resuming", request_id="req-1")
    end = CLAIMED_AT + LEASE
    at(ledger, end - 1)
    assert ledger.renew("req-1", "other", now=end - 1, lease_seconds=LEASE) is False
    assert ledger.renew("req-1", OWNER, now=end - 1, lease_seconds=LEASE) is True
    row = ledger.get("k")
    assert row is not None
    assert (row.state, row.claimed_by, row.lease_until) == ("resuming", OWNER, end - 1 + LEASE)
    # Past the original lease, the renewed claim holds.
    at(ledger, end + 1)
    assert ledger.claim("req-1", "b", now=end + 1, lease_seconds=LEASE) is False
    # A lease that ran out but was not taken over is still the owner's to renew.
    at(ledger, end + 2 * LEASE)
    assert ledger.renew("req-1", OWNER, now=end + 2 * LEASE, lease_seconds=LEASE) is True
    at(ledger, end + 2 * LEASE + 1)
    assert ledger.claim("req-1", "b", now=end + 2 * LEASE + 1, lease_seconds=LEASE) is False


def test_renew_after_a_takeover_or_outside_resuming_is_false(ledger: Ledger) -> None:
    """An owner whose claim was taken over (or that completed/released) renews nothing."""
    make_row(ledger, "resuming", request_id="req-1")
    end = CLAIMED_AT + LEASE
    at(ledger, end)
    assert ledger.claim("req-1", "b", now=end, lease_seconds=LEASE) is True
    taken = ledger.get("k")
    assert ledger.renew("req-1", OWNER, now=end + 1, lease_seconds=LEASE) is False
    assert ledger.get("k") == taken
    assert ledger.complete("req-1", "b", now=end + 2) is True
    assert ledger.renew("req-1", "b", now=end + 3, lease_seconds=LEASE) is False
    for state, request_id, key in (("decided", "req-2", "k2"), ("pending", "req-3", "k3")):
        stored = make_row(ledger, state, key=key, request_id=request_id)
        assert ledger.renew(request_id, OWNER, now=end, lease_seconds=LEASE) is False
        assert ledger.get(key) == stored
    assert ledger.renew("missing", OWNER, now=end, lease_seconds=LEASE) is False
    with pytest.raises(ValueError, match="lease_seconds"):
        ledger.renew("req-1", "b", now=end, lease_seconds=0.0)


def test_release_returns_the_row_to_decided(ledger: Ledger) -> None:
    """A failed resume gives the row back; anyone may claim it again."""
    make_row(ledger, "resuming", request_id="req-1")
    assert ledger.release("req-1", "not-the-owner", now=CLAIMED_AT + 1) is False
    assert ledger.release("req-1", OWNER, now=CLAIMED_AT + 2) is True
    row = ledger.get("k")
    assert row is not None
    assert (row.state, row.claimed_by, row.lease_until) == ("decided", None, None)
    assert row.decision == {"approved": True}
    assert ledger.release("req-1", OWNER, now=CLAIMED_AT + 3) is False
    assert ledger.claim("req-1", "b", now=CLAIMED_AT + 4, lease_seconds=LEASE) is True


def test_complete_is_final(ledger: Ledger) -> None:
    """resuming -> resumed by the owner only; nothing moves a resumed row."""
    make_row(ledger, "resuming", request_id="req-1")
    assert ledger.complete("req-1", "not-the-owner", now=CLAIMED_AT + 1) is False
    assert ledger.complete("req-1", OWNER, now=CLAIMED_AT + 2) is True
    done = ledger.get("k")
    assert done is not None
    assert (done.state, done.claimed_by, done.lease_until) == ("resumed", OWNER, None)
    far = CLAIMED_AT + 10 * LEASE
    assert ledger.complete("req-1", OWNER, now=far) is False
    assert ledger.release("req-1", OWNER, now=far) is False
    assert ledger.claim("req-1", "b", now=far, lease_seconds=LEASE) is False
    assert ledger.get("k") == done


def test_claim_needs_a_positive_lease(ledger: Ledger) -> None:
    """A zero lease would be taken over at once: refused before touching the row."""
    stored = make_row(ledger, "decided", request_id="req-1")
    for lease in (0.0, -1.0):
        with pytest.raises(ValueError, match="lease_seconds"):
            ledger.claim("req-1", "w", now=50.0, lease_seconds=lease)
    assert ledger.get("k") == stored


def test_unknown_request_id_transitions_are_false(ledger: Ledger) -> None:
    """claim/release/complete on an unknown id are no-ops."""
    assert ledger.claim("missing", "w", now=1.0, lease_seconds=LEASE) is False
    assert ledger.release("missing", "w", now=1.0) is False
    assert ledger.complete("missing", "w", now=1.0) is False


# Which transition succeeds from which state: the state machine of _base.py as a table.
# Request-id operations on an intent row use the id it would get, which matches no row.
LATER = CLAIMED_AT + LEASE + 1  # the "resuming" row's lease is still live at CLAIMED_AT + 1
_TRANSITIONS: dict[str, dict[RowState, str | None]] = {
    # operation: {starting state: resulting state, or None when refused}
    "record_decision": {"pending": "decided"},
    "claim": {"decided": "resuming", "expired": "resuming"},
    "release": {"resuming": "decided", "expired": "decided"},
    "complete": {"resuming": "resumed", "expired": "resumed"},
    "discard_intent": {"intent": None},  # None here: the row is gone
}


def _apply(ledger: Ledger, op: str, state: RowState) -> bool:
    now = LATER if state == "expired" else CLAIMED_AT + 1
    at(ledger, now)
    owner = "newcomer" if op == "claim" else OWNER
    if op == "record_decision":
        return ledger.record_decision("r", {"approved": False}, now=now)
    if op == "claim":
        return ledger.claim("r", owner, now=now, lease_seconds=LEASE)
    if op == "release":
        return ledger.release("r", owner, now=now)
    if op == "complete":
        return ledger.complete("r", owner, now=now)
    return ledger.discard_intent("k")


@pytest.mark.parametrize("op", list(_TRANSITIONS))
@pytest.mark.parametrize("state", ALL_STATES)
def test_state_machine(ledger: Ledger, op: str, state: RowState) -> None:
    """Every operation from every state: allowed ones move the row, others change nothing."""
    before = make_row(ledger, state)
    allowed = state in _TRANSITIONS[op]
    assert _apply(ledger, op, state) is allowed
    after = ledger.get("k")
    if not allowed:
        assert after == before
    elif op == "discard_intent":
        assert after is None
    else:
        assert after is not None
        assert after.state == _TRANSITIONS[op][state]


def test_decided_at_is_the_decision_time_and_claims_leave_it_alone(ledger: Ledger) -> None:
    ledger.record_intent("k", now=1.0)
    ledger.mark_created("k", "r", now=2.0)
    assert ledger.get("k").decided_at is None  # type: ignore[union-attr]
    assert ledger.record_decision("r", {"approved": True}, now=3.0)
    assert ledger.claim("r", OWNER, now=4.0, lease_seconds=LEASE)
    assert ledger.release("r", OWNER, now=5.0)
    assert ledger.claim("r", OWNER, now=6.0, lease_seconds=LEASE)
    assert ledger.complete("r", OWNER, now=7.0)
    assert not ledger.record_decision("r", {"approved": False}, now=8.0)

    row = ledger.get("k")

    assert row is not None
    assert (row.decided_at, row.updated_at) == (3.0, 7.0)


# -- list_task -----------------------------------------------------------------------


def test_list_task_returns_exactly_one_tasks_rows_in_every_state(ledger: Ledger) -> None:
    for i, (thread, ns) in enumerate(
        [("t1", "tools:a"), ("t1", "tools:a"), ("t1", "tools:b"), ("t2", "tools:a")]
    ):
        ledger.record_intent(f"k{i}", now=float(i), thread_id=thread, checkpoint_ns=ns)
    ledger.mark_created("k1", "r1", now=5.0)
    assert ledger.record_decision("r1", {"approved": True}, now=6.0)
    assert ledger.claim("r1", OWNER, now=7.0, lease_seconds=LEASE)
    assert ledger.complete("r1", OWNER, now=8.0)

    rows = ledger.list_task("t1", "tools:a")

    assert [(row.key, row.state) for row in rows] == [("k0", "intent"), ("k1", "resumed")]
    assert ledger.list_task("t1", "nope") == []
    assert [row.key for row in ledger.list_task("t2", "tools:a")] == ["k3"]


# -- list_open -----------------------------------------------------------------------


def test_list_open_oldest_first_and_only_open(ledger: Ledger) -> None:
    """Open states only, by created_at, ties in insertion order; resumed rows left out."""
    for key, now in [("c", 3.0), ("a", 1.0), ("b2", 2.0), ("b1", 2.0)]:
        ledger.record_intent(key, now=now)
    for i, state in enumerate(ALL_STATES):
        make_row(ledger, state, key=f"s{i}", request_id=f"r{i}")  # all created at 10.0
    keys = [row.key for row in ledger.list_open()]
    assert keys == ["a", "b2", "b1", "c", "s0", "s1", "s2", "s3", "s4"]
    assert "s5" not in keys  # the resumed one
    assert [row.state for row in ledger.list_open()][4:] == [
        "intent",
        "pending",
        "decided",
        "resuming",
        "resuming",
    ]


def test_list_open_limit(ledger: Ledger) -> None:
    """limit caps the rows, oldest kept; 0 is empty; negative is refused."""
    for i in range(5):
        ledger.record_intent(f"k{i}", now=float(i))
    assert [row.key for row in ledger.list_open(limit=2)] == ["k0", "k1"]
    assert ledger.list_open(limit=0) == []
    assert len(ledger.list_open()) == 5
    with pytest.raises(ValueError, match="limit"):
        ledger.list_open(limit=-1)


def test_list_open_returns_full_records(ledger: Ledger) -> None:
    """list_open rows equal get() rows."""
    stored = make_row(ledger, "decided")
    assert ledger.list_open() == [stored]


# -- JSON ----------------------------------------------------------------------------

NASTY: dict[str, Any] = {
    "nested": {"list": [1, 2.5, None, True, False, {"deep": ["x"]}], "empty": {}},
    "unicode": "héllo wörld ✓ 你好 🙂 \u202e rtl",
    "control": 'tab\tnewline\nnul\x00quote"backslash\\',
    "big": 2**63 + 1,
    "negative": -(2**40),
    "float": 0.1,
    "keys with spaces": "and 'quotes'",
    "": "empty key",
}


def test_payload_and_decision_round_trip(ledger: Ledger) -> None:
    """Nested, unicode, NUL, big ints: stored and read back equal (both columns)."""
    row, _ = ledger.record_intent("k", now=1.0, payload=NASTY)
    assert row.payload == NASTY
    ledger.mark_created("k", "req-1", now=2.0)
    assert ledger.record_decision("req-1", NASTY, now=3.0)
    stored = ledger.get("k")
    assert stored is not None
    assert stored.payload == NASTY
    assert stored.decision == NASTY
    assert ledger.list_open()[0] == stored


@pytest.mark.parametrize(
    ("bad", "error"),
    [({"x": float("nan")}, ValueError), ({"x": object()}, TypeError), ([1, 2], TypeError)],
)
def test_bad_json_is_refused_and_writes_nothing(ledger: Ledger, bad: Any, error: type) -> None:
    """NaN, unencodable values or a non-dict: a clear error, no row, no decision."""
    with pytest.raises(error, match="payload"):
        ledger.record_intent("k", now=1.0, payload=bad)
    assert ledger.get("k") is None
    stored = make_row(ledger, "pending", request_id="req-1")
    with pytest.raises(error, match="decision"):
        ledger.record_decision("req-1", bad, now=2.0)
    assert ledger.get("k") == stored


def test_records_are_frozen(ledger: Ledger) -> None:
    """A returned row cannot be mutated into disagreeing with the store."""
    row, _ = ledger.record_intent("k", now=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.state = "resumed"  # type: ignore[misc]


# -- the gate's bookkeeping: slot claims and aliases ------------------------------------

SLOT = "hitl-slot:outer|inner|tool:call|1|0"  # slots and threads may hold '|', ':', unicode


def test_claim_slot_takes_each_turn_once(ledger: Ledger) -> None:
    """One owner per turn; the first claim wins, forever; claims list by turn."""
    assert ledger.list_slot_claims("t|ü", SLOT) == []
    assert ledger.claim_slot("t|ü", SLOT, 0, "lg|t|ü|a:1|node|0", now=1.0) is True
    assert ledger.claim_slot("t|ü", SLOT, 0, "lg|t|ü|b:2|node|0", now=2.0) is False
    assert ledger.claim_slot("t|ü", SLOT, 0, "lg|t|ü|a:1|node|0", now=2.0) is False
    assert ledger.claim_slot("t|ü", SLOT, 1, "lg|t|ü|b:2|node|0", now=3.0) is True
    claims = ledger.list_slot_claims("t|ü", SLOT)
    assert claims == [
        SlotClaim("t|ü", SLOT, 0, "lg|t|ü|a:1|node|0", 1.0),
        SlotClaim("t|ü", SLOT, 1, "lg|t|ü|b:2|node|0", 3.0),
    ]
    assert [c.key for c in claims] == [f"slot|t|ü|{SLOT}|0", f"slot|t|ü|{SLOT}|1"]


def test_slot_claims_are_per_thread_and_slot_and_never_review_rows(ledger: Ledger) -> None:
    """Another thread or slot has its own turns; no reader of review rows sees a claim."""
    assert ledger.claim_slot("t", SLOT, 0, "a", now=1.0)
    assert ledger.claim_slot("u", SLOT, 0, "b", now=1.0)
    assert ledger.claim_slot("t", "hitl-slot:other|node|0", 0, "c", now=1.0)
    assert [c.owner for c in ledger.list_slot_claims("t", SLOT)] == ["a"]
    assert [c.owner for c in ledger.list_slot_claims("u", SLOT)] == ["b"]
    assert ledger.list_open() == [] and ledger.list_task("t", SLOT) == []
    assert ledger.get(f"slot|t|{SLOT}|0") is None


def test_record_alias_keeps_the_first_owner(ledger: Ledger) -> None:
    """An alias points one key at another row's key; the first owner wins, forever."""
    assert ledger.get_alias("lg|t|gate:b|node|0") is None
    assert ledger.record_alias("lg|t|gate:b|node|0", "lg|t|gate:a|node|0", now=1.0) == (
        "lg|t|gate:a|node|0"
    )
    assert ledger.record_alias("lg|t|gate:b|node|0", "other", now=2.0) == "lg|t|gate:a|node|0"
    assert ledger.get_alias("lg|t|gate:b|node|0") == "lg|t|gate:a|node|0"
    assert ledger.get_alias("lg|t|gate:a|node|0") is None
    assert ledger.list_open() == [] and ledger.get("lg|t|gate:b|node|0") is None


def test_an_alias_and_a_review_row_may_share_nothing_but_the_key_space(ledger: Ledger) -> None:
    """A key's alias and its review row are independent records (the gate discards the row
    before it aliases the key)."""
    ledger.record_intent("k", now=1.0, thread_id="t", checkpoint_ns="ns")
    assert ledger.discard_intent("k")
    assert ledger.record_alias("k", "owner", now=2.0) == "owner"
    assert ledger.get("k") is None and ledger.list_task("t", "ns") == []
    assert ledger.get_alias("k") == "owner"
