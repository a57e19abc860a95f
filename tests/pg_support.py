"""PostgreSQL for the tests: where it is, and skip-or-fail when it is not there.

Tests that need it skip with the reason on a machine without it; CI sets
``HITL_REQUIRE_POSTGRES=1``, which turns the skip into a failure.
"""

from __future__ import annotations

import functools
import os

import pytest

PG_URL = os.environ.get("HITL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@functools.cache
def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used, or None when it can."""
    try:
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver  # noqa: F401
    except ImportError:
        return "psycopg / langgraph-checkpoint-postgres missing: pip install 'hitl-agent[postgres]'"
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            pass
    except psycopg.Error as exc:
        return f"PostgreSQL is not reachable at {PG_URL}: {' '.join(str(exc).split())}"
    return None


def require_postgres() -> None:
    """Skip (or, under HITL_REQUIRE_POSTGRES=1, fail) when PostgreSQL is unavailable."""
    reason = postgres_unavailable()
    if reason is None:
        return
    if os.environ.get("HITL_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason} (HITL_REQUIRE_POSTGRES=1 requires it)", pytrace=False)
    pytest.skip(reason)
