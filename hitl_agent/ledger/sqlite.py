"""The SQLite ledger: the embedded default, safe across threads and processes on one file.

Every write runs in ``BEGIN IMMEDIATE``: the write lock is taken before the first read, so a
read-then-write never sees a row another process changed in between, and a busy database
waits (``busy_timeout``) instead of failing. Each state transition is one compare-and-set
``UPDATE … WHERE request_id = ? AND state = ?``, so whoever loses a race changes nothing.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from . import _executions as ex
from . import _grants as gr
from ._base import Ledger, LedgerError, ReviewRecord, SlotClaim
from ._executions import DeliveryFault, ExecutionRecord, ExecutionState
from ._grants import Grant, GrantUse
from ._markers import move_markers
from ._rows import COLUMNS, check_lease, check_limit, dump_json, page_filter, to_record

__all__ = ["MIGRATIONS", "SqliteLedger"]

_TABLE = "hitl_ledger"
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM {_TABLE}"
_SLOTS = "hitl_gate_slots"
_ALIASES = "hitl_gate_aliases"
_EXECUTIONS = "hitl_executions"
_DELIVERIES = "hitl_deliveries"
_GRANTS = "hitl_grants"
_GRANT_USES = "hitl_grant_uses"
_NAMES = {
    "executions": _EXECUTIONS,
    "deliveries": _DELIVERIES,
    "grants": _GRANTS,
    "grant_uses": _GRANT_USES,
}
_COPY_SLOTS, _COPY_ALIASES, _DELETE_MARKERS = move_markers(
    _TABLE,
    _SLOTS,
    _ALIASES,
    lambda column, name: f"json_extract({column}, '$.{name}')",
    "OR IGNORE",
)
_RECORD_DECISION = f"""UPDATE {_TABLE} SET state = 'decided', decision = ?, updated_at = ?,
    decided_at = ? WHERE request_id = ? AND state = 'pending'"""

#: The schema, one entry per version: the position of an entry in the list is its version
#: number. Append, never edit: ``setup()`` applies the entries a database has not seen yet.
MIGRATIONS: list[str] = [
    # 0: the bookkeeping table itself, so that version 0 is recorded like the others.
    "CREATE TABLE IF NOT EXISTS hitl_ledger_migrations (v INTEGER PRIMARY KEY)",
    # 1: the rows. ``key`` is the correlation key; ``request_id`` is unique once known (NULLs
    # are distinct). The implicit rowid orders rows created in the same second.
    f"""CREATE TABLE {_TABLE} (
        key TEXT PRIMARY KEY,
        state TEXT NOT NULL
            CHECK (state IN ('intent', 'pending', 'decided', 'resuming', 'resumed')),
        request_id TEXT UNIQUE,
        thread_id TEXT,
        checkpoint_ns TEXT,
        loop_id TEXT,
        args_hash TEXT,
        token_hash TEXT,
        deadline REAL,
        decision TEXT,
        payload TEXT NOT NULL DEFAULT '{{}}',
        claimed_by TEXT,
        lease_until REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )""",
    # 2: list_open reads only open rows; resumed rows pile up and must not slow it down.
    f"CREATE INDEX hitl_ledger_open ON {_TABLE} (created_at) WHERE state <> 'resumed'",
    # 3: list_task finds a task's siblings on every delivery; without this it scans the table.
    f"CREATE INDEX hitl_ledger_task ON {_TABLE} (thread_id, checkpoint_ns)",
    # 4: when the decision was recorded (updated_at moves with every claim and release).
    f"ALTER TABLE {_TABLE} ADD COLUMN decided_at REAL",
    # 5: settings every replica must share (the generated callback secret); see ensure_meta.
    "CREATE TABLE hitl_ledger_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # 6: the column holds the review spec's hash (ReviewSpec.spec_hash), not the tool args'.
    f"ALTER TABLE {_TABLE} RENAME COLUMN args_hash TO spec_hash",
    # 7-11: the gate's bookkeeping leaves the review table (see _markers.py): slot claims
    # and aliases get tables of their own, the old marker rows are copied there and deleted.
    f"""CREATE TABLE {_SLOTS} (
        thread_id TEXT NOT NULL,
        slot TEXT NOT NULL,
        turn INTEGER NOT NULL,
        owner TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (thread_id, slot, turn)
    )""",
    f"""CREATE TABLE {_ALIASES} (
        key TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        created_at REAL NOT NULL
    )""",
    _COPY_SLOTS,
    _COPY_ALIASES,
    _DELETE_MARKERS,
    # 12-13: what approved actions did, and the resolver's failed resumes (_executions.py).
    ex.EXECUTIONS_SQL.format(executions=_EXECUTIONS),
    ex.DELIVERIES_SQL.format(deliveries=_DELIVERIES),
    # 14-15: standing grants and the calls that ran under them (_grants.py).
    gr.GRANTS_SQL.format(grants=_GRANTS),
    gr.GRANT_USES_SQL.format(grant_uses=_GRANT_USES),
]


class SqliteLedger(Ledger):
    """A :class:`Ledger` in one SQLite file, in WAL mode.

    One connection per thread (sqlite3 connections must not be shared between threads while
    in use); :meth:`close` closes them all. Several processes may open the same file: the
    file's locks serialise the writes. A connection inherited through ``fork`` is never
    used: the child opens its own.

    Args:
        path: the database file; created on first use. ``":memory:"`` is refused: every
            thread would see a different, empty database.
        busy_timeout: seconds a write waits for another writer before failing.
        synchronous: SQLite's ``synchronous`` pragma. ``FULL`` (the default) makes a
            recorded intent survive power loss; ``NORMAL`` survives a process crash only.
        clock: epoch seconds that judge resume claims (``claim``/``renew``): a lease is
            granted until ``clock() + lease_seconds`` and taken over once ``clock()`` passes
            it, whatever ``now`` the caller passed. Every process on the file shares one
            host's clock (``time.time``, the default), so replicas whose own clocks are
            skewed or stepped still agree on who holds a claim. Tests inject a FakeClock.

    Example::

        ledger = SqliteLedger("hitl.db")
        ledger.setup()
        row, inserted = ledger.record_intent("thread-1::review:0", now=time.time())
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 30.0,
        synchronous: str = "FULL",
        clock: Callable[[], float] = time.time,
    ) -> None:
        path = os.fspath(path)
        if path == ":memory:" or path.startswith("file::memory:"):
            raise ValueError(
                "SqliteLedger needs a file: an in-memory database is private to one "
                "connection and the ledger opens one per thread; use a temporary file"
            )
        if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.path = path
        self.clock = clock
        self._busy_timeout = busy_timeout
        self._synchronous = synchronous.upper()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._pid = os.getpid()
        self._closed = False
        # Operations in flight; close() waits for them, because closing a connection that
        # another thread is using crashes the process instead of raising.
        self._inflight = 0
        self._idle = threading.Condition()

    def __repr__(self) -> str:
        return f"SqliteLedger({self.path!r})"

    # -- connections -------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError("the ledger is closed")
        if os.getpid() != self._pid:
            # A forked child must not touch the parent's connections (SQLite's rule); they
            # are dropped unclosed, since closing them could disturb the parent's locks.
            self._local = threading.local()
            self._conns = []
            self._lock = threading.Lock()
            self._pid = os.getpid()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                # Threads come and go (to_thread pools, servers); close what dead ones left.
                alive = []
                for thread, old in self._conns:
                    if thread.is_alive():
                        alive.append((thread, old))
                    else:
                        old.close()
                alive.append((threading.current_thread(), conn))
                self._conns = alive
        return conn

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; we BEGIN IMMEDIATE ourselves.
        conn = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout,
            isolation_level=None,
            check_same_thread=False,  # only so that close() may close it from any thread
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            self._enable_wal(conn)
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        # Switching a new file to WAL needs an exclusive lock, and SQLite reports a
        # conflict at once ("database is locked") without its busy handler: several
        # workers opening a fresh file together would fail. Retry within busy_timeout.
        deadline = time.monotonic() + self._busy_timeout
        delay = 0.001
        while True:
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    @contextmanager
    def _use(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, for one operation that close() waits for."""
        if os.getpid() != self._pid:
            # A forked child may have inherited the condition mid-use by a parent thread.
            self._idle = threading.Condition()
            self._inflight = 0
        with self._idle:
            if self._closed:
                raise RuntimeError("the ledger is closed")
            self._inflight += 1
        try:
            yield self._conn()
        except sqlite3.Error as exc:
            # Past busy_timeout, a full disk, a corrupt file: one typed error naming the file.
            raise LedgerError(f"SQLite ledger {self.path!r}: {type(exc).__name__}: {exc}") from exc
        finally:
            with self._idle:
                self._inflight -= 1
                if not self._inflight:
                    self._idle.notify_all()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._use() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _read(self, sql: str, args: tuple[Any, ...]) -> list[ReviewRecord]:
        with self._use() as conn:
            return [to_record(row) for row in conn.execute(sql, args)]

    def close(self) -> None:
        """Wait for operations in flight, then close every connection. Idempotent.

        Operations started after close() raise RuntimeError.
        """
        with self._idle:
            self._closed = True
            self._idle.wait_for(lambda: self._inflight == 0)
        with self._lock:
            conns, self._conns = self._conns, []
        if os.getpid() != self._pid:
            return
        for _, conn in conns:
            conn.close()

    # -- schema ------------------------------------------------------------------------

    def setup(self) -> None:
        """Create or migrate the tables. Idempotent, and safe to race from several processes."""
        with self._write() as conn:
            conn.execute(MIGRATIONS[0])
            row = conn.execute("SELECT max(v) FROM hitl_ledger_migrations").fetchone()
            done = -1 if row[0] is None else int(row[0])
            for version in range(done + 1, len(MIGRATIONS)):
                if version:
                    conn.execute(MIGRATIONS[version])
                conn.execute("INSERT INTO hitl_ledger_migrations (v) VALUES (?)", (version,))

    # -- reads -------------------------------------------------------------------------

    def _one(self, conn: sqlite3.Connection, where: str, arg: str) -> ReviewRecord | None:
        row = conn.execute(f"{_SELECT} WHERE {where} = ?", (arg,)).fetchone()
        return None if row is None else to_record(row)

    def get(self, key: str) -> ReviewRecord | None:
        """The row for a correlation key."""
        rows = self._read(f"{_SELECT} WHERE key = ?", (key,))
        return rows[0] if rows else None

    def get_by_request_id(self, request_id: str) -> ReviewRecord | None:
        """The row for a HITL request id."""
        rows = self._read(f"{_SELECT} WHERE request_id = ?", (request_id,))
        return rows[0] if rows else None

    def list_open(self, *, limit: int = 1000) -> list[ReviewRecord]:
        """Rows that still need work, oldest first (ties in creation order)."""
        check_limit(limit)
        return self._read(
            f"{_SELECT} WHERE state <> 'resumed' ORDER BY created_at, rowid LIMIT ?", (limit,)
        )

    def list_task(self, thread_id: str, checkpoint_ns: str) -> list[ReviewRecord]:
        """Every row of one task, oldest first."""
        return self._read(
            f"{_SELECT} WHERE thread_id = ? AND checkpoint_ns = ? ORDER BY created_at, rowid",
            (thread_id, checkpoint_ns),
        )

    def list_rows(
        self,
        *,
        since: float | None = None,
        thread_id: str | None = None,
        limit: int = 1000,
        after: tuple[float, str] | None = None,
    ) -> list[ReviewRecord]:
        """Every row, any state, in ``(created_at, key)`` order; see the base class."""
        check_limit(limit)
        where, args = page_filter(since, thread_id, after)
        return self._read(f"{_SELECT}{where} ORDER BY created_at, key LIMIT ?", (*args, limit))

    # -- transitions -------------------------------------------------------------------

    def record_intent(
        self,
        key: str,
        *,
        now: float,
        thread_id: str | None = None,
        checkpoint_ns: str | None = None,
        loop_id: str | None = None,
        args_hash: str | None = None,
        token_hash: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> tuple[ReviewRecord, bool]:
        """Insert an ``intent`` row unless ``key`` exists; see :meth:`Ledger.record_intent`."""
        body = dump_json({} if payload is None else payload, "payload")
        with self._write() as conn:
            cur = conn.execute(
                f"""INSERT INTO {_TABLE} (key, state, thread_id, checkpoint_ns, loop_id,
                        spec_hash, token_hash, payload, created_at, updated_at)
                    VALUES (?, 'intent', ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (key) DO NOTHING""",
                (key, thread_id, checkpoint_ns, loop_id, args_hash, token_hash, body, now, now),
            )
            row = self._one(conn, "key", key)
        assert row is not None  # read in the same write transaction
        return row, cur.rowcount == 1

    def mark_created(
        self, key: str, request_id: str, *, now: float, deadline: float | None = None
    ) -> ReviewRecord:
        """``intent`` -> ``pending``; see :meth:`Ledger.mark_created`.

        Raises:
            KeyError: no row for ``key``.
            ValueError: the row carries a different request id, or ``request_id`` already
                belongs to another key.
        """
        with self._write() as conn:
            row = self._one(conn, "key", key)
            if row is None:
                raise KeyError(key)
            if row.request_id is not None:
                if row.request_id != request_id:
                    raise ValueError(
                        f"ledger row {key!r} already carries request id {row.request_id!r}, "
                        f"not {request_id!r}"
                    )
                return row
            other = self._one(conn, "request_id", request_id)
            if other is not None:
                raise ValueError(
                    f"request id {request_id!r} already belongs to ledger row {other.key!r}"
                )
            conn.execute(
                f"""UPDATE {_TABLE} SET state = 'pending', request_id = ?, deadline = ?,
                        updated_at = ?
                    WHERE key = ? AND state = 'intent'""",
                (request_id, deadline, now, key),
            )
            updated = self._one(conn, "key", key)
        assert updated is not None
        return updated

    def discard_intent(self, key: str) -> bool:
        """Delete ``key``'s row only while it is an ``intent``."""
        with self._write() as conn:
            cur = conn.execute(f"DELETE FROM {_TABLE} WHERE key = ? AND state = 'intent'", (key,))
        return cur.rowcount == 1

    def _cas(self, sql: str, args: tuple[Any, ...]) -> bool:
        with self._write() as conn:
            cur = conn.execute(sql, args)
        return cur.rowcount == 1

    def record_decision(self, request_id: str, decision: dict[str, Any], *, now: float) -> bool:
        """``pending`` -> ``decided``; the first decision wins, forever."""
        body = dump_json(decision, "decision")
        return self._cas(_RECORD_DECISION, (body, now, now, request_id))

    def record_decisions(
        self, decisions: Sequence[tuple[str, dict[str, Any]]], *, now: float
    ) -> list[bool]:
        """:meth:`record_decision` for each item, in one transaction (one commit)."""
        bodies = [(rid, dump_json(decision, "decision")) for rid, decision in decisions]
        with self._write() as conn:
            return [
                conn.execute(_RECORD_DECISION, (body, now, now, rid)).rowcount == 1
                for rid, body in bodies
            ]

    def claim(self, request_id: str, owner: str, *, now: float, lease_seconds: float) -> bool:
        """``decided`` -> ``resuming`` until the ledger's ``clock() + lease_seconds``, or take
        over an expired lease (``lease_until <= clock()``). A live claim is never re-granted,
        not even to its owner. ``now`` only stamps ``updated_at``: a caller's skewed clock
        can neither take over a live claim nor lose its own."""
        check_lease(lease_seconds)
        with self._write() as conn:
            # Read the clock inside the write lock: claims are judged in commit order.
            at = self.clock()
            cur = conn.execute(
                f"""UPDATE {_TABLE} SET state = 'resuming', claimed_by = ?, lease_until = ?,
                        updated_at = ?
                    WHERE request_id = ?
                      AND (state = 'decided' OR (state = 'resuming' AND lease_until <= ?))""",
                (owner, at + lease_seconds, now, request_id, at),
            )
        return cur.rowcount == 1

    def renew(self, request_id: str, owner: str, *, now: float, lease_seconds: float) -> bool:
        """Extend ``owner``'s ``resuming`` claim to the ledger's ``clock() + lease_seconds``."""
        check_lease(lease_seconds)
        with self._write() as conn:
            at = self.clock()
            cur = conn.execute(
                f"""UPDATE {_TABLE} SET lease_until = ?, updated_at = ?
                    WHERE request_id = ? AND state = 'resuming' AND claimed_by = ?""",
                (at + lease_seconds, now, request_id, owner),
            )
        return cur.rowcount == 1

    def release(self, request_id: str, owner: str, *, now: float) -> bool:
        """``resuming`` -> ``decided`` when ``owner`` holds the claim."""
        return self._cas(
            f"""UPDATE {_TABLE} SET state = 'decided', claimed_by = NULL, lease_until = NULL,
                    updated_at = ?
                WHERE request_id = ? AND state = 'resuming' AND claimed_by = ?""",
            (now, request_id, owner),
        )

    def complete(self, request_id: str, owner: str, *, now: float) -> bool:
        """``resuming`` -> ``resumed`` when ``owner`` holds the claim. ``claimed_by`` is kept
        as a record of who resumed."""
        return self._cas(
            f"""UPDATE {_TABLE} SET state = 'resumed', lease_until = NULL, updated_at = ?
                WHERE request_id = ? AND state = 'resuming' AND claimed_by = ?""",
            (now, request_id, owner),
        )

    # -- the gate's bookkeeping ---------------------------------------------------------

    def claim_slot(self, thread_id: str, slot: str, turn: int, owner: str, *, now: float) -> bool:
        """Take ``turn`` of ``slot`` for ``owner`` unless it is taken."""
        with self._write() as conn:
            cur = conn.execute(
                f"""INSERT INTO {_SLOTS} (thread_id, slot, turn, owner, created_at)
                    VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING""",
                (thread_id, slot, turn, owner, now),
            )
        return cur.rowcount == 1

    def list_slot_claims(self, thread_id: str, slot: str) -> list[SlotClaim]:
        """Every claim of one slot, by turn."""
        with self._use() as conn:
            rows = conn.execute(
                f"""SELECT thread_id, slot, turn, owner, created_at FROM {_SLOTS}
                    WHERE thread_id = ? AND slot = ? ORDER BY turn""",
                (thread_id, slot),
            ).fetchall()
        return [SlotClaim(*row) for row in rows]

    def record_alias(self, key: str, owner: str, *, now: float) -> str:
        """Store ``key -> owner`` unless ``key`` has an alias; the stored owner."""
        with self._write() as conn:
            conn.execute(
                f"""INSERT INTO {_ALIASES} (key, owner, created_at) VALUES (?, ?, ?)
                    ON CONFLICT (key) DO NOTHING""",
                (key, owner, now),
            )
            row = conn.execute(f"SELECT owner FROM {_ALIASES} WHERE key = ?", (key,)).fetchone()
        return str(row[0])

    def get_alias(self, key: str) -> str | None:
        """The key of the row ``key``'s review reuses, or None."""
        with self._use() as conn:
            row = conn.execute(f"SELECT owner FROM {_ALIASES} WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    # -- executions and delivery faults -------------------------------------------------

    def start_execution(
        self,
        key: str,
        owner: str,
        *,
        now: float,
        request_id: str | None = None,
        thread_id: str | None = None,
        tool: str | None = None,
    ) -> tuple[ExecutionRecord, bool]:
        """Insert a ``started`` record unless ``key`` has one; see the base class."""
        with self._write() as conn:
            conn.execute(
                ex.INSERT_EXECUTION.format(**_NAMES),
                (key, owner, request_id, thread_id, tool, now),
            )
            row = conn.execute(
                ex.SELECT_EXECUTION.format(**_NAMES) + " WHERE key = ?", (key,)
            ).fetchone()
        record = ex.execution_from_row(row)
        return record, record.owner == owner

    def _exec_cas(self, template: str, args: tuple[Any, ...]) -> bool:
        return self._cas(template.format(**_NAMES), args)

    def finish_execution(
        self,
        key: str,
        owner: str,
        *,
        state: ExecutionState,
        now: float,
        result: dict[str, Any] | None = None,
        note: str | None = None,
    ) -> bool:
        """``owner``'s execution -> ``state``; see the base class."""
        body = ex.dump_result(result)
        return self._exec_cas(ex.FINISH_EXECUTION, (state, body, note, now, key, owner))

    def flag_in_doubt(self, key: str, *, note: str) -> bool:
        """``started`` -> ``in_doubt``."""
        return self._exec_cas(ex.FLAG_IN_DOUBT, (note, key))

    def settle_execution(self, key: str, *, state: ExecutionState, now: float, note: str) -> bool:
        """An operator's verdict; see the base class."""
        return self._exec_cas(ex.SETTLE_EXECUTION, (state, note, now, key))

    def forget_execution(self, key: str, owner: str = "") -> bool:
        """Delete the record (``owner``'s, or any)."""
        return self._exec_cas(ex.FORGET_EXECUTION, (key, owner, owner))

    def get_execution(self, key: str) -> ExecutionRecord | None:
        """The record for ``key``, or None."""
        with self._use() as conn:
            row = conn.execute(
                ex.SELECT_EXECUTION.format(**_NAMES) + " WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else ex.execution_from_row(row)

    def get_executions(self, keys: Sequence[str]) -> dict[str, ExecutionRecord]:
        """The records of ``keys`` that exist, by key (one read per 500 keys)."""
        found: dict[str, ExecutionRecord] = {}
        unique = list(dict.fromkeys(keys))
        with self._use() as conn:
            # 500 a statement: older SQLite builds allow 999 variables at most.
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                marks = ", ".join("?" for _ in chunk)
                rows = conn.execute(
                    ex.SELECT_EXECUTION.format(**_NAMES) + f" WHERE key IN ({marks})", chunk
                ).fetchall()
                for row in rows:
                    record = ex.execution_from_row(row)
                    found[record.key] = record
        return found

    def list_executions(
        self,
        *,
        states: Sequence[ExecutionState] = ("started", "in_doubt", "failed"),
        request_id: str | None = None,
        limit: int = 1000,
    ) -> list[ExecutionRecord]:
        """Records in ``states``, oldest first."""
        check_limit(limit)
        marks = ", ".join("?" for _ in states) or "NULL"
        where = f" WHERE state IN ({marks})"
        args: tuple[Any, ...] = tuple(states)
        if request_id is not None:
            where += " AND request_id = ?"
            args += (request_id,)
        with self._use() as conn:
            rows = conn.execute(
                ex.SELECT_EXECUTION.format(**_NAMES) + where + " ORDER BY started_at LIMIT ?",
                (*args, limit),
            ).fetchall()
        return [ex.execution_from_row(row) for row in rows]

    def record_delivery_fault(
        self,
        request_id: str,
        *,
        attempts: int,
        now: float,
        retry_at: float | None,
        parked: bool,
        reason: str,
        last_error: str | None,
    ) -> None:
        """Store (replace) ``request_id``'s delivery fault."""
        with self._write() as conn:
            conn.execute(
                ex.UPSERT_DELIVERY.format(**_NAMES),
                (request_id, attempts, retry_at, int(parked), reason, last_error, now),
            )

    def get_delivery_fault(self, request_id: str) -> DeliveryFault | None:
        """``request_id``'s delivery fault, or None."""
        with self._use() as conn:
            row = conn.execute(
                ex.SELECT_DELIVERY.format(**_NAMES) + " WHERE request_id = ?", (request_id,)
            ).fetchone()
        return None if row is None else ex.delivery_from_row(row)

    def list_delivery_faults(self, *, parked: bool | None = None) -> list[DeliveryFault]:
        """Every delivery fault (parked or retried only), oldest first."""
        where, args = ("", ()) if parked is None else (" WHERE parked = ?", (int(parked),))
        with self._use() as conn:
            rows = conn.execute(
                ex.SELECT_DELIVERY.format(**_NAMES) + where + " ORDER BY updated_at", args
            ).fetchall()
        return [ex.delivery_from_row(row) for row in rows]

    def clear_delivery_fault(self, request_id: str) -> bool:
        """Forget ``request_id``'s delivery fault."""
        return self._exec_cas(ex.CLEAR_DELIVERY, (request_id,))

    # -- standing grants ------------------------------------------------------------------

    def _rows(self, template: str, args: tuple[Any, ...]) -> list[Any]:
        with self._use() as conn:
            return conn.execute(template.format(**_NAMES), args).fetchall()

    def record_grant(self, grant: Grant) -> Grant:
        """Store ``grant`` unless its id is stored; the stored grant."""
        with self._write() as conn:
            conn.execute(gr.INSERT_GRANT.format(**_NAMES), grant.values())
            row = conn.execute(
                gr.SELECT_GRANT.format(**_NAMES) + " WHERE grant_id = ?", (grant.grant_id,)
            ).fetchone()
        return gr.grant_from_row(row)

    def find_grant(
        self,
        *,
        tool: str,
        loop_id: str | None,
        thread_id: str | None,
        args_hash: str | None,
        now: float,
    ) -> Grant | None:
        """A live grant covering the call; see the base class."""
        rows = self._rows(gr.FIND_GRANT, (tool, loop_id, loop_id, now, thread_id, args_hash))
        return gr.grant_from_row(rows[0]) if rows else None

    def get_grant(self, grant_id: str) -> Grant | None:
        """The grant ``grant_id``, or None."""
        rows = self._rows(gr.SELECT_GRANT + " WHERE grant_id = ?", (grant_id,))
        return gr.grant_from_row(rows[0]) if rows else None

    def list_grants(self, *, live_at: float | None = None) -> list[Grant]:
        """Every grant (live ones only, at ``live_at``), oldest first."""
        if live_at is None:
            rows = self._rows(gr.SELECT_GRANT + " ORDER BY created_at, grant_id", ())
        else:
            rows = self._rows(
                gr.SELECT_GRANT
                + " WHERE revoked_at IS NULL AND expires_at > ? ORDER BY created_at, grant_id",
                (live_at,),
            )
        return [gr.grant_from_row(row) for row in rows]

    def revoke_grant(self, grant_id: str, *, now: float) -> bool:
        """Revoke ``grant_id``; False when absent or already revoked."""
        return self._exec_cas(gr.REVOKE_GRANT, (now, grant_id))

    def record_grant_use(
        self,
        key: str,
        grant_id: str,
        *,
        now: float,
        thread_id: str | None = None,
        tool_call_id: str | None = None,
        args_hash: str | None = None,
    ) -> GrantUse:
        """Record the call ``key`` under ``grant_id`` unless recorded; the stored use."""
        with self._write() as conn:
            conn.execute(
                gr.INSERT_USE.format(**_NAMES),
                (key, grant_id, thread_id, tool_call_id, args_hash, now),
            )
            row = conn.execute(gr.SELECT_USE.format(**_NAMES) + " WHERE key = ?", (key,)).fetchone()
        return gr.use_from_row(row)

    def get_grant_use(self, key: str) -> GrantUse | None:
        """The grant use of ``key``, or None."""
        rows = self._rows(gr.SELECT_USE + " WHERE key = ?", (key,))
        return gr.use_from_row(rows[0]) if rows else None

    def list_grant_uses(self, grant_id: str | None = None) -> list[GrantUse]:
        """Every grant use (of ``grant_id``), oldest first."""
        if grant_id is None:
            rows = self._rows(gr.SELECT_USE + " ORDER BY used_at, key", ())
        else:
            rows = self._rows(
                gr.SELECT_USE + " WHERE grant_id = ? ORDER BY used_at, key", (grant_id,)
            )
        return [gr.use_from_row(row) for row in rows]

    # -- shared settings ---------------------------------------------------------------

    def ensure_meta(self, name: str, value: str) -> str:
        """Store ``value`` under ``name`` unless one is stored; the stored value."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO hitl_ledger_meta (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (name, value),
            )
            row = conn.execute("SELECT value FROM hitl_ledger_meta WHERE name = ?", (name,))
            stored = row.fetchone()
        return str(stored[0])

    def get_meta(self, name: str) -> str | None:
        """The value stored under ``name``, or None."""
        with self._use() as conn:
            row = conn.execute(
                "SELECT value FROM hitl_ledger_meta WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else str(row[0])
