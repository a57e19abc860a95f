"""``tools_condition``: LangGraph's router, but each tool call runs in a task of its own.

LangGraph's ``tools_condition`` routes a model turn to ``ToolNode`` as *one* task, and
LangGraph re-runs a whole task on each resume: when one call of the turn waits for a reviewer,
every other call of the turn runs again when the thread resumes (a plain ``lookup``, a refund
that ``when=`` let through). Routing each call as its own task (a ``Send`` per call, as
LangChain's ``create_agent`` does) lets LangGraph keep the finished calls' results in the
checkpoint and re-run only the call that waited. It is a drop-in replacement::

    from hitl_agent.langgraph import tools_condition
    builder.add_conditional_edges("agent", tools_condition)
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.messages import AIMessage
from langgraph.types import Send

__all__ = ["tools_condition"]


def tools_condition(
    state: list[Any] | dict[str, Any] | Any,
    messages_key: str = "messages",
) -> list[Send] | Literal["__end__"]:
    """Route the last AI message's tool calls to the ``"tools"`` node, one task per call;
    ``"__end__"`` when it has none (the same contract as LangGraph's ``tools_condition``).

    Args:
        state: the graph state (a dict or object with ``messages_key``, or the message list).
        messages_key: where the messages are.

    Raises:
        ValueError: the state holds no messages.
    """
    if isinstance(state, list):
        messages = state
    elif isinstance(state, dict):
        messages = state.get(messages_key) or []
    else:
        messages = getattr(state, messages_key, None) or []
    if not messages:
        raise ValueError(f"tools_condition: no messages under {messages_key!r} in the state")
    last = messages[-1]
    calls = last.tool_calls if isinstance(last, AIMessage) else []
    if not calls:
        return "__end__"
    # ToolNode's documented per-call input (the shape create_agent sends): the call plus the
    # state, so that InjectedState and ToolRuntime see the whole state.
    return [
        Send("tools", {"__type": "tool_call_with_context", "tool_call": call, "state": state})
        for call in calls
    ]
