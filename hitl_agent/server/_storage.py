"""The SQLite file behind the local server: schema, one connection, one lock.

One connection guarded by a :class:`threading.Lock` (``check_same_thread=False``) serves every
thread: the event loop's handlers, the scheduler and a test thread calling the Python API.
Each operation is short and synchronous; measured in ``bench/bench_server.py``, a create or a
page of 50 takes well under a millisecond of database time, so a pool would buy nothing.

File databases run in WAL mode, so a crash loses at most the transaction in flight and readers
(``sqlite3`` shell, a second process) never block the server. The WAL is copied back into the
database (checkpointed) by a daemon thread on a connection of its own, not by the commit that
happens to fill it: left to SQLite, one create in ~100 paid for a whole checkpoint and its
fsyncs on the event loop (create commits: 347 µs mean, 122 µs without; bench/README.md).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["PRIORITY_RANK", "Storage"]

log = logging.getLogger("hitl_agent.server")

_CHECKPOINT_EVERY = 0.2
"""Seconds the checkpoint thread lets commits gather before it copies them back."""
_FALLBACK_AUTOCHECKPOINT = 20_000
"""The writer checkpoints by itself past this many pages (≈ 80 MiB): the WAL stays bounded
even if the checkpoint thread falls behind or is stuck behind a long reader."""

PRIORITY_RANK: dict[str, int] = {"low": 0, "medium": 1, "high": 2, "critical": 3}
"""Queue order: critical first. Stored as a column so ``priority_desc`` uses an index."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    token_hash TEXT UNIQUE,
    created_at REAL NOT NULL,
    last_active REAL
);
CREATE INDEX IF NOT EXISTS users_email ON users (email);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users (id),
    status TEXT NOT NULL DEFAULT 'active',
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS loops (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT,
    icon TEXT NOT NULL,
    creator_id TEXT NOT NULL REFERENCES users (id),
    invite_code TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS loops_creator ON loops (creator_id, created_at);
CREATE TABLE IF NOT EXISTS loop_members (
    loop_id TEXT NOT NULL REFERENCES loops (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id),
    status TEXT NOT NULL,
    role TEXT NOT NULL,
    joined_at REAL,
    PRIMARY KEY (loop_id, user_id)
);
CREATE INDEX IF NOT EXISTS loop_members_user ON loop_members (user_id, status);
CREATE TABLE IF NOT EXISTS requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    loop_id TEXT NOT NULL,
    api_key_id TEXT NOT NULL,
    creator_id TEXT NOT NULL,
    status TEXT NOT NULL,
    priority TEXT NOT NULL,
    priority_rank INTEGER NOT NULL,
    body TEXT NOT NULL,
    broadcasted_to TEXT NOT NULL,
    timeout_at REAL NOT NULL,
    claimed_by TEXT,
    claimed_at REAL,
    claim_expires_at REAL,
    response_data TEXT,
    response_by TEXT,
    response_at REAL,
    cancelled_at REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_key_created ON requests (api_key_id, created_at, seq);
CREATE INDEX IF NOT EXISTS requests_key_status ON requests (api_key_id, status, created_at, seq);
CREATE INDEX IF NOT EXISTS requests_key_loop ON requests (api_key_id, loop_id, created_at, seq);
CREATE INDEX IF NOT EXISTS requests_key_priority
    ON requests (api_key_id, priority_rank, created_at, seq);
CREATE INDEX IF NOT EXISTS requests_open_timeout ON requests (timeout_at)
    WHERE status IN ('pending', 'claimed');
CREATE INDEX IF NOT EXISTS requests_claim_expiry ON requests (claim_expires_at)
    WHERE status = 'claimed';
CREATE INDEX IF NOT EXISTS requests_queue ON requests (loop_id, status, priority_rank, seq);
CREATE TABLE IF NOT EXISTS feedback (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    api_key_id TEXT NOT NULL,
    feedback TEXT NOT NULL,
    submitted_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    event TEXT NOT NULL,
    url TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    lease_until REAL,
    last_error TEXT,
    created_at REAL NOT NULL,
    delivered_at REAL,
    UNIQUE (request_id, event)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS workflows (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    owner_id TEXT NOT NULL REFERENCES users (id),
    loop_id TEXT NOT NULL,
    status TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    request_id TEXT,
    api_key_id TEXT NOT NULL,
    shape TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_workflow ON executions (workflow_id, created_at);
CREATE INDEX IF NOT EXISTS executions_request ON executions (request_id);
CREATE TABLE IF NOT EXISTS review_panels (
    request_id TEXT PRIMARY KEY,
    policy TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS responses (
    request_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    value TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (request_id, user_id)
);
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    api_key_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    file_name TEXT NOT NULL,
    file_type TEXT NOT NULL,
    data BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS usage (
    api_key_id TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (api_key_id, window_start)
);
"""


class Storage:
    """The database: open it, run a transaction under the lock, close it.

    Args:
        path: a file path, or ``":memory:"`` for a database that lives as long as this object.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30.0
        )
        self._conn.row_factory = sqlite3.Row
        self._closed = False
        with self._lock:
            if self.path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL: a commit survives a process crash; only an OS crash can lose
                # the last transactions, which a local development server can afford.
                self._conn.execute("PRAGMA synchronous=NORMAL")
                self._conn.execute(f"PRAGMA wal_autocheckpoint={_FALLBACK_AUTOCHECKPOINT}")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(_SCHEMA)
        self._commits = threading.Event()
        self._stopping = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if self.path != ":memory:":
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="hitl-local-checkpoint", daemon=True
            )
            self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
        try:
            while not self._closed:
                self._commits.wait()  # set by a commit (and by close)
                # One checkpoint covers the commits of the next moment too.
                if self._stopping.wait(_CHECKPOINT_EVERY):
                    break
                self._commits.clear()
                # PASSIVE: copies what it can without waiting for (or blocking) the writer;
                # once all is copied, the next writer starts the WAL from its beginning.
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:  # the writer's fallback checkpoints take over
            log.warning("WAL checkpoint thread stopped: %s", exc)
        finally:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock and a write transaction; commit on success, roll back on error."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the local HITL server's database is closed")
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        self._commits.set()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock for reads that need no transaction."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the local HITL server's database is closed")
            yield self._conn

    def get_meta(self, key: str) -> str | None:
        """A value from the ``meta`` table."""
        with self.read() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def close(self) -> None:
        """Close the connection. Idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()
        self._stopping.set()
        self._commits.set()
        if self._checkpointer is not None and self._checkpointer is not threading.current_thread():
            self._checkpointer.join(5.0)

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed
