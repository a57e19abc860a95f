"""The checkpointer ``hitl-agent worker`` and ``bridge`` open from ``--checkpointer``.

``postgresql://…`` is a ``psycopg_pool.ConnectionPool`` whose connections are checked on every
borrow (``ConnectionPool.check_connection``; ``autocommit``, ``prepare_threshold=0``,
``dict_row`` as langgraph-checkpoint-postgres documents): a connection killed by a restart, a
failover, an idle-timeout proxy or ``pg_terminate_backend`` is replaced on its next use.
``PostgresSaver.from_conn_string`` held one connection for the worker's life: after one reset
every resume failed until a restart (issue 20 F2).

The check runs in :class:`_RecheckingPool`'s ``getconn``, not as the pool's ``check=``: after
a failed ``check=`` the pool sleeps 1 s, then 2 s, 4 s… before the next borrow, while the saver
holds its lock, so under repeated resets nothing was resumed at all (0 of 40 approvals within
20 s of one kill a second, measured). Here a dead connection is discarded and the next borrow
is immediate (the pool opens a new one); only a run of failures backs off, by milliseconds.

Each opened checkpointer comes with a ``probe``: a trivial query that raises when its store
does not answer (what ``/readyz`` and ``worker --once`` check).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import click

from ..dispatch._health import scrub, url_secrets

__all__ = ["OpenCheckpointer", "open_checkpointer"]

POOL_MAX_SIZE = 4
"""The saver takes one connection at a time (it serialises its own calls); the rest are for
probes and the odd concurrent reader."""
POOL_TIMEOUT = 30.0
"""Seconds a checkpointer call waits for a connection before it fails (the ledger's too)."""
_PROBE_CONFIG: Any = {"configurable": {"thread_id": "hitl-agent-readiness-probe"}}


@dataclass(frozen=True)
class OpenCheckpointer:
    """A checkpointer and how to tell that its store answers."""

    saver: Any
    """The LangGraph checkpointer (``BaseCheckpointSaver``)."""
    kind: str
    """``sqlite``, ``postgresql`` or ``memory``."""
    pool: Any = None
    """The PostgreSQL connection pool (None for the others)."""

    def probe(self) -> None:
        """Run a trivial query; raise when the store does not answer."""
        if self.pool is not None:
            # The pool's own connection, not the saver's lock: a probe never queues behind a
            # long resume, and a dead connection is replaced by the borrow's check.
            with self.pool.connection(timeout=POOL_TIMEOUT) as conn:
                conn.execute("SELECT 1")
            return
        self.saver.get_tuple(_PROBE_CONFIG)


def _rechecking_pool() -> type[Any]:
    from psycopg_pool import ConnectionPool, PoolTimeout

    class _RecheckingPool(ConnectionPool):
        """A pool that hands out only connections that answer (see the module docstring)."""

        def getconn(self, timeout: float | None = None) -> Any:
            deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
            failures = 0
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PoolTimeout(f"no working connection within {self.timeout:g} s")
                conn = super().getconn(timeout=left)
                try:
                    ConnectionPool.check_connection(conn)
                except Exception:
                    self.putconn(conn)  # broken: the pool discards it and opens another
                    failures += 1
                    if failures > POOL_MAX_SIZE:  # not one stale connection: a flapping server
                        time.sleep(min(0.1, 0.005 * 2 ** (failures - POOL_MAX_SIZE)))
                    continue
                return conn

    return _RecheckingPool


def _postgres(url: str) -> Iterator[OpenCheckpointer]:
    try:
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row
    except ImportError as err:
        raise click.UsageError(
            "--checkpointer postgresql:// needs pip install 'hitl-agent[postgres]'"
        ) from err
    pool: Any = _rechecking_pool()(
        url,
        min_size=1,
        max_size=POOL_MAX_SIZE,
        timeout=POOL_TIMEOUT,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=False,
        name="hitl-checkpointer",
    )
    secrets = url_secrets(url)
    try:
        pool.open(wait=True, timeout=POOL_TIMEOUT)
        saver = PostgresSaver(pool)
        saver.setup()
    except Exception as err:
        pool.close()
        reason = scrub(f"{type(err).__name__}: {err}", secrets)
        raise click.ClickException(
            f"--checkpointer: PostgreSQL did not answer ({reason}); check the URL and that "
            "the server is up"
        ) from None
    try:
        yield OpenCheckpointer(saver, "postgresql", pool)
    finally:
        pool.close()


@contextmanager
def open_checkpointer(url: str) -> Iterator[OpenCheckpointer]:
    """Open ``sqlite:///path.db``, ``postgresql://…`` (pooled, reconnecting) or ``memory``.

    Raises:
        click.UsageError: an unknown scheme, or ``postgresql://`` without the extra.
        click.ClickException: PostgreSQL did not answer within 30 s (the message carries no
            password).
    """
    if url.startswith("sqlite:///"):
        from langgraph.checkpoint.sqlite import SqliteSaver

        conn = sqlite3.connect(url[len("sqlite:///") :], check_same_thread=False)
        try:
            yield OpenCheckpointer(SqliteSaver(conn), "sqlite")
        finally:
            conn.close()
    elif url.startswith(("postgresql://", "postgres://")):
        yield from _postgres(url)
    elif url == "memory":
        from langgraph.checkpoint.memory import InMemorySaver

        yield OpenCheckpointer(InMemorySaver(), "memory")
    else:
        raise click.UsageError(
            f"--checkpointer {scrub(url, url_secrets(url))!r}: use sqlite:///path.db, "
            "postgresql://... or memory"
        )
