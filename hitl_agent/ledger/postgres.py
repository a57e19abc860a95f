"""The PostgreSQL ledger: the scale path, shared by several dispatcher replicas.

Every transition is one statement in its own transaction (the pool's connections are in
autocommit). A compare-and-set ``UPDATE … WHERE request_id = %s AND state = …`` takes the
row lock; a concurrent one waits for it, then re-checks its ``WHERE`` against the committed
row (READ COMMITTED's re-evaluation) and matches nothing, so exactly one caller wins.

Dropped connections (a restarted server, ``pg_terminate_backend``, a proxy's idle timeout)
are retried on a fresh connection: every operation is idempotent in effect, and a
compare-and-set whose first attempt may have committed before the connection died checks
whether it did (the row carries its owner and timestamp) instead of reporting a lost race.
Whatever still fails is a :class:`~hitl_agent.ledger.LedgerError`, never a raw psycopg error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, LiteralString, TypeVar

from .._extras import MissingExtraError

try:
    import psycopg
    from psycopg import sql
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    # The package's one way to say which extra is missing (an ImportError naming it).
    raise MissingExtraError("postgres", "PostgresLedger", exc.name or "psycopg") from exc

from . import _executions as ex
from . import _grants as gr
from ._base import Ledger, LedgerError, ReviewRecord, SlotClaim
from ._executions import DeliveryFault, ExecutionRecord, ExecutionState
from ._grants import Grant, GrantUse
from ._markers import move_markers
from ._rows import COLUMNS, check_lease, check_limit, dump_json, page_filter, to_record

__all__ = ["MIGRATIONS", "PostgresLedger"]

log = logging.getLogger("hitl_agent.ledger")

_T = TypeVar("_T")

#: The schema, one entry per version: the position of an entry is its version number.
#: Append, never edit. ``{table}``, ``{migrations}`` and the ``*_index`` names are identifiers
#: filled in per schema.
MIGRATIONS: list[LiteralString] = [
    "CREATE TABLE IF NOT EXISTS {migrations} (v integer PRIMARY KEY)",
    # ``seq`` orders rows created in the same second. ``json`` (not ``jsonb``) keeps the text
    # as written: ``jsonb`` refuses \\u0000, which a reviewer's free text may carry.
    """CREATE TABLE {table} (
        key text PRIMARY KEY,
        seq bigint GENERATED ALWAYS AS IDENTITY,
        state text NOT NULL
            CHECK (state IN ('intent', 'pending', 'decided', 'resuming', 'resumed')),
        request_id text UNIQUE,
        thread_id text,
        checkpoint_ns text,
        loop_id text,
        args_hash text,
        token_hash text,
        deadline double precision,
        decision json,
        payload json NOT NULL DEFAULT '{{}}',
        claimed_by text,
        lease_until double precision,
        created_at double precision NOT NULL,
        updated_at double precision NOT NULL
    )""",
    # list_open reads only open rows; resumed rows pile up and must not slow it down.
    "CREATE INDEX {open_index} ON {table} (created_at, seq) WHERE state <> 'resumed'",
    # list_task finds a task's siblings on every delivery; without this it scans the table.
    "CREATE INDEX {task_index} ON {table} (thread_id, checkpoint_ns)",
    # when the decision was recorded (updated_at moves with every claim and release).
    "ALTER TABLE {table} ADD COLUMN decided_at double precision",
    # settings every replica must share (the generated callback secret); see ensure_meta.
    "CREATE TABLE {meta} (name text PRIMARY KEY, value text NOT NULL)",
    # the column holds the review spec's hash (ReviewSpec.spec_hash), not the tool args'.
    "ALTER TABLE {table} RENAME COLUMN args_hash TO spec_hash",
    # 7-11: the gate's bookkeeping leaves the review table (see _markers.py): slot claims
    # and aliases get tables of their own, the old marker rows are copied there and deleted.
    """CREATE TABLE {slots} (
        thread_id text NOT NULL,
        slot text NOT NULL,
        turn integer NOT NULL,
        owner text NOT NULL,
        created_at double precision NOT NULL,
        PRIMARY KEY (thread_id, slot, turn)
    )""",
    """CREATE TABLE {aliases} (
        key text PRIMARY KEY,
        owner text NOT NULL,
        created_at double precision NOT NULL
    )""",
    *move_markers(
        "{table}", "{slots}", "{aliases}", lambda column, name: f"{column}->>'{name}'", ""
    ),
    # 12-13: what approved actions did, and the resolver's failed resumes (_executions.py).
    ex.EXECUTIONS_SQL,
    ex.DELIVERIES_SQL,
    # 14-15: standing grants and the calls that ran under them (_grants.py).
    gr.GRANTS_SQL,
    gr.GRANT_USES_SQL,
]

_COLS = sql.SQL(", ").join(sql.Identifier(name) for name in COLUMNS)

_RECORD_DECISION: LiteralString = """UPDATE {table} SET state = 'decided', decision = %s::json,
    updated_at = %s, decided_at = %s WHERE request_id = %s AND state = 'pending'"""


class PostgresLedger(Ledger):
    """A :class:`Ledger` in PostgreSQL, through a ``psycopg_pool.ConnectionPool``.

    Args:
        conninfo: a libpq connection string or ``postgresql://`` URI.
        schema: keep the tables in this schema (created by :meth:`setup` if missing), so
            that tests or tenants do not see each other's rows. Default: the search path.
        min_size, max_size: the pool's bounds. Concurrent callers beyond ``max_size`` wait
            for a connection.
        timeout: seconds to wait for a connection (and for the pool to open).
        clock: epoch seconds that judge resume claims (``claim``/``renew``) instead of the
            database's. Default (None): the database server's own time (``now()`` in the
            claim's SQL), one clock for every replica, so a replica whose clock is skewed or
            stepped can neither take over a live claim nor lose its own. Tests inject a
            FakeClock; production leaves it None.

    Raises:
        LedgerError: the server could not be reached within ``timeout`` (the cause is
            ``psycopg_pool.PoolTimeout``).
    """

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str | None = None,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 30.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.schema = schema
        self.clock = clock
        prefix = (schema,) if schema else ()
        self._ids = {
            "table": sql.Identifier(*prefix, "hitl_ledger"),
            "migrations": sql.Identifier(*prefix, "hitl_ledger_migrations"),
            "meta": sql.Identifier(*prefix, "hitl_ledger_meta"),
            "slots": sql.Identifier(*prefix, "hitl_gate_slots"),
            "aliases": sql.Identifier(*prefix, "hitl_gate_aliases"),
            "executions": sql.Identifier(*prefix, "hitl_executions"),
            "deliveries": sql.Identifier(*prefix, "hitl_deliveries"),
            "grants": sql.Identifier(*prefix, "hitl_grants"),
            "grant_uses": sql.Identifier(*prefix, "hitl_grant_uses"),
            "open_index": sql.Identifier("hitl_ledger_open"),
            "task_index": sql.Identifier("hitl_ledger_task"),
        }
        self._table = self._ids["table"]
        # Dropped connections are retried for as long as a caller would wait for a free one.
        # A server restart or failover leaves every pooled connection dead at once: the
        # first max_size retries take the next one at once (each failure discards one),
        # later ones back off while the pool reconnects.
        self._retry_for = timeout
        self._instant_retries = max_size
        self._select = sql.SQL("SELECT {} FROM {}").format(_COLS, self._table)
        self._pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            kwargs={"autocommit": True},
            open=False,
            name="hitl-ledger",
        )
        try:
            self._pool.open(wait=True, timeout=timeout)
        except psycopg.Error as exc:
            self._pool.close()
            raise self._error("open", exc) from exc
        except BaseException:
            self._pool.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresLedger(schema={self.schema!r})"

    def close(self) -> None:
        """Close the pool and its connections. Idempotent."""
        self._pool.close()

    def _q(self, template: LiteralString) -> sql.Composed:
        return sql.SQL(template).format(**self._ids)

    def _error(self, what: str, exc: Exception) -> LedgerError:
        return LedgerError(
            f"PostgreSQL ledger (schema={self.schema!r}): {what} failed: "
            f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        )

    def _run(
        self, what: str, fn: Callable[[psycopg.Connection[tuple[Any, ...]]], _T]
    ) -> tuple[_T, bool]:
        """Run ``fn`` on a pooled connection, retrying dropped connections.

        Returns ``fn``'s result and whether an earlier attempt died mid-way (its statement
        may have committed).
        """
        ambiguous = False
        deadline = time.monotonic() + self._retry_for
        attempt = 0
        while True:
            try:
                with self._pool.connection() as conn:
                    return fn(conn), ambiguous
            except PoolTimeout as exc:  # no connection within ``timeout``: the server is gone
                raise self._error(what, exc) from exc
            except psycopg.OperationalError as exc:
                # A broken connection goes back to the pool, which discards it and opens a
                # new one; anything else (a constraint, bad data) is not retried.
                late = attempt - self._instant_retries
                delay = 0.0 if late < 0 else min(0.1, 0.005 * 2**late)
                if time.monotonic() + delay > deadline:
                    raise self._error(what, exc) from exc
                ambiguous = True
                attempt += 1
                log.warning(
                    "PostgreSQL ledger connection lost during %s (%s); retrying",
                    what,
                    type(exc).__name__,
                )
                time.sleep(delay)
            except psycopg.Error as exc:
                raise self._error(what, exc) from exc

    def _fetch(self, query: sql.Composed, args: tuple[Any, ...]) -> ReviewRecord | None:
        row, _ = self._run("read", lambda conn: conn.execute(query, args).fetchone())
        return None if row is None else to_record(row)

    def _cas(
        self,
        query: sql.Composed,
        args: tuple[Any, ...],
        landed: Callable[[ReviewRecord], bool] | None = None,
        request_id: str | None = None,
    ) -> bool:
        done, ambiguous = self._run(
            "update", lambda conn: bool(conn.execute(query, args).rowcount == 1)
        )
        if done or not ambiguous or landed is None or request_id is None:
            return done
        # The first attempt may have committed before its connection died: then this
        # attempt matched nothing, and the row shows our own write.
        row = self.get_by_request_id(request_id)
        return row is not None and landed(row)

    # -- schema ------------------------------------------------------------------------

    def setup(self) -> None:
        """Create or migrate the tables. Idempotent; concurrent callers are serialised by a
        transaction-scoped advisory lock."""
        self._run("setup", self._migrate)

    def _migrate(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        lock_name = f"hitl_agent.ledger:{self.schema or ''}"
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock_name,))
            if self.schema:
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
                )
            conn.execute(self._q(MIGRATIONS[0]))
            row = conn.execute(self._q("SELECT max(v) FROM {migrations}")).fetchone()
            done = -1 if row is None or row[0] is None else int(row[0])
            for version in range(done + 1, len(MIGRATIONS)):
                if version:
                    conn.execute(self._q(MIGRATIONS[version]))
                conn.execute(self._q("INSERT INTO {migrations} (v) VALUES (%s)"), (version,))

    # -- reads -------------------------------------------------------------------------

    def get(self, key: str) -> ReviewRecord | None:
        """The row for a correlation key."""
        return self._fetch(self._select + sql.SQL(" WHERE key = %s"), (key,))

    def get_by_request_id(self, request_id: str) -> ReviewRecord | None:
        """The row for a HITL request id."""
        return self._fetch(self._select + sql.SQL(" WHERE request_id = %s"), (request_id,))

    def list_open(self, *, limit: int = 1000) -> list[ReviewRecord]:
        """Rows that still need work, oldest first (ties in creation order)."""
        check_limit(limit)
        query = self._select + sql.SQL(
            " WHERE state <> 'resumed' ORDER BY created_at, seq LIMIT %s"
        )
        rows, _ = self._run("read", lambda conn: conn.execute(query, (limit,)).fetchall())
        return [to_record(row) for row in rows]

    def list_task(self, thread_id: str, checkpoint_ns: str) -> list[ReviewRecord]:
        """Every row of one task, oldest first."""
        query = self._select + sql.SQL(
            " WHERE thread_id = %s AND checkpoint_ns = %s ORDER BY created_at, seq"
        )
        rows, _ = self._run(
            "read", lambda conn: conn.execute(query, (thread_id, checkpoint_ns)).fetchall()
        )
        return [to_record(row) for row in rows]

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
        # page_filter writes only its own literal SQL; the values travel as parameters.
        tail: LiteralString = where.replace("?", "%s")
        query = self._select + sql.SQL(tail + " ORDER BY created_at, key LIMIT %s")
        rows, _ = self._run("read", lambda conn: conn.execute(query, (*args, limit)).fetchall())
        return [to_record(row) for row in rows]

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
        insert = (
            self._q(
                """INSERT INTO {table} (key, state, thread_id, checkpoint_ns, loop_id, spec_hash,
                    token_hash, payload, created_at, updated_at)
                VALUES (%s, 'intent', %s, %s, %s, %s, %s, %s::json, %s, %s)
                ON CONFLICT (key) DO NOTHING
                RETURNING """
            )
            + _COLS
        )
        args = (key, thread_id, checkpoint_ns, loop_id, args_hash, token_hash, body, now, now)
        # The existing row may be discarded between our INSERT and SELECT; then insert again.
        while True:
            inserted = self._fetch(insert, args)
            if inserted is not None:
                return inserted, True
            existing = self.get(key)
            if existing is not None:
                return existing, False

    def mark_created(
        self, key: str, request_id: str, *, now: float, deadline: float | None = None
    ) -> ReviewRecord:
        """``intent`` -> ``pending``; see :meth:`Ledger.mark_created`.

        Raises:
            KeyError: no row for ``key``.
            ValueError: the row carries a different request id, or ``request_id`` already
                belongs to another key.
        """
        update = (
            self._q(
                """UPDATE {table} SET state = 'pending', request_id = %s, deadline = %s,
                    updated_at = %s
                WHERE key = %s AND state = 'intent'
                RETURNING """
            )
            + _COLS
        )
        try:
            row = self._fetch(update, (request_id, deadline, now, key))
        except LedgerError as exc:
            if not isinstance(exc.__cause__, psycopg.errors.UniqueViolation):
                raise
            other = self.get_by_request_id(request_id)
            owner = other.key if other is not None else "another row"
            raise ValueError(
                f"request id {request_id!r} already belongs to ledger row {owner!r}"
            ) from exc
        if row is not None:
            return row
        # Not an intent (a row never goes back to intent): absent, or already created.
        row = self.get(key)
        if row is None:
            raise KeyError(key)
        if row.request_id != request_id:
            raise ValueError(
                f"ledger row {key!r} already carries request id {row.request_id!r}, "
                f"not {request_id!r}"
            )
        return row

    def discard_intent(self, key: str) -> bool:
        """Delete ``key``'s row only while it is an ``intent``."""
        return self._cas(self._q("DELETE FROM {table} WHERE key = %s AND state = 'intent'"), (key,))

    def record_decision(self, request_id: str, decision: dict[str, Any], *, now: float) -> bool:
        """``pending`` -> ``decided``; the first decision wins, forever."""
        body = dump_json(decision, "decision")
        return self._cas(self._q(_RECORD_DECISION), (body, now, now, request_id))

    def record_decisions(
        self, decisions: Sequence[tuple[str, dict[str, Any]]], *, now: float
    ) -> list[bool]:
        """:meth:`record_decision` for each item, in one transaction (one commit)."""
        bodies = [(rid, dump_json(decision, "decision")) for rid, decision in decisions]
        query = self._q(_RECORD_DECISION)

        def run(conn: psycopg.Connection[tuple[Any, ...]]) -> list[bool]:
            with conn.transaction():
                return [
                    conn.execute(query, (body, now, now, rid)).rowcount == 1 for rid, body in bodies
                ]

        stored, ambiguous = self._run("update", run)
        if ambiguous:
            # An attempt whose connection died may have committed: then the retry matched
            # nothing, and the rows show this call's own decisions.
            for index, (rid, decision) in enumerate(decisions):
                if not stored[index]:
                    row = self.get_by_request_id(rid)
                    stored[index] = (
                        row is not None and row.decided_at == now and row.decision == decision
                    )
        return stored

    def _lease_now(self) -> float | None:
        """The injected clock's time, or None: the SQL then reads the database's (``now()``
        is the statement's start in autocommit, the same in ``SET`` and ``WHERE``)."""
        return None if self.clock is None else self.clock()

    def claim(self, request_id: str, owner: str, *, now: float, lease_seconds: float) -> bool:
        """``decided`` -> ``resuming`` until the ledger's time + ``lease_seconds``, or take
        over an expired lease (``lease_until <=`` the ledger's time). A live claim is never
        re-granted, not even to its owner. ``now`` only stamps ``updated_at``: a caller's
        skewed clock can neither take over a live claim nor lose its own."""
        check_lease(lease_seconds)
        at = self._lease_now()
        return self._cas(
            self._q(
                """UPDATE {table} SET state = 'resuming', claimed_by = %s,
                        lease_until = COALESCE(%s::float8, extract(epoch FROM now())::float8)
                            + %s,
                        updated_at = %s
                    WHERE request_id = %s
                      AND (state = 'decided' OR (state = 'resuming' AND lease_until
                          <= COALESCE(%s::float8, extract(epoch FROM now())::float8)))"""
            ),
            (owner, at, lease_seconds, now, request_id, at),
            # Our own claim shows our owner and our updated_at (a live claim is never
            # re-granted, so no earlier claim of ours can look like this one).
            lambda row: (
                row.state == "resuming" and row.claimed_by == owner and row.updated_at == now
            ),
            request_id,
        )

    def renew(self, request_id: str, owner: str, *, now: float, lease_seconds: float) -> bool:
        """Extend ``owner``'s ``resuming`` claim to the ledger's time + ``lease_seconds``."""
        check_lease(lease_seconds)
        return self._cas(
            self._q(
                """UPDATE {table} SET
                        lease_until = COALESCE(%s::float8, extract(epoch FROM now())::float8)
                            + %s,
                        updated_at = %s
                    WHERE request_id = %s AND state = 'resuming' AND claimed_by = %s"""
            ),
            (self._lease_now(), lease_seconds, now, request_id, owner),
        )

    def release(self, request_id: str, owner: str, *, now: float) -> bool:
        """``resuming`` -> ``decided`` when ``owner`` holds the claim."""
        return self._cas(
            self._q(
                """UPDATE {table} SET state = 'decided', claimed_by = NULL, lease_until = NULL,
                        updated_at = %s
                    WHERE request_id = %s AND state = 'resuming' AND claimed_by = %s"""
            ),
            (now, request_id, owner),
            lambda row: row.state == "decided" and row.claimed_by is None and row.updated_at == now,
            request_id,
        )

    def complete(self, request_id: str, owner: str, *, now: float) -> bool:
        """``resuming`` -> ``resumed`` when ``owner`` holds the claim; ``claimed_by`` stays
        as a record of who resumed."""
        return self._cas(
            self._q(
                """UPDATE {table} SET state = 'resumed', lease_until = NULL, updated_at = %s
                    WHERE request_id = %s AND state = 'resuming' AND claimed_by = %s"""
            ),
            (now, request_id, owner),
            lambda row: row.state == "resumed" and row.claimed_by == owner,
            request_id,
        )

    # -- the gate's bookkeeping ---------------------------------------------------------

    def claim_slot(self, thread_id: str, slot: str, turn: int, owner: str, *, now: float) -> bool:
        """Take ``turn`` of ``slot`` for ``owner`` unless it is taken."""
        insert = self._q(
            """INSERT INTO {slots} (thread_id, slot, turn, owner, created_at)
                VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"""
        )
        done, ambiguous = self._run(
            "claim_slot",
            lambda conn: conn.execute(insert, (thread_id, slot, turn, owner, now)).rowcount == 1,
        )
        if done or not ambiguous:
            return bool(done)
        # The first attempt may have committed before its connection died: the turn is ours
        # if it names us.
        return any(
            c.turn == turn and c.owner == owner for c in self.list_slot_claims(thread_id, slot)
        )

    def list_slot_claims(self, thread_id: str, slot: str) -> list[SlotClaim]:
        """Every claim of one slot, by turn."""
        select = self._q(
            """SELECT thread_id, slot, turn, owner, created_at FROM {slots}
                WHERE thread_id = %s AND slot = %s ORDER BY turn"""
        )
        rows, _ = self._run("read", lambda conn: conn.execute(select, (thread_id, slot)).fetchall())
        return [SlotClaim(*row) for row in rows]

    def record_alias(self, key: str, owner: str, *, now: float) -> str:
        """Store ``key -> owner`` unless ``key`` has an alias; the stored owner."""
        return self._first_writer_wins(
            "record_alias",
            """INSERT INTO {aliases} (key, owner, created_at) VALUES (%s, %s, %s)
                ON CONFLICT (key) DO NOTHING""",
            (key, owner, now),
            "SELECT owner FROM {aliases} WHERE key = %s",
            key,
        )

    def get_alias(self, key: str) -> str | None:
        """The key of the row ``key``'s review reuses, or None."""
        select = self._q("SELECT owner FROM {aliases} WHERE key = %s")
        row, _ = self._run("read", lambda conn: conn.execute(select, (key,)).fetchone())
        return None if row is None else str(row[0])

    # -- executions and delivery faults -------------------------------------------------

    def _x(self, template: LiteralString) -> sql.Composed:
        # The shared SQL (hitl_agent.ledger._executions) is written with "?" placeholders.
        return self._q(template.replace("?", "%s"))

    def _x_write(self, label: str, template: LiteralString, args: tuple[Any, ...]) -> bool:
        query = self._x(template)
        done, _ = self._run(label, lambda conn: conn.execute(query, args).rowcount == 1)
        return bool(done)

    def _x_rows(self, template: LiteralString, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        query = self._x(template)
        rows, _ = self._run("read", lambda conn: conn.execute(query, args).fetchall())
        return rows

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
        """Insert a ``started`` record unless ``key`` has one; see the base class.

        Insert and read run in one transaction, so a lost reply retried reads the record
        this owner stored (and still holds it)."""
        insert = self._x(ex.INSERT_EXECUTION)
        select = self._x(ex.SELECT_EXECUTION + " WHERE key = ?")

        def run(conn: psycopg.Connection[tuple[Any, ...]]) -> tuple[Any, ...]:
            with conn.transaction():
                conn.execute(insert, (key, owner, request_id, thread_id, tool, now))
                row = conn.execute(select, (key,)).fetchone()
            assert row is not None
            return row

        row, _ = self._run("start_execution", run)
        record = ex.execution_from_row(row)
        return record, record.owner == owner

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
        args = (state, body, note, now, key, owner)
        if self._x_write("finish_execution", ex.FINISH_EXECUTION, args):
            return True
        # A retried attempt finds its own earlier write.
        record = self.get_execution(key)
        return record is not None and record.owner == owner and record.state == state

    def flag_in_doubt(self, key: str, *, note: str) -> bool:
        """``started`` -> ``in_doubt``."""
        return self._x_write("flag_in_doubt", ex.FLAG_IN_DOUBT, (note, key))

    def settle_execution(self, key: str, *, state: ExecutionState, now: float, note: str) -> bool:
        """An operator's verdict; see the base class."""
        return self._x_write("settle_execution", ex.SETTLE_EXECUTION, (state, note, now, key))

    def forget_execution(self, key: str, owner: str = "") -> bool:
        """Delete the record (``owner``'s, or any)."""
        return self._x_write("forget_execution", ex.FORGET_EXECUTION, (key, owner, owner))

    def get_execution(self, key: str) -> ExecutionRecord | None:
        """The record for ``key``, or None."""
        rows = self._x_rows(ex.SELECT_EXECUTION + " WHERE key = ?", (key,))
        return ex.execution_from_row(rows[0]) if rows else None

    def get_executions(self, keys: Sequence[str]) -> dict[str, ExecutionRecord]:
        """The records of ``keys`` that exist, by key (one read)."""
        unique = list(dict.fromkeys(keys))
        if not unique:
            return {}
        rows = self._x_rows(ex.SELECT_EXECUTION + " WHERE key = ANY(?)", (unique,))
        return {record.key: record for record in map(ex.execution_from_row, rows)}

    def list_executions(
        self,
        *,
        states: Sequence[ExecutionState] = ("started", "in_doubt", "failed"),
        request_id: str | None = None,
        limit: int = 1000,
    ) -> list[ExecutionRecord]:
        """Records in ``states``, oldest first."""
        check_limit(limit)
        template: LiteralString = ex.SELECT_EXECUTION + " WHERE state = ANY(?)"
        args: tuple[Any, ...] = (list(states),)
        if request_id is not None:
            template += " AND request_id = ?"
            args += (request_id,)
        rows = self._x_rows(template + " ORDER BY started_at LIMIT ?", (*args, limit))
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
        args = (request_id, attempts, retry_at, int(parked), reason, last_error, now)
        self._x_write("record_delivery_fault", ex.UPSERT_DELIVERY, args)

    def get_delivery_fault(self, request_id: str) -> DeliveryFault | None:
        """``request_id``'s delivery fault, or None."""
        rows = self._x_rows(ex.SELECT_DELIVERY + " WHERE request_id = ?", (request_id,))
        return ex.delivery_from_row(rows[0]) if rows else None

    def list_delivery_faults(self, *, parked: bool | None = None) -> list[DeliveryFault]:
        """Every delivery fault (parked or retried only), oldest first."""
        if parked is None:
            rows = self._x_rows(ex.SELECT_DELIVERY + " ORDER BY updated_at", ())
        else:
            rows = self._x_rows(
                ex.SELECT_DELIVERY + " WHERE parked = ? ORDER BY updated_at", (int(parked),)
            )
        return [ex.delivery_from_row(row) for row in rows]

    def clear_delivery_fault(self, request_id: str) -> bool:
        """Forget ``request_id``'s delivery fault."""
        return self._x_write("clear_delivery_fault", ex.CLEAR_DELIVERY, (request_id,))

    # -- standing grants ------------------------------------------------------------------

    def _first_row(
        self,
        label: str,
        insert: LiteralString,
        values: tuple[Any, ...],
        select: LiteralString,
        key: str,
    ) -> tuple[Any, ...]:
        """Insert unless present and read the stored row, in one transaction (a lost reply
        retried reads the same row)."""
        insert_query, select_query = self._x(insert), self._x(select)

        def run(conn: psycopg.Connection[tuple[Any, ...]]) -> tuple[Any, ...]:
            with conn.transaction():
                conn.execute(insert_query, values)
                row = conn.execute(select_query, (key,)).fetchone()
            assert row is not None  # inserted by us or by the caller that won
            return row

        row, _ = self._run(label, run)
        return row

    def record_grant(self, grant: Grant) -> Grant:
        """Store ``grant`` unless its id is stored; the stored grant."""
        row = self._first_row(
            "record_grant",
            gr.INSERT_GRANT,
            grant.values(),
            gr.SELECT_GRANT + " WHERE grant_id = ?",
            grant.grant_id,
        )
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
        rows = self._x_rows(
            gr.FIND_GRANT.replace("? IS NULL", "?::text IS NULL"),
            (tool, loop_id, loop_id, now, thread_id, args_hash),
        )
        return gr.grant_from_row(rows[0]) if rows else None

    def get_grant(self, grant_id: str) -> Grant | None:
        """The grant ``grant_id``, or None."""
        rows = self._x_rows(gr.SELECT_GRANT + " WHERE grant_id = ?", (grant_id,))
        return gr.grant_from_row(rows[0]) if rows else None

    def list_grants(self, *, live_at: float | None = None) -> list[Grant]:
        """Every grant (live ones only, at ``live_at``), oldest first."""
        if live_at is None:
            rows = self._x_rows(gr.SELECT_GRANT + " ORDER BY created_at, grant_id", ())
        else:
            rows = self._x_rows(
                gr.SELECT_GRANT
                + " WHERE revoked_at IS NULL AND expires_at > ? ORDER BY created_at, grant_id",
                (live_at,),
            )
        return [gr.grant_from_row(row) for row in rows]

    def revoke_grant(self, grant_id: str, *, now: float) -> bool:
        """Revoke ``grant_id``; False when absent or already revoked."""
        if self._x_write("revoke_grant", gr.REVOKE_GRANT, (now, grant_id)):
            return True
        # A retried attempt finds its own earlier write.
        grant = self.get_grant(grant_id)
        return grant is not None and grant.revoked_at == now

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
        row = self._first_row(
            "record_grant_use",
            gr.INSERT_USE,
            (key, grant_id, thread_id, tool_call_id, args_hash, now),
            gr.SELECT_USE + " WHERE key = ?",
            key,
        )
        return gr.use_from_row(row)

    def get_grant_use(self, key: str) -> GrantUse | None:
        """The grant use of ``key``, or None."""
        rows = self._x_rows(gr.SELECT_USE + " WHERE key = ?", (key,))
        return gr.use_from_row(rows[0]) if rows else None

    def list_grant_uses(self, grant_id: str | None = None) -> list[GrantUse]:
        """Every grant use (of ``grant_id``), oldest first."""
        if grant_id is None:
            rows = self._x_rows(gr.SELECT_USE + " ORDER BY used_at, key", ())
        else:
            rows = self._x_rows(
                gr.SELECT_USE + " WHERE grant_id = ? ORDER BY used_at, key", (grant_id,)
            )
        return [gr.use_from_row(row) for row in rows]

    # -- shared settings ---------------------------------------------------------------

    def ensure_meta(self, name: str, value: str) -> str:
        """Store ``value`` under ``name`` unless one is stored; the stored value."""
        return self._first_writer_wins(
            "ensure_meta",
            "INSERT INTO {meta} (name, value) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (name, value),
            "SELECT value FROM {meta} WHERE name = %s",
            name,
        )

    def _first_writer_wins(
        self,
        label: str,
        insert: LiteralString,
        values: tuple[Any, ...],
        select: LiteralString,
        key: str,
    ) -> str:
        """Insert unless the row exists, in one transaction; the stored value (ours or the
        value of the caller that won), so a lost reply retried reads the same answer."""
        insert_query, select_query = self._q(insert), self._q(select)

        def run(conn: psycopg.Connection[tuple[Any, ...]]) -> str:
            conn.execute(insert_query, values)
            row = conn.execute(select_query, (key,)).fetchone()
            assert row is not None  # inserted by us or by the caller that won
            return str(row[0])

        stored, _ = self._run(label, run)
        return stored

    def get_meta(self, name: str) -> str | None:
        """The value stored under ``name``, or None."""
        select = self._q("SELECT value FROM {meta} WHERE name = %s")
        row, _ = self._run("read", lambda conn: conn.execute(select, (name,)).fetchone())
        return None if row is None else str(row[0])
