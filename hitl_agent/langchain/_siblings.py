"""Approved calls wait for their siblings' follow-up reviews before they act.

A ``ToolNode`` runs every call of one AIMessage in one LangGraph task, and LangGraph re-runs the
whole task on each resume. The resolver resumes a task only when all its reviews are decided,
so single-step reviews are safe; but a sibling whose first answer was "edit", "answer instead"
or "reject and say why" asks a *second* question in the re-run, suspending the task again. A
call that was approved and ran in that same re-run would run once more on the next resume.

So before it acts, a gated call looks at its task's rows in the ledger: while a sibling's first
answer needs a follow-up that is not decided yet, the call suspends too (on that follow-up's
interrupt) instead of running. Which siblings need one is read from decided rows, not from
thread timing, so every run of the task reaches the same conclusion. Separate tasks per call
(``create_agent`` sends each call as its own task) never wait on each other.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from ..gate._pregel import GraphContext, graph_context, wait_for_decision
from ..protocol import review_payload
from . import _forms as forms

if TYPE_CHECKING:
    from ..ledger import Ledger, ReviewRecord

__all__ = ["ahold_for_siblings", "hold_for_siblings"]

_FOLLOW_UPS = frozenset({forms.EDIT, forms.RESPOND, forms.REJECT_WITH_REASON})
_APPEAR_SECONDS = 30.0  # how long a sibling may take to record its follow-up's intent
_POLL = 0.02


def _next_key(key: str) -> str | None:
    # The gate's keys end in "|<index>" (hitl_agent.gate._pregel.GraphContext.key): a call's
    # follow-up is the same tool-call base with the next index.
    prefix, _, index = key.rpartition("|")
    return f"{prefix}|{int(index) + 1}" if index.isdigit() and prefix else None


def _needs_follow_up(row: ReviewRecord) -> bool:
    decision = row.decision or {}
    return (
        "args_hash" in row.payload
        and row.payload.get("response_type") == "single_select"
        and decision.get("status") == "completed"
        and decision.get("value") in _FOLLOW_UPS
    )


def _waiting_on(rows: list[ReviewRecord]) -> tuple[str, ReviewRecord | None] | None:
    """The first sibling review still to come: (its key, its row or None if not recorded)."""
    by_key = {row.key: row for row in rows}
    for row in rows:
        if row.decision is None and row.state in ("intent", "pending"):
            return row.key, row
        follow = _next_key(row.key) if _needs_follow_up(row) else None
        if follow is not None:
            other = by_key.get(follow)
            if other is None or other.decision is None:
                return follow, other
    return None


def _payload(row: ReviewRecord) -> dict[str, Any]:
    assert row.request_id is not None
    return dict(
        review_payload(
            request_id=row.request_id,
            key=row.key,
            summary=str(row.payload.get("summary", "")),
            priority=str(row.payload.get("priority", "medium")),
            response_type=str(row.payload.get("response_type", "")),
            timeout_at=row.deadline,
        )
    )


def _wait(ctx: GraphContext, row: ReviewRecord) -> None:
    assert row.request_id is not None
    wait_for_decision(ctx, row.request_id, _payload(row))


def hold_for_siblings(ledger: Ledger) -> None:
    """Suspend (``GraphInterrupt``) while a sibling call of this task has a review to come.

    Returns at once outside a graph run and when no sibling waits.

    Raises:
        TimeoutError: a sibling's follow-up never got recorded (that sibling failed).
    """
    ctx = graph_context()
    if ctx is None:
        return
    deadline = time.monotonic() + _APPEAR_SECONDS
    while True:
        waiting = _waiting_on(ledger.list_task(ctx.thread_id, ctx.checkpoint_ns))
        if waiting is None:
            return
        key, row = waiting
        if row is not None and row.request_id is not None:
            _wait(ctx, row)  # interrupts now; returns on a later run once it is decided
            continue
        if time.monotonic() > deadline:
            raise TimeoutError(f"a sibling tool call's review {key!r} was never recorded")
        time.sleep(_POLL)


async def ahold_for_siblings(ledger: Ledger) -> None:
    """Async twin of :func:`hold_for_siblings`."""
    ctx = graph_context()
    if ctx is None:
        return
    deadline = time.monotonic() + _APPEAR_SECONDS
    while True:
        rows = await ledger.alist_task(ctx.thread_id, ctx.checkpoint_ns)
        waiting = _waiting_on(rows)
        if waiting is None:
            return
        key, row = waiting
        if row is not None and row.request_id is not None:
            _wait(ctx, row)
            continue
        if time.monotonic() > deadline:
            raise TimeoutError(f"a sibling tool call's review {key!r} was never recorded")
        await asyncio.sleep(_POLL)
