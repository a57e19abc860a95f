"""Standing grants: a reviewer's "approve this tool in this thread for an hour" (or "these exact
arguments"), kept durable so that every replica and every restart honours it, and no longer.

A **grant** is written when a call its reviewer approved with a grant choice runs. Its scope
is exactly what the reviewer picked, never more: the loop, the tool, and either the thread
(``scope="thread"``: any arguments) or the arguments' hash (``scope="args"``: any thread). It
expires at ``expires_at`` (the decision's time plus the policy's duration) and an operator can
revoke it (``hitl-agent grants revoke``). A **grant use** records, before the tool runs, that
one tool call ran under a grant (first writer wins), so a re-run of the call's task replays
its execution under the same grant even after the grant expired, and the audit export names
the grant of every call that ran without a review.

Both backends write these tables through the same SQL (``?`` placeholders; PostgreSQL's
backend translates them), as for execution records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

__all__ = ["Grant", "GrantScope", "GrantUse"]

GrantScope: TypeAlias = Literal["thread", "args"]

GRANT_COLUMNS = (
    "grant_id",
    "scope",
    "tool",
    "loop_id",
    "thread_id",
    "args_hash",
    "request_id",
    "review_key",
    "reviewer",
    "created_at",
    "expires_at",
    "revoked_at",
)
USE_COLUMNS = ("key", "grant_id", "thread_id", "tool_call_id", "args_hash", "used_at")

#: ``{grants}``/``{grant_uses}`` are the tables' names (identifiers per backend).
GRANTS_SQL = """CREATE TABLE {grants} (
    grant_id TEXT PRIMARY KEY,
    scope TEXT NOT NULL CHECK (scope IN ('thread', 'args')),
    tool TEXT NOT NULL,
    loop_id TEXT,
    thread_id TEXT,
    args_hash TEXT,
    request_id TEXT,
    review_key TEXT,
    reviewer TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION,
    CHECK ((scope = 'thread' AND thread_id IS NOT NULL)
        OR (scope = 'args' AND args_hash IS NOT NULL))
)"""
GRANT_USES_SQL = """CREATE TABLE {grant_uses} (
    key TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL,
    thread_id TEXT,
    tool_call_id TEXT,
    args_hash TEXT,
    used_at DOUBLE PRECISION NOT NULL
)"""

SELECT_GRANT = f"SELECT {', '.join(GRANT_COLUMNS)} FROM {{grants}}"
SELECT_USE = f"SELECT {', '.join(USE_COLUMNS)} FROM {{grant_uses}}"
INSERT_GRANT = f"""INSERT INTO {{grants}} ({", ".join(GRANT_COLUMNS)})
    VALUES ({", ".join("?" for _ in GRANT_COLUMNS)}) ON CONFLICT (grant_id) DO NOTHING"""
# A grant covers a call only for its own tool and loop, while live, and within its scope.
FIND_GRANT = (
    SELECT_GRANT
    + """ WHERE tool = ? AND (loop_id = ? OR (loop_id IS NULL AND ? IS NULL))
    AND revoked_at IS NULL AND expires_at > ?
    AND ((scope = 'thread' AND thread_id = ?) OR (scope = 'args' AND args_hash = ?))
    ORDER BY expires_at DESC, grant_id LIMIT 1"""
)
REVOKE_GRANT = "UPDATE {grants} SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL"
INSERT_USE = f"""INSERT INTO {{grant_uses}} ({", ".join(USE_COLUMNS)})
    VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING"""


@dataclass(frozen=True)
class Grant:
    """A reviewer's standing approval of later calls, within one scope, until it expires.

    Attributes:
        grant_id: stable id (derived from the review that made it).
        scope: ``thread`` (this tool in this thread, any arguments) or ``args`` (this tool
            with exactly these arguments, in any thread).
        tool: the tool's name.
        loop_id: the loop of the keeper whose review made it; it covers calls of that loop
            only.
        thread_id: the thread (``thread`` scope), else None.
        args_hash: ``hitl_agent.gate.args_hash(tool, args)`` of the approved call (``args``
            scope), else None.
        request_id: the HITL request whose answer made it.
        review_key: the review row's key.
        reviewer: who answered (email, name or id, as HITL.sh reported it), when known.
        created_at, expires_at: epoch seconds; it covers calls while ``now < expires_at``.
        revoked_at: when an operator revoked it, else None.
    """

    grant_id: str
    scope: GrantScope
    tool: str
    loop_id: str | None
    thread_id: str | None
    args_hash: str | None
    request_id: str | None
    review_key: str | None
    reviewer: str | None
    created_at: float
    expires_at: float
    revoked_at: float | None = None

    def live(self, now: float) -> bool:
        """True while the grant covers calls: not revoked and not expired at ``now``."""
        return self.revoked_at is None and now < self.expires_at

    def values(self) -> tuple[Any, ...]:
        """The column values in ``GRANT_COLUMNS`` order."""
        return tuple(getattr(self, name) for name in GRANT_COLUMNS)


@dataclass(frozen=True)
class GrantUse:
    """One tool call that ran under a grant, without a review.

    Attributes:
        key: the call's execution key (``grant|<thread>|<ns>|<tool call id>``).
        grant_id: the grant it ran under.
        thread_id, tool_call_id: the call.
        args_hash: ``hitl_agent.gate.args_hash(tool, args)`` of the call that ran.
        used_at: epoch seconds.
    """

    key: str
    grant_id: str
    thread_id: str | None
    tool_call_id: str | None
    args_hash: str | None
    used_at: float


def grant_from_row(row: tuple[Any, ...] | list[Any]) -> Grant:
    """A :class:`Grant` from a SELECT of ``GRANT_COLUMNS``."""
    return Grant(**dict(zip(GRANT_COLUMNS, row, strict=True)))


def use_from_row(row: tuple[Any, ...] | list[Any]) -> GrantUse:
    """A :class:`GrantUse` from a SELECT of ``USE_COLUMNS``."""
    return GrantUse(**dict(zip(USE_COLUMNS, row, strict=True)))
