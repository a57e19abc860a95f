"""The graph module of the chaos run (test_chaos.py), as a user ships it to ``hitl-agent worker``.

``hitl-agent worker --graph chaos_graph:build`` loads :func:`build` with the checkpointer the
worker opened from ``--checkpointer``. The graph is the README's shape: ``agent`` (stands in
for the LLM: one AIMessage with ``CHAOS_CALLS`` refund calls) -> ``tools_condition`` of
``hitl_agent.langgraph`` (one task per call) -> ``tools`` (a ``ToolNode`` holding
``keeper.require_approval(refund)``).

The refund's side effect is an INSERT into ``chaos_effects`` keyed by the tool call id, with
no unique constraint, so a second execution of one call is a second row (countable). The
keeper comes from the environment, as examples/worker_graph.py does: ``HITL_API_KEY``,
``HITL_BASE_URL``, ``HITL_LOOP_ID``, ``HITL_LEDGER``, ``HITL_CALLBACK_URL``,
``HITL_CALLBACK_SECRET``; ``CHAOS_EFFECTS`` is the effects database (a libpq URI);
``CHAOS_ACTION_SECONDS`` (default 0.2) the refund's pause before and after its INSERT.

``python chaos_graph.py agent CHECKPOINTER PREFIX THREADS`` is the agent process: it starts
``THREADS`` threads (``PREFIX-<n>``), each running up to its reviews, and exits.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from hitl_agent import Gatekeeper, HITLClient
from hitl_agent.langchain import approved_call
from hitl_agent.langgraph import tools_condition

EFFECTS_DDL = (
    "CREATE TABLE IF NOT EXISTS chaos_effects (tool_call_id TEXT, request_id TEXT, "
    "approved BOOLEAN NOT NULL, pid INTEGER NOT NULL, at DOUBLE PRECISION NOT NULL)"
)

_KEEPER: Gatekeeper | None = None


def keeper() -> Gatekeeper:
    """One keeper per process, from the environment (shares the worker's ledger)."""
    global _KEEPER
    if _KEEPER is None:
        _KEEPER = Gatekeeper(
            client=HITLClient(),
            loop_id=os.environ["HITL_LOOP_ID"],
            ledger=os.environ["HITL_LEDGER"],
            callback_url=os.environ.get("HITL_CALLBACK_URL") or None,
            callback_secret=os.environ.get("HITL_CALLBACK_SECRET") or None,
        )
    return _KEEPER


def record_effect(tool_call_id: str | None, request_id: str | None, approved: bool) -> None:
    import psycopg

    with psycopg.connect(os.environ["CHAOS_EFFECTS"], autocommit=True) as conn:
        conn.execute(
            "INSERT INTO chaos_effects VALUES (%s, %s, %s, %s, %s)",
            (tool_call_id, request_id, approved, os.getpid(), time.time()),
        )


@tool
def refund(order: str, amount: int) -> str:
    """Refund an order. A human approves it first."""
    approval = approved_call()
    # A payment API takes a moment on each side of the charge, so that a kill can land
    # between the execution's start record and the charge, or between the charge and the
    # recorded outcome (both end in doubt), not only between resumes.
    pause = float(os.environ.get("CHAOS_ACTION_SECONDS", "0.2"))
    time.sleep(pause)
    if approval is None:  # must never happen: counted as an unapproved execution
        record_effect(order, None, False)
    else:
        record_effect(approval.tool_call_id or order, approval.request_id, True)
    time.sleep(pause)
    return f"refunded {amount} on {order}"


def agent(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
    if state["messages"]:
        return {}
    thread_id = config["configurable"]["thread_id"]
    calls = [
        {
            "name": "refund",
            "args": {"order": f"{thread_id}-c{j}", "amount": 100 + j},
            "id": f"{thread_id}-c{j}",
        }
        for j in range(int(os.environ.get("CHAOS_CALLS", "2")))
    ]
    return {"messages": [AIMessage("", tool_calls=calls, id=f"turn-{thread_id}")]}


def build(checkpointer: Any) -> Any:
    """What ``hitl-agent worker --graph chaos_graph:build`` calls."""
    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([keeper().require_approval(refund)]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition, ["tools", END])
    builder.add_edge("tools", END)
    return builder.compile(checkpointer=checkpointer)


def main(argv: list[str]) -> None:
    from hitl_agent.cli._checkpointer import open_checkpointer

    _, checkpointer, prefix, threads = argv
    with open_checkpointer(checkpointer) as opened:
        graph = build(opened.saver)
        for n in range(int(threads)):
            graph.invoke({"messages": []}, {"configurable": {"thread_id": f"{prefix}-{n}"}})


if __name__ == "__main__" and sys.argv[1:2] == ["agent"]:
    main(sys.argv[1:])
