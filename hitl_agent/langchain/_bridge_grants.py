"""Standing grants per tool in the middleware bridge: ``policies={"pay": {"grants": ...}}``.

The tool wrapper's grants (:mod:`._grants`), for actions the middleware gates. The first form
of a gated tool with grants offers, beside Approve, "approve for this thread" and "approve
these exact arguments"; an approving answer with one of them approves the action like Approve
and, before the resume that runs it, writes the grant from the decided row (its id derived
from the row's key, so every encode of the same answer writes the same grant).

A later action of the same tool that a live grant covers (the same thread, or the same
:func:`~hitl_agent.gate.args_hash`; in the keeper's loop; the keeper's clock judges expiry)
makes no request: ``submit``/``sweep`` record a grant use keyed ``grant|<action key>``
(first writer wins) and hand the middleware an approve for it. A re-sweep finds the use and
approves again, even after the grant expired or was revoked (the action was approved once;
the resume may not have happened yet). An action that already asked a reviewer keeps its
review. Any doubt fails closed: a grant that cannot be read asks a reviewer.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..gate import args_hash
from ..gate._grants import SCOPES, grant_id
from ._bridge_schema import BridgeAction, InterruptKind

if TYPE_CHECKING:
    from ..decision import Decision
    from ..ledger import Grant, GrantUse, Ledger, ReviewRecord
    from ..policies import Grants

__all__ = [
    "APPROVE",
    "claim_resume",
    "covering_use",
    "granted_value",
    "record_bridge_grant",
    "use_key",
]

log = logging.getLogger("hitl_agent.bridge")

APPROVE: dict[str, Any] = {"type": "approve"}

RESUME_PREFIX = "grant-resume|"
"""The claim (an execution record) of the resume of an interrupt every action of which a
grant covers: no review row exists, so no dispatcher claim guards it."""


def use_key(action_key: str) -> str:
    """The grant use of the action keyed ``action_key``."""
    return f"grant|{action_key}"


def _hash(action: BridgeAction) -> str | None:
    try:
        return args_hash(action.name, action.args)
    except Exception:  # args with no stable JSON form: no args grant can match them
        return None


def covering_use(
    ledger: Ledger,
    *,
    key: str,
    action: BridgeAction,
    thread_id: str,
    loop_id: str | None,
    now: float,
) -> GrantUse | None:
    """The grant use of the action keyed ``key`` (recorded now when a live grant covers it
    and it never asked a reviewer), or None: it asks a reviewer. Reads that fail: None."""
    try:
        use = ledger.get_grant_use(use_key(key))
        if use is not None:
            return use  # it was approved under a grant: the same approve, live or not
        if ledger.get(key) is not None:
            return None  # it asked a reviewer: it keeps its review
        hashed = _hash(action)
        grant = ledger.find_grant(
            tool=action.name, loop_id=loop_id, thread_id=thread_id, args_hash=hashed, now=now
        )
        if grant is None:
            return None
        use = ledger.record_grant_use(
            use_key(key),
            grant.grant_id,
            now=now,
            thread_id=thread_id,
            tool_call_id=action.tool_call_id,
            args_hash=hashed,
        )
    except Exception:
        log.warning("bridge: standing grants of %s could not be read; asking a reviewer", key)
        return None
    log.info(
        "bridge approves tool=%s under grant_id=%s (no review) thread_id=%s",
        action.name,
        use.grant_id,
        thread_id,
    )
    return use


def granted_value(kind: InterruptKind, count: int) -> Any:
    """The resume value of an interrupt of ``count`` actions, each approved under a grant."""
    if kind == "batched":
        return {"decisions": [dict(APPROVE) for _ in range(count)]}
    if kind == "per_call":
        return dict(APPROVE)
    return [{"type": "accept", "args": None}]


def record_bridge_grant(
    ledger: Ledger,
    *,
    grants: Grants | None,
    action: BridgeAction,
    row: ReviewRecord,
    decision: Decision,
    now: float,
) -> Grant | None:
    """Write the grant the reviewer chose with this approval (none chosen: nothing); the
    same grant on every call (its id is the decided row's key's). A failure is logged: the
    action still runs once, later ones ask."""
    from ..ledger import Grant

    choice = decision.value if isinstance(decision.value, str) else ""
    scope = SCOPES.get(choice)
    if scope is None or grants is None or not decision.approved:
        return None
    seconds = grants.thread_seconds if scope == "thread" else grants.args_seconds
    hashed = _hash(action) if scope == "args" else None
    if (
        seconds is None
        or (scope == "thread" and not row.thread_id)
        or (scope == "args" and hashed is None)
    ):
        log.error(
            "grant not recorded: tool=%s request_id=%s cannot scope a %s grant; later "
            "actions ask a reviewer",
            action.name,
            row.request_id,
            scope,
        )
        return None
    who = decision.reviewer
    start = row.decided_at if row.decided_at is not None else now
    try:
        stored = ledger.record_grant(
            Grant(
                grant_id=grant_id(row.key),
                scope=scope,
                tool=action.name,
                # An escalation stage asked in another loop: the grant is the keeper's, for the
                # calls of its own loop.
                loop_id=row.payload.get("home_loop") or row.loop_id,
                thread_id=row.thread_id if scope == "thread" else None,
                args_hash=hashed,
                request_id=row.request_id,
                review_key=row.key,
                reviewer=(who.email or who.name or who.id) if who is not None else None,
                created_at=start,
                expires_at=start + seconds,
            )
        )
    except Exception:
        log.exception("grant not recorded: tool=%s request_id=%s", action.name, row.request_id)
        return None
    log.info(
        "grant recorded grant_id=%s scope=%s tool=%s request_id=%s expires_at=%s",
        stored.grant_id,
        scope,
        action.name,
        row.request_id,
        stored.expires_at,
    )
    return stored


def claim_resume(
    ledger: Ledger,
    key: str,
    *,
    thread_id: str,
    tool: str,
    now: float,
    stale_after: float,
) -> Callable[[bool], None] | None:
    """Claim the resume of a fully granted interrupt (``key``: its first action's key), or
    None when another process holds it (or did it). Replicas sweep the same threads: without
    a claim two could resume the same interrupt and run its tools twice. A claim older than
    ``stale_after`` seconds whose holder never finished (it crashed) is taken over.

    Returns ``done(ok)``: True marks it resumed; False releases it (a later sweep retries).
    """
    claim, owner = RESUME_PREFIX + key, uuid.uuid4().hex
    for _ in range(2):
        record, held = ledger.start_execution(claim, owner, now=now, thread_id=thread_id, tool=tool)
        if held:
            break
        if record.state != "started" or now - record.started_at < stale_after:
            return None
        ledger.forget_execution(claim, record.owner)  # its holder died: the next try may win
    else:
        return None

    def done(ok: bool) -> None:
        if ok:
            ledger.finish_execution(claim, owner, state="succeeded", now=now)
        else:
            ledger.forget_execution(claim, owner)

    return done
