"""What only the SQLite backend does: WAL, migrations, per-thread connections, locking."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from hitl_agent import HITLError
from hitl_agent.ledger import LedgerError, SqliteLedger
from hitl_agent.ledger.sqlite import MIGRATIONS


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "ledger.db")


def _versions(path: str) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        return [v for (v,) in conn.execute("SELECT v FROM hitl_ledger_migrations ORDER BY v")]
    finally:
        conn.close()


def test_setup_uses_wal_and_records_every_migration(db: str) -> None:
    """WAL mode, and versions 0..n-1 recorded once however often setup() runs."""
    with SqliteLedger(db) as ledger:
        ledger.setup()
        ledger.setup()
    assert _versions(db) == list(range(len(MIGRATIONS)))
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()


def test_setup_applies_only_missing_migrations(db: str) -> None:
    """A database at version 1 gets version 2 and keeps its rows."""
    conn = sqlite3.connect(db)
    try:
        for version in (0, 1):
            conn.execute(MIGRATIONS[version])
            conn.execute("INSERT INTO hitl_ledger_migrations (v) VALUES (?)", (version,))
        conn.execute(
            "INSERT INTO hitl_ledger (key, state, created_at, updated_at) "
            "VALUES ('old', 'intent', 1, 1)"
        )
        conn.commit()
    finally:
        conn.close()
    with SqliteLedger(db) as ledger:
        ledger.setup()
        assert [row.key for row in ledger.list_open()] == ["old"]  # uses the new index
    assert _versions(db) == list(range(len(MIGRATIONS)))


@pytest.mark.parametrize("round_", range(30))
def test_setup_races_from_many_instances(tmp_path: Path, round_: int) -> None:
    """Eight ledgers open and set up one new file at once: no "database is locked" (WAL
    switch and migrations race), migrations recorded once. Thirty fresh files, since a lost
    race shows up in only a few percent of rounds."""
    db = str(tmp_path / f"fresh-{round_}.db")
    ledgers = [SqliteLedger(db) for _ in range(8)]
    barrier = threading.Barrier(len(ledgers))
    errors: list[BaseException] = []

    def run(ledger: SqliteLedger) -> None:
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
    for ledger in ledgers:
        ledger.close()
    assert errors == []
    assert _versions(db) == list(range(len(MIGRATIONS)))


def test_one_connection_per_thread_and_dead_threads_cleaned(db: str) -> None:
    """Each thread gets its own connection; a dead thread's is closed on the next connect."""
    ledger = SqliteLedger(db)
    ledger.setup()
    seen: list[sqlite3.Connection] = []

    def use() -> None:
        ledger.get("k")
        seen.append(ledger._conn())

    for _ in range(3):
        thread = threading.Thread(target=use)
        thread.start()
        thread.join()
    main = ledger._conn()
    assert len({id(c) for c in [*seen, main]}) == 4
    assert len(ledger._conns) <= 2  # dead threads' connections were dropped
    with pytest.raises(sqlite3.ProgrammingError):
        seen[0].execute("SELECT 1")  # closed
    ledger.close()
    with pytest.raises(sqlite3.ProgrammingError):
        main.execute("SELECT 1")
    with pytest.raises(RuntimeError, match="closed"):
        ledger.get("k")


def test_a_busy_database_waits_then_succeeds(db: str) -> None:
    """A write waits out another process's write lock (busy_timeout) instead of failing."""
    with SqliteLedger(db, busy_timeout=5.0) as ledger:
        ledger.setup()
        ledger.record_intent("k", now=1.0)
        blocker = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")
        timer = threading.Timer(0.2, lambda: blocker.execute("COMMIT"))
        start = time.monotonic()
        timer.start()
        try:
            assert ledger.discard_intent("k") is True
        finally:
            timer.join()
            blocker.close()
        assert time.monotonic() - start >= 0.15


def test_busy_timeout_bounds_the_wait(db: str) -> None:
    """Past busy_timeout a write fails loudly (and changes nothing)."""
    with SqliteLedger(db, busy_timeout=0.05) as ledger:
        ledger.setup()
        ledger.record_intent("k", now=1.0)
        blocker = sqlite3.connect(db, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            with pytest.raises(LedgerError, match="locked") as raised:
                ledger.discard_intent("k")
            assert isinstance(raised.value, HITLError)
            assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
            blocker.execute("ROLLBACK")
        finally:
            blocker.close()
        assert ledger.get("k") is not None


def test_a_failed_write_rolls_back(db: str) -> None:
    """An error inside a write transaction leaves no half-done change and no open txn."""
    with SqliteLedger(db) as ledger:
        ledger.setup()
        ledger.record_intent("k", now=1.0)
        with pytest.raises(KeyError):
            ledger.mark_created("missing", "req-1", now=2.0)
        assert not ledger._conn().in_transaction
        assert ledger.mark_created("k", "req-1", now=2.0).state == "pending"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_opens_its_own_connection(db: str) -> None:
    """After fork the child never touches the parent's connection, and both keep working."""
    ledger = SqliteLedger(db)
    ledger.setup()
    parent_conn = ledger._conn()
    pid = os.fork()
    if pid == 0:  # the child: exit code says what happened
        code = 1
        try:
            ledger.record_intent("child", now=1.0)
            code = 0 if ledger._conn() is not parent_conn else 2
            ledger.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert ledger._conn() is parent_conn
    assert ledger.get("child") is not None
    ledger.close()


@pytest.mark.parametrize("bad", [{"synchronous": "SOMETIMES"}])
def test_bad_options_are_refused(db: str, bad: dict[str, str]) -> None:
    """Options are validated before any file is touched."""
    with pytest.raises(ValueError, match="synchronous"):
        SqliteLedger(db, **bad)  # type: ignore[arg-type]
    assert not Path(db).exists()


def test_close_waits_for_an_operation_in_flight_in_another_thread(tmp_path: Path) -> None:
    """Closing while another thread writes must neither crash the process nor lose the write.

    Found by an example: a blocking review's poll thread was still completing the row when
    the Gatekeeper (and so the ledger) was closed, and SQLite crashed the process.
    """
    ledger = SqliteLedger(tmp_path / "ledger.db")
    ledger.setup()
    started, release = threading.Event(), threading.Event()
    original = ledger._conn

    def slow_conn() -> sqlite3.Connection:
        conn = original()
        started.set()
        release.wait(5)
        return conn

    ledger._conn = slow_conn  # type: ignore[method-assign]
    writer = threading.Thread(target=lambda: ledger.record_intent("k", now=1.0))
    writer.start()
    assert started.wait(5)
    closer = threading.Thread(target=ledger.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive(), "close() must wait for the write in flight"
    release.set()
    writer.join(5)
    closer.join(5)
    assert not closer.is_alive()

    reopened = SqliteLedger(tmp_path / "ledger.db")
    try:
        row = reopened.get("k")
        assert row is not None and row.state == "intent"
    finally:
        reopened.close()
    with pytest.raises(RuntimeError, match="closed"):
        ledger.get("k")
