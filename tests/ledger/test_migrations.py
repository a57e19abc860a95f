"""Old databases opened by this version: ``setup()`` migrates them and their rows are found.

An old database is made the way the old code made it: by the first entries of the backend's
``MIGRATIONS`` list (entries are never edited, so a prefix of the list *is* an old schema),
with rows written in raw SQL as the old code wrote them. Both backends.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from typing import Any

import pytest

from hitl_agent.ledger import Ledger, postgres, sqlite

from .conftest import LedgerSpec

# The schema versions before each change: 6 entries before the spec_hash column.
BEFORE_SPEC_HASH = 6

# The columns old rows are written with, in this order.
OLD_COLUMNS = (
    "key",
    "state",
    "request_id",
    "thread_id",
    "checkpoint_ns",
    "args_hash",
    "decision",
    "payload",
    "claimed_by",
    "created_at",
    "updated_at",
)


@pytest.fixture
def old_spec(request: pytest.FixtureRequest, ledger_spec: LedgerSpec) -> LedgerSpec:
    """The fixture's location, emptied: each test builds its own old schema there."""
    if ledger_spec.backend == "sqlite":
        import os

        os.remove(ledger_spec.target)
        return ledger_spec
    import psycopg
    from psycopg import sql

    with psycopg.connect(ledger_spec.target, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(ledger_spec.schema)))
    return ledger_spec


