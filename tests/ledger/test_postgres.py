"""What only the PostgreSQL backend does: schemas, concurrent setup, pool errors."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from .conftest import PG_URL, drop_schema, require_postgres

pytestmark = pytest.mark.postgres


@pytest.fixture
def schema() -> Iterator[str]:
    require_postgres()
    name = f"hitl_test_{uuid.uuid4().hex[:12]}"
    yield name
    drop_schema(name)


def test_schemas_isolate_ledgers(schema: str) -> None:
    """Two schemas, two independent ledgers on one database."""
    from hitl_agent.ledger import PostgresLedger

    with (
        PostgresLedger(PG_URL, schema=schema) as first,
        PostgresLedger(PG_URL, schema=schema + "_b") as second,
    ):
        try:
            first.setup()
            second.setup()
            first.record_intent("k", now=1.0)
            assert second.get("k") is None
            assert second.record_intent("k", now=2.0)[1] is True
        finally:
            drop_schema(schema + "_b")


def test_concurrent_setup_is_serialised(schema: str) -> None:
    """Eight replicas set up one new schema at once: no error, each migration once."""
    from hitl_agent.ledger import PostgresLedger
    from hitl_agent.ledger.postgres import MIGRATIONS

    ledgers = [PostgresLedger(PG_URL, schema=schema) for _ in range(8)]
    barrier = threading.Barrier(len(ledgers))
    errors: list[BaseException] = []

    def run(ledger: PostgresLedger) -> None:
        barrier.wait()
        try:
            ledger.setup()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(ledger,)) for ledger in ledgers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        import psycopg
        from psycopg import sql

        with psycopg.connect(PG_URL) as conn:
            rows = conn.execute(
                sql.SQL("SELECT v FROM {} ORDER BY v").format(
                    sql.Identifier(schema, "hitl_ledger_migrations")
                )
            ).fetchall()
        assert [v for (v,) in rows] == list(range(len(MIGRATIONS)))
    finally:
        for ledger in ledgers:
            ledger.close()


def test_unreachable_server_fails_fast_and_cleanly() -> None:
    """No server: a LedgerError (from PoolTimeout) within the timeout, nothing left running."""
    require_postgres()  # psycopg must be importable for this test to mean anything
    from psycopg_pool import PoolTimeout

    from hitl_agent.ledger import LedgerError, PostgresLedger

    before = set(threading.enumerate())
    start = time.monotonic()
    with pytest.raises(LedgerError, match="PostgreSQL ledger") as raised:
        PostgresLedger("postgresql://postgres@127.0.0.1:1/test?connect_timeout=1", timeout=1.0)
    assert isinstance(raised.value.__cause__, PoolTimeout)
    assert time.monotonic() - start < 10
    deadline = time.monotonic() + 5
    # The pool's own threads are gone (others may end meanwhile: compare who, not how many).
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not set(threading.enumerate()) - before
