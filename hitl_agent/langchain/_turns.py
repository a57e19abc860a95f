"""A thread that moved on to a new turn leaves no review in the reviewers' queue.

New input on a thread whose tool call still waits for a reviewer (the README program started
again and re-invoked its thread; a chat app that lets the user type on) starts a new model
turn: LangGraph drops the waiting task, and its request would sit in the reviewers' queue with
nothing to resume. When a gated call of a later turn asks, the wrapper retires those requests:
cancelled on HITL.sh (the quota refunded), their rows decided *cancelled* ("Superseded"),
logged. A decided one the thread moved past is the resolver's to report (never silently
dropped: hitl_agent.dispatch._resolver).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, ToolMessage

from .._keys import parse_gate_key
from ..gate import retire_request

if TYPE_CHECKING:
    from ..gate import Gatekeeper

__all__ = ["earlier_unanswered", "retire_earlier"]

_REASON = (
    "Superseded: the thread moved on to a new turn before this call was answered; this "
    "request was cancelled and is not approved."
)


def _messages(runtime: Any) -> list[Any]:
    state = getattr(runtime, "state", None)
    messages = state.get("messages") if isinstance(state, dict) else None
    if messages is None:
        messages = getattr(state, "messages", None)
    return list(messages or [])


def earlier_unanswered(runtime: Any, call_id: str | None) -> set[str]:
    """The tool call ids of earlier model turns in the thread's state that never got a
    result: the thread moved past them. Empty when there are none (no IO)."""
    messages = _messages(runtime)
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    earlier: set[str] = set()
    for message in messages:
        calls = message.tool_calls if isinstance(message, AIMessage) else []
        if any(call.get("id") == call_id for call in calls):
            return earlier - answered  # the current turn: everything before it is earlier
        earlier.update(str(call["id"]) for call in calls if call.get("id"))
    return set()  # the current call is not in the state: nothing can be told


_DONE: set[tuple[int, str, frozenset[str]]] = set()  # (ledger, thread, stale calls) done


def retire_earlier(keeper: Gatekeeper, thread_id: str, stale: set[str], by: str) -> int:
    """Retire the open requests of ``stale`` calls in ``thread_id``; how many. Each
    (thread, calls) is looked up once per process: later turns keep the stale calls in
    their state, and their rows are decided after the first time."""
    done = (id(keeper.ledger), thread_id, frozenset(stale))
    if done in _DONE:
        return 0
    retired = 0
    for row in keeper.ledger.list_open():
        if row.thread_id != thread_id or row.state != "pending" or row.request_id is None:
            continue
        key = parse_gate_key(row.key, thread_id=row.thread_id, checkpoint_ns=row.checkpoint_ns)
        if key is None or key.tool_call_id not in stale:
            continue
        retire_request(
            keeper.ledger, keeper.clock, keeper.client.requests.cancel, row, _REASON, by=by
        )
        retired += 1
    _DONE.add(done)
    return retired
