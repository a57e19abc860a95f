"""Helpers for the tool-wrapper tests: a refund tool, a one-turn ToolNode graph, a scripted
chat model for ``create_agent``, and a scripted reviewer that answers each open request by
(tool call id, response type)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from hitl_harness import Env
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import BaseTool, tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

TIMEOUT = object()
CANCEL = object()
_CALL = re.compile(r"call id `+ (\S+) `+")


def refund_tool(effects: list[tuple[str, int]]) -> BaseTool:
    @tool
    def refund(order_id: str, amount: int) -> str:
        """Refund an order."""
        effects.append((order_id, amount))
        return f"refunded {amount} on {order_id}"

    return refund


class ScriptedModel(GenericFakeChatModel):
    """GenericFakeChatModel that accepts tools (create_agent binds them)."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


def call_of(request: Any) -> str | None:
    match = _CALL.search(request.request_text or "")
    return match.group(1) if match else None


def one_turn_graph(
    tools: list[BaseTool], calls: list[dict[str, Any]], saver: Any, store: Any = None
) -> Any:
    """START -> agent (one AIMessage with ``calls``) -> tools (ToolNode) -> END."""

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage("", tool_calls=calls, id="turn-1")]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode(tools))
    builder.add_edge(START, "agent")
    builder.add_edge("agent", "tools")
    builder.add_edge("tools", END)
    return builder.compile(checkpointer=saver, store=store)


Answer = Any  # a response value, TIMEOUT or CANCEL
Script = Mapping[tuple[str | None, str], Answer] | Callable[[Any], Answer]


def _pick(script: Script, request: Any) -> Answer:
    if callable(script):
        return script(request)
    return script[(call_of(request), request.response_type)]


def apply(env: Env, request: Any, answer: Answer) -> None:
    if answer is TIMEOUT:
        assert request.timeout_at is not None
        env.clock.advance(request.timeout_at.timestamp() - env.clock() + 1)
        env.tick()
    elif answer is CANCEL:
        env.hitl.client.requests.cancel(request.id)
    else:
        env.hitl.reviewer.respond(request.id, answer)


def answer_open(env: Env, script: Script, seen: set[str]) -> int:
    """Answer every request not answered yet; returns how many."""
    count = 0
    for request in env.requests():
        if request.id in seen or request.status != "pending":
            continue
        seen.add(request.id)
        apply(env, request, _pick(script, request))
        count += 1
    return count


def settle(env: Env, graph: Any, config: Any, script: Script, rounds: int = 8) -> Any:
    """Answer and resume (poll) until the thread has nothing left to do; the final state."""
    from hitl_agent.langgraph import GraphResumer

    dispatcher = env.keeper.dispatcher(GraphResumer(graph))
    seen: set[str] = set()
    for _ in range(rounds):
        answer_open(env, script, seen)
        dispatcher.poll_once()
        state = graph.get_state(config)
        if not state.next:
            return state
    raise AssertionError(f"thread still waiting after {rounds} rounds: {state.interrupts}")


def drive(env: Env, call: Callable[[], Any], script: Script, limit: float = 30.0) -> Any:
    """Run ``call`` (which blocks on reviews) in a thread, answering its requests as they come."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as err:  # surfaced below
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    seen: set[str] = set()
    deadline = time.monotonic() + limit
    while thread.is_alive() and time.monotonic() < deadline:
        answer_open(env, script, seen)
        thread.join(0.02)
    assert not thread.is_alive(), "the call did not finish"
    if "error" in box:
        raise box["error"]
    return box["value"]
