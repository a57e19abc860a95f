"""Standing grants in the tool wrapper: the reviewer's extra choices, the grant their answer
writes, and the later calls that run under it without a new request.

A wrapper built with ``grants=Grants(...)`` adds the offered grant choices to its first form
(only when Approve itself is offered: a reviewer who could not see the whole call cannot
approve it, once or for longer). An approving answer with a grant choice runs the call like
"approve once" and, before the tool runs, writes the grant (:class:`hitl_agent.ledger.Grant`)
with exactly the scope the reviewer picked, from the decided review row: the loop, the tool,
and the thread or the arguments' hash, until the decision's time plus the policy's duration.

A later call of the same tool is covered when a live grant matches it (the keeper's clock
judges expiry). It then makes no request: it records a grant use (first writer wins), then
runs at most once through an execution record keyed ``grant|<thread>|<ns>|<tool call id>``,
whose ``request_id`` is the grant's approving request. A call that already asked a reviewer
keeps its review, and a call that ran under a grant replays under it even after the grant
expired, so a re-run task never changes its mind. Everything fails closed: no thread, no
tool call id, no grant row, a ledger read that fails: the call asks a reviewer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.messages import ToolMessage

from .._keys import gate_key
from ..gate._grants import GRANT_ARGS, GRANT_THREAD, grant_id, grant_options
from ..gate._policy import duration
from ..langgraph.pregel import graph_context
from ._once import ApprovedCall, Execution

if TYPE_CHECKING:
    from ..decision import Decision
    from ..ledger import Grant, GrantScope, Ledger, ReviewRecord
    from ..policies import Grants

__all__ = [
    "GRANT_ARGS",
    "GRANT_THREAD",
    "GrantedExecution",
    "covering_grant",
    "grant_footer",
    "grant_options",
    "ran_under_grant",
    "record_grant",
]

log = logging.getLogger("hitl_agent.langchain")


def grant_footer(grants: Grants | None, tool: str, thread: str | None) -> list[str]:
    """The trusted lines that say what each grant choice approves, and for how long."""
    if grants is None:
        return []
    lines = []
    if grants.thread_seconds is not None:
        where = f"thread `{thread}`" if thread else "this thread"
        lines.append(
            f"**Approve for this thread** also runs every later call of {tool} in {where}, "
            f"with any arguments, without asking, for {duration(grants.thread_seconds)} "
            "from your answer."
        )
    if grants.args_seconds is not None:
        lines.append(
            f"**Approve these exact arguments** also runs later calls of {tool} with exactly "
            f"these arguments, in any thread, without asking, for "
            f"{duration(grants.args_seconds)} from your answer."
        )
    lines.append("An operator can revoke a grant at any time (`hitl-agent grants revoke`).")
    return lines


def _reviewer(decision: Decision | None) -> str | None:
    who = decision.reviewer if decision is not None else None
    if who is None:
        return None
    return who.email or who.name or who.id


def record_grant(
    ledger: Ledger,
    *,
    scope: GrantScope,
    grants: Grants,
    tool: str,
    row: ReviewRecord,
    decision: Decision | None,
    now: float,
) -> Grant | None:
    """Write the grant the reviewer chose, from its decided review row; None (and an ERROR
    line) when the row cannot scope it: the call still runs once, later calls ask."""
    from ..ledger import Grant

    seconds = grants.thread_seconds if scope == "thread" else grants.args_seconds
    args_hash = row.payload.get("args_hash")
    if seconds is None or (scope == "thread" and not row.thread_id) or not args_hash:
        log.error(
            "grant not recorded: the review of tool=%s request_id=%s has no %s to scope it; "
            "later calls ask a reviewer",
            tool,
            row.request_id,
            "thread" if scope == "thread" else "arguments hash",
        )
        return None
    start = row.decided_at if row.decided_at is not None else now
    grant = Grant(
        grant_id=grant_id(row.key),
        scope=scope,
        tool=tool,
        # An escalation stage asked in another loop: the grant is the keeper's, for the
        # calls of its own loop.
        loop_id=row.payload.get("home_loop") or row.loop_id,
        thread_id=row.thread_id if scope == "thread" else None,
        args_hash=str(args_hash) if scope == "args" else None,
        request_id=row.request_id,
        review_key=row.key,
        reviewer=_reviewer(decision),
        created_at=start,
        expires_at=start + seconds,
    )
    stored = ledger.record_grant(grant)
    log.info(
        "grant recorded grant_id=%s scope=%s tool=%s request_id=%s expires_at=%s",
        stored.grant_id,
        stored.scope,
        tool,
        row.request_id,
        stored.expires_at,
    )
    return stored


@dataclass
class GrantedExecution(Execution):
    """An execution run under a grant: its own idempotency key per call (the grant's
    approving request is shared by every call it covers)."""

    grant_id: str = ""

    def _approved(self) -> ApprovedCall:
        return ApprovedCall(
            idempotency_key=f"hitl-{self.grant_id}-{self.tool_call_id}",
            request_id=self.request_id,
            decision=self.decision,
            tool=self.tool,
            tool_call_id=self.tool_call_id,
        )


def covering_grant(
    ledger: Ledger,
    *,
    tool: str,
    loop_id: str | None,
    args_hash: str,
    call_id: str | None,
    clock: Callable[[], float] = time.time,
    not_run: Callable[[str], Any],
) -> GrantedExecution | None:
    """The execution of a call a grant covers (or covered, in an earlier run of its task),
    or None: the call asks a reviewer."""
    if call_id is None:
        return None  # no durable key for the call: nothing could replay it once
    ctx = graph_context()
    if ctx is None or not ctx.thread_id:
        return None
    key = f"grant|{ctx.thread_id}|{ctx.checkpoint_ns}|{call_id}"
    use = ledger.get_grant_use(key)
    grant: Grant | None
    if use is not None:
        grant = ledger.get_grant(use.grant_id)
        # Replay under it, live or not, once its action started; one that never started
        # (the run stopped in between) starts only while the grant is still live.
        if ledger.get_execution(key) is None and (grant is None or not grant.live(clock())):
            return None
    elif ledger.get(gate_key(ctx.thread_id, ctx.checkpoint_ns, call_id, 0)) is not None:
        return None  # the call asked a reviewer in an earlier run: it keeps its review
    else:
        grant = ledger.find_grant(
            tool=tool, loop_id=loop_id, thread_id=ctx.thread_id, args_hash=args_hash, now=clock()
        )
        if grant is not None:
            use = ledger.record_grant_use(
                key,
                grant.grant_id,
                now=clock(),
                thread_id=ctx.thread_id,
                tool_call_id=call_id,
                args_hash=args_hash,
            )
            if use.grant_id != grant.grant_id:  # a concurrent run recorded another grant
                grant = ledger.get_grant(use.grant_id)
    if grant is None:
        return None
    log.info(
        "running tool=%s under grant_id=%s scope=%s (no review) thread_id=%s",
        tool,
        grant.grant_id,
        grant.scope,
        ctx.thread_id,
    )
    return GrantedExecution(
        ledger=ledger,
        key=key,
        tool=tool,
        request_id=grant.request_id or "",
        thread_id=ctx.thread_id,
        tool_call_id=call_id,
        decision=None,
        not_run=not_run,
        clock=clock,
        grant_id=grant.grant_id,
    )


def ran_under_grant(tool: Any, call_id: str | None) -> bool:
    """True when the sibling call ``call_id`` of this task ran under a grant in an earlier run
    of the task: it makes no review row, so an approved call must not wait for one. Any
    doubt (no grants, no graph, an unreadable ledger) answers False: wait for its review."""
    keeper = getattr(tool, "keeper", None)
    if getattr(tool, "grants", None) is None or call_id is None or keeper is None:
        return False
    try:
        ctx = graph_context()
        if ctx is None:
            return False
        key = f"grant|{ctx.thread_id}|{ctx.checkpoint_ns}|{call_id}"
        return keeper.ledger.get_grant_use(key) is not None
    except Exception:
        return False


def not_run_message(tool: str, call_id: str) -> Callable[[str], Any]:
    """The wrapper's not-run result for a granted call's replay."""
    return lambda message: ToolMessage(
        f"Not run: {message}", tool_call_id=call_id, name=tool, status="error"
    )
