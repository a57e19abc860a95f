"""The backend fixtures: every conformance test runs once per ledger backend.

``sqlite`` always runs. ``postgres`` runs when PostgreSQL answers at
``$HITL_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``) and is
skipped with the reason otherwise, except under ``HITL_REQUIRE_POSTGRES=1`` (CI), where an
unreachable server fails the run. Each postgres test gets its own schema, dropped afterwards.

To run the suite against a new backend, add a ``LedgerSpec`` branch that opens it and a
parameter to ``BACKENDS``; see docs/ledger.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pg_support import PG_URL, require_postgres

from hitl_agent.ledger import Ledger, SqliteLedger

from .conformance import LeaseClock


def drop_schema(schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@dataclass(frozen=True)
class LedgerSpec:
    """How to open one backend's ledger; picklable, so worker processes can open their own."""

    backend: str
    target: str  # the SQLite file, or the PostgreSQL conninfo
    schema: str | None = None

    def open(
        self, *, min_size: int = 1, max_size: int = 10, clock: Callable[[], float] | None = None
    ) -> Ledger:
        """Open the ledger; ``clock`` judges its leases (default: the backend's own)."""
        if self.backend == "sqlite":
            if clock is None:
                return SqliteLedger(self.target)
            return SqliteLedger(self.target, clock=clock)
        if self.backend == "postgres":
            from hitl_agent.ledger import PostgresLedger

            return PostgresLedger(
                self.target, schema=self.schema, min_size=min_size, max_size=max_size, clock=clock
            )
        raise AssertionError(f"unknown backend {self.backend!r}")


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def ledger_spec(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LedgerSpec]:
    """A fresh, set-up, empty ledger location for one backend."""
    backend: str = request.param
    if backend == "sqlite":
        spec = LedgerSpec("sqlite", str(tmp_path / "ledger.db"))
    else:
        require_postgres()
        spec = LedgerSpec("postgres", PG_URL, schema=f"hitl_test_{uuid.uuid4().hex[:12]}")
    ledger = spec.open()
    try:
        ledger.setup()
    finally:
        ledger.close()
    try:
        yield spec
    finally:
        if spec.schema is not None:
            drop_schema(spec.schema)


@pytest.fixture
def ledger(ledger_spec: LedgerSpec) -> Iterator[Ledger]:
    """An open ledger of each backend, its leases judged by a settable
    :class:`~conformance.LeaseClock` (set it with ``conformance.at``)."""
    opened = ledger_spec.open(max_size=20, clock=LeaseClock())
    try:
        yield opened
    finally:
        opened.close()