def build_old(
    spec: LedgerSpec, versions: int, rows: Sequence[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database at schema ``versions`` (the first entries of MIGRATIONS) holding ``rows``."""
    module = sqlite if spec.backend == "sqlite" else postgres
    with monkeypatch.context() as patch:
        patch.setattr(module, "MIGRATIONS", module.MIGRATIONS[:versions])
        ledger = spec.open()
        try:
            ledger.setup()
        finally:
            ledger.close()
    with _raw(spec) as (execute, mark):
        for row in rows:
            row = {"payload": "{}", "created_at": 1.0, "updated_at": 1.0, **row}
            values = tuple(row.get(name) for name in OLD_COLUMNS)
            marks = ", ".join(mark for _ in OLD_COLUMNS)
            execute(f"INSERT INTO hitl_ledger ({', '.join(OLD_COLUMNS)}) VALUES ({marks})", values)


@contextmanager
def _raw(spec: LedgerSpec) -> Iterator[tuple[Any, str]]:
    if spec.backend == "sqlite":
        with closing(sqlite3.connect(spec.target)) as conn:
            yield conn.execute, "?"
            conn.commit()
        return
    import psycopg
    from psycopg import sql

    with psycopg.connect(spec.target, autocommit=True) as pg:
        pg.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(spec.schema)))
        yield lambda query, args: pg.execute(query, args), "%s"


def columns(spec: LedgerSpec) -> set[str]:
    """The columns of hitl_ledger as stored."""
    if spec.backend == "sqlite":
        with closing(sqlite3.connect(spec.target)) as conn:
            return {row[1] for row in conn.execute("PRAGMA table_info(hitl_ledger)")}
    import psycopg

    with psycopg.connect(spec.target) as pg:
        found = pg.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'hitl_ledger'",
            (spec.schema,),
        ).fetchall()
    return {row[0] for row in found}


@contextmanager
def opened(spec: LedgerSpec) -> Iterator[Ledger]:
    """The ledger of this version on ``spec``, set up (migrated)."""
    ledger = spec.open()
    try:
        ledger.setup()
        yield ledger
    finally:
        ledger.close()


def test_the_spec_hash_column_keeps_old_rows_hashes(
    old_spec: LedgerSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_old(
        old_spec,
        BEFORE_SPEC_HASH,
        [
            {"key": "k1", "state": "intent", "args_hash": "h" * 64},
            {"key": "k2", "state": "intent"},
        ],
        monkeypatch,
    )
    assert "args_hash" in columns(old_spec)
    with opened(old_spec) as ledger:
        assert {"spec_hash"} <= columns(old_spec) and "args_hash" not in columns(old_spec)
        old = ledger.get("k1")
        assert old is not None and old.args_hash == old.spec_hash == "h" * 64
        none = ledger.get("k2")
        assert none is not None and none.spec_hash is None
        # The same spec finds its row again; new rows write the renamed column.
        row, inserted = ledger.record_intent("k1", now=1.0, args_hash="x")
        assert not inserted and row.spec_hash == "h" * 64
        new, inserted = ledger.record_intent("k3", now=1.0, args_hash="s" * 64)
        assert inserted and new.spec_hash == "s" * 64
        ledger.setup()  # idempotent


# -- the gate's bookkeeping rows ("markers") leave the review table ---------------------

BEFORE_GATE_TABLES = 7
ALIAS_MARKER, SLOT_MARKER = "hitl-alias|", "hitl-slot|"  # what the old gate wrote


def old_close(ledger: Ledger, key: str, marker: str, owner: str, *, walk: str = "resumed") -> None:
    """What the old gate's ``_close`` did to a slot claim or an alias row: a marker request
    id, an alias decision, then claimed and completed (``walk`` stops it part way, as a
    crash would)."""
    ledger.mark_created(key, marker, now=2.0)
    if walk == "pending":
        return
    ledger.record_decision(marker, {"kind": "alias", "owner": owner}, now=2.0)
    if walk == "decided":
        return
    assert ledger.claim(marker, "hitl-slot", now=2.0, lease_seconds=1.0)
    ledger.complete(marker, "hitl-slot", now=2.0)


def old_slot_claim(ledger: Ledger, thread_id: str, slot: str, turn: int, owner: str) -> str:
    key = f"slot|{thread_id}|{slot}|{turn}"
    _, won = ledger.record_intent(
        key,
        now=1.0,
        thread_id=thread_id,
        checkpoint_ns=slot,
        payload={"kind": "slot", "owner": owner},
    )
    assert won
    return key


def test_old_marker_rows_move_to_the_gate_tables(
    old_spec: LedgerSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slot claims and alias rows written by the old gate, finished or caught mid-walk by a
    crash, leave hitl_ledger on setup(); the gate's reads find them in their tables and no
    reader of review rows sees one."""
    from hitl_agent.gate import ReviewSpec
    from hitl_agent.gate._create import CreateTarget, ensure_request, join_slot

    spec = ReviewSpec.build("Refund $5 to order 7?")
    thread, slot = "t|ü:1", "hitl-slot:outer|inner|node|0"
    owner_key = f"lg|{thread}|outer:a|inner:b|node|0"
    alias_key = f"lg|{thread}|outer:c|inner:d|node|0"

    module = sqlite if old_spec.backend == "sqlite" else postgres
    with monkeypatch.context() as patch:
        patch.setattr(module, "MIGRATIONS", module.MIGRATIONS[:BEFORE_GATE_TABLES])
        old = old_spec.open()
        try:
            old.setup()
            # The owner: a real review, pending on its request.
            old.record_intent(
                owner_key,
                now=1.0,
                thread_id=thread,
                checkpoint_ns="outer:a|inner:b",
                args_hash=spec.spec_hash(),
                payload={"summary": "s"},
            )
            old.mark_created(owner_key, "req-1", now=1.5)
            claim0 = old_slot_claim(old, thread, slot, 0, owner_key)
            old_close(old, claim0, f"{SLOT_MARKER}{claim0}", owner_key)
            # A concurrent run that reused the owner's request: its own row became an alias.
            old.record_intent(
                alias_key,
                now=1.0,
                thread_id=thread,
                checkpoint_ns="outer:c|inner:d",
                args_hash=spec.spec_hash(),
            )
            old_close(old, alias_key, f"{ALIAS_MARKER}{alias_key}", owner_key, walk="decided")
            # Crashed walks: a slot claim won but never closed, one closed part way, and an
            # alias row that got its marker but not its decision (its owner is unknown).
            claim1 = old_slot_claim(old, thread, "hitl-slot:g|node|1", 0, "lg|x|y:1|node|1")
            claim2 = old_slot_claim(old, "other", slot, 0, "lg|other|z:1|node|0")
            old_close(old, claim2, f"{SLOT_MARKER}{claim2}", "lg|other|z:1|node|0", walk="decided")
            old.record_intent("lg|t|q:1|node|0", now=1.0, thread_id="t", checkpoint_ns="q:1")
            old_close(old, "lg|t|q:1|node|0", f"{ALIAS_MARKER}lg|t|q:1|node|0", "", walk="pending")
            # A user's own key that only looks like a slot claim stays a review row.
            old.record_intent("slot|mine", now=1.0, payload={"kind": "slot", "owner": "x"})
        finally:
            old.close()

    with opened(old_spec) as ledger:
        assert [(c.turn, c.owner) for c in ledger.list_slot_claims(thread, slot)] == [
            (0, owner_key)
        ]
        assert [c.owner for c in ledger.list_slot_claims(thread, "hitl-slot:g|node|1")] == [
            "lg|x|y:1|node|1"
        ]
        assert [c.owner for c in ledger.list_slot_claims("other", slot)] == ["lg|other|z:1|node|0"]
        assert ledger.list_slot_claims(thread, slot)[0].key == claim0
        assert ledger.get_alias(alias_key) == owner_key
        assert ledger.get_alias("lg|t|q:1|node|0") is None  # no owner known: dropped
        for gone in (claim0, claim1, claim2, alias_key, "lg|t|q:1|node|0"):
            assert ledger.get(gone) is None
        for marker in (f"{SLOT_MARKER}{claim0}", f"{ALIAS_MARKER}{alias_key}"):
            assert ledger.get_by_request_id(marker) is None
        # Readers of review rows see reviews only.
        assert [row.key for row in ledger.list_open()] == [owner_key, "slot|mine"]
        assert ledger.list_task(thread, slot) == []
        assert ledger.list_task(thread, "outer:c|inner:d") == []

        # The gate finds both: the aliased run's replay gets the owner's row ...
        target = CreateTarget(ledger, "loop", None, None, clock=lambda: 3.0)
        shared = ensure_request(
            target,
            None,
            alias_key,
            spec,
            thread_id=thread,  # type: ignore[arg-type]
            checkpoint_ns="outer:c|inner:d",
        )
        assert (shared.key, shared.request_id) == (owner_key, "req-1")
        # ... and a new run at the same gate, asking the same, reuses the slot owner's request.
        third, _ = ledger.record_intent(
            f"lg|{thread}|outer:e|inner:f|node|0",
            now=3.0,
            thread_id=thread,
            checkpoint_ns="outer:e|inner:f",
            args_hash=spec.spec_hash(),
        )
        joined = join_slot(target, lambda rid: pytest.fail("nothing to cancel"), third)
        assert joined is not None and joined.request_id == "req-1"
        assert ledger.get_alias(third.key) == owner_key and ledger.get(third.key) is None
        ledger.setup()  # idempotent: nothing moves twice
        assert len(ledger.list_slot_claims(thread, slot)) == 1


def test_the_migration_knows_the_markers_the_old_gate_wrote() -> None:
    """The prefixes the migration moves are the ones hitl_agent.protocol documents."""
    from hitl_agent import protocol
    from hitl_agent.ledger import _markers

    assert (_markers.ALIAS_MARKER, _markers.SLOT_MARKER) == (ALIAS_MARKER, SLOT_MARKER)
    assert (protocol.ALIAS_MARKER, protocol.SLOT_MARKER) == (ALIAS_MARKER, SLOT_MARKER)
