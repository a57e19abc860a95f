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
