"""Approved calls wait for their siblings' reviews before they act.

A ``ToolNode`` runs every call of one AIMessage in one LangGraph task, and LangGraph re-runs the
whole task on each resume. A call that acted in a run which then gets suspended (because a
sibling asks a new question in it) acts again on the next resume. The resolver resumes a task
only when all its open reviews are decided, but three things still make a sibling ask in a
run where an approved call would act:

* a first answer that needs a second request (edit, answer instead, reject and say why);
* a sibling that never got to create its review in an earlier run (``ThreadPoolExecutor.map``
  cancels the calls not yet started when an earlier one suspends);
* in an async ``ToolNode``, ``asyncio.gather`` does not cancel the other calls when one
  suspends, so a call can still be running after its run is over.

So before it acts, a gated call checks, in the ledger, that its run will complete: every
review of the task decided, every needed follow-up decided, every gated sibling of the
AIMessage (from the ``ToolRuntime``) that runs in this task recorded, and no call of this run
suspended already. If
not, it suspends too — but only once some review of the task is open, so a later answer
resumes the task (it waits briefly for a sibling that is about to record one). Decided rows,
not thread timing, drive the answer, so every run reaches the same conclusion. Separate tasks
per call (``create_agent`` sends each call as its own task) never wait on each other.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, NoReturn

from .._exceptions import SiblingReviewMissingError
from .._keys import GraphKey, gate_key, parse_gate_key
from ..langgraph.pregel import GraphContext, graph_context, wait_for_decision
from ..protocol import review_payload
from . import _forms as forms

if TYPE_CHECKING:
    from ..ledger import Ledger, ReviewRecord

__all__ = [
    "ahold_for_siblings",
    "hold_for_siblings",
    "note_started",
    "note_suspended",
]


_FOLLOW_UPS = frozenset({forms.EDIT, forms.RESPOND, forms.REJECT_WITH_REASON})
_APPEAR_SECONDS = 30.0  # how long a sibling may take to record its review
_POLL = 0.02
# A sibling call of one ToolNode task starts within milliseconds of this one (the executor
# submits them together); one not started after this long runs in another task (create_agent
# sends each call as its own task) or was cancelled because an earlier call suspended.
_START_GRACE = 0.25


def _missing() -> SiblingReviewMissingError:
    return SiblingReviewMissingError(
        "a sibling tool call's review was never recorded within "
        f"{_APPEAR_SECONDS:.0f} s; this approved call did not run (route tool calls with "
        "hitl_agent.langgraph.tools_condition: one task per call)"
    )


def note_suspended() -> None:
    """Record that a call of the current task run suspended: nothing in this run may act."""
    ctx = graph_context()
    if ctx is not None:
        ctx.run.suspended = True


def note_started(call_id: str | None) -> None:
    """Record that the gated call ``call_id`` runs in the current task run."""
    ctx = graph_context()
    if ctx is not None and call_id is not None:
        with ctx.run.lock:
            ctx.run.started.add(call_id)


def _started(ctx: GraphContext) -> set[str]:
    with ctx.run.lock:
        return set(ctx.run.started)


def _parsed(row: ReviewRecord) -> GraphKey | None:
    # The gate's keys end in "|tool:<id>|<index>" (hitl_agent._keys.gate_key).
    return parse_gate_key(row.key, thread_id=row.thread_id, checkpoint_ns=row.checkpoint_ns)


def _next_key(row: ReviewRecord) -> str | None:
    key = _parsed(row)
    return None if key is None else key.next().format()


def _needs_follow_up(row: ReviewRecord) -> bool:
    decision = row.decision or {}
    return (
        "args_hash" in row.payload
        and row.payload.get("response_type") == "single_select"
        and decision.get("status") == "completed"
        and decision.get("value") in _FOLLOW_UPS
    )


def unsettled(
    rows: list[ReviewRecord], siblings: list[str], aliased: frozenset[str] = frozenset()
) -> str | None:
    """What the task still waits for (a key or a tool call id), or None when nothing.

    An open row; a follow-up a decided first answer asks for and that is not decided (whether
    or not recorded yet); a gated sibling call with no review recorded yet (``aliased``: the
    calls whose review reuses a concurrent run's request, recorded as an alias, not a row).
    """
    by_key = {row.key: row for row in rows}
    for row in rows:
        if row.decision is None and row.state in ("intent", "pending"):
            return row.key
        follow = _next_key(row) if _needs_follow_up(row) else None
        if follow is not None:
            other = by_key.get(follow)
            if other is None or other.decision is None:
                return follow
    recorded = {key.tool_call_id for key in map(_parsed, rows) if key is not None} | aliased
    for call_id in siblings:
        if call_id not in recorded:
            return call_id
    return None


def _open(rows: list[ReviewRecord]) -> bool:
    return any(row.decision is None and row.request_id is not None for row in rows)


def _suspend(ctx: GraphContext, why: str, own: ReviewRecord) -> NoReturn:
    assert own.request_id is not None
    ctx.run.suspended = True
    payload = review_payload(
        request_id=own.request_id,
        key=own.key,
        summary=str(own.payload.get("summary", "")),
        priority=str(own.payload.get("priority", "medium")),
        response_type=str(own.payload.get("response_type", "")),
        timeout_at=own.deadline,
    )
    # A decision id that never arrives: the gate's wait merges every resume value this run
    # still holds (siblings find theirs in the run's table), then interrupts.
    wait_for_decision(ctx, f"hold|{why}", dict(payload))
    raise AssertionError("unreachable: a hold is never delivered")


def _unrecorded(rows: list[ReviewRecord], siblings: list[str]) -> list[str]:
    recorded = {key.tool_call_id for key in map(_parsed, rows) if key is not None}
    return [call_id for call_id in siblings if call_id not in recorded]


def _alias_key(ctx: GraphContext, call_id: str) -> str:
    # A call's first review in this task: an alias has it when the call reused a concurrent
    # run's request (hitl_agent.gate._create.join_slot).
    return gate_key(ctx.thread_id, ctx.checkpoint_ns, call_id, 0)


def _step(
    ctx: GraphContext,
    rows: list[ReviewRecord],
    siblings: list[str],
    own_id: str,
    waited: float,
    aliased: frozenset[str] = frozenset(),
) -> bool:
    """True: act now. Raises GraphInterrupt to suspend. False: look again shortly."""
    started = _started(ctx)
    suspended = ctx.run.suspended
    missing = [call_id for call_id in siblings if call_id not in started]
    if missing and not suspended:
        # One sibling started here: they share this task, so wait for the others to start
        # (or for the run to suspend). None started: wait a moment, then take them to run
        # in tasks of their own.
        same_task = len(missing) < len(siblings)
        if waited < (_APPEAR_SECONDS if same_task else _START_GRACE):
            return False
    why = unsettled(rows, [call_id for call_id in siblings if call_id in started], aliased)
    if why is None and not suspended:
        return True
    if why is None or _open(rows):
        own = next(row for row in rows if row.request_id == own_id)
        _suspend(ctx, why or "run suspended", own)
    return False


def hold_for_siblings(ledger: Ledger, own_request_id: str, siblings: list[str]) -> None:
    """Return when this call may act; suspend (``GraphInterrupt``) when it must wait.

    Args:
        ledger: the keeper's ledger.
        own_request_id: this call's first review.
        siblings: the ids of the other calls of the AIMessage that will ask a reviewer.

    Raises:
        SiblingReviewMissingError: a sibling's review was never recorded and none is open
            (it failed before asking, or it could not start: a thread pool smaller than the
            turn's gated calls).
    """
    ctx = graph_context()
    if ctx is None:
        return
    start = time.monotonic()
    deadline = start + _APPEAR_SECONDS
    while True:
        rows = ledger.list_task(ctx.thread_id, ctx.checkpoint_ns)
        aliased = frozenset(
            call_id
            for call_id in _unrecorded(rows, siblings)
            if ledger.get_alias(_alias_key(ctx, call_id)) is not None
        )
        if _step(ctx, rows, siblings, own_request_id, time.monotonic() - start, aliased):
            return
        if time.monotonic() > deadline:
            raise _missing()
        time.sleep(_POLL)


async def ahold_for_siblings(ledger: Ledger, own_request_id: str, siblings: list[str]) -> None:
    """Async twin of :func:`hold_for_siblings`."""
    ctx = graph_context()
    if ctx is None:
        return
    start = time.monotonic()
    deadline = start + _APPEAR_SECONDS
    while True:
        rows = await ledger.alist_task(ctx.thread_id, ctx.checkpoint_ns)
        aliased = frozenset(
            [
                call_id
                for call_id in _unrecorded(rows, siblings)
                if await ledger.aget_alias(_alias_key(ctx, call_id)) is not None
            ]
        )
        if _step(ctx, rows, siblings, own_request_id, time.monotonic() - start, aliased):
            return
        if time.monotonic() > deadline:
            raise _missing()
        await asyncio.sleep(_POLL)
