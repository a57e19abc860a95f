"""Arguments no review can be bound to (a NaN, an infinity) are not run and not reviewed:
the agent gets a ToolMessage naming the field, not a bare ValueError out of ``graph.invoke``
(issue 20, M1). A set-typed argument is shown and bound in sorted order."""

from __future__ import annotations

from typing import Any

import pytest
from hitl_harness import Env
from langchain_core.messages import ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from tools_support import one_turn_graph, settle

from hitl_agent.gate import ARGS_HASH_KEY, args_hash


def _refund(effects: list[Any]) -> Any:
    @tool
    def refund(order_id: str, amount: float) -> str:
        """Refund an order."""
        effects.append((order_id, amount))
        return "refunded"

    return refund


@pytest.mark.parametrize("amount", [float("nan"), float("inf")])
def test_a_non_finite_argument_is_a_tool_message_through_the_graph(env: Env, amount: float) -> None:
    effects: list[Any] = []
    safe = env.keeper.require_approval(_refund(effects))
    call = {"name": "refund", "args": {"order_id": "A1", "amount": amount}, "id": "nan-1"}
    graph = one_turn_graph([safe], [call], InMemorySaver())
    state = graph.invoke({"messages": []}, {"configurable": {"thread_id": f"nan-{amount}"}})
    message = state["messages"][-1]
    assert isinstance(message, ToolMessage) and message.status == "error"
    assert message.tool_call_id == "nan-1"
    assert str(message.content).startswith("Not run: its arguments cannot be reviewed: args.amount")
    assert effects == [] and env.requests() == []  # nothing ran, nobody was asked


def test_a_non_finite_argument_through_tool_invoke(env: Env) -> None:
    safe = env.keeper.require_approval(_refund([]))
    result = safe.invoke(
        {
            "name": "refund",
            "args": {"order_id": "A1", "amount": float("nan")},
            "id": "nan-2",
            "type": "tool_call",
        }
    )
    assert isinstance(result, ToolMessage) and result.status == "error"
    assert "args.amount" in str(result.content)


def test_a_set_argument_is_reviewed_sorted_and_runs_once_approved(env: Env) -> None:
    seen: list[set[str]] = []

    @tool
    def label(order_id: str, labels: set[str]) -> str:
        """Label an order."""
        seen.append(labels)
        return "labelled"

    safe = env.keeper.require_approval(label)
    labels = ["zeta", "alpha", "mu", "beta"]
    call = {"name": "label", "args": {"order_id": "A1", "labels": set(labels)}, "id": "set-1"}
    saver = InMemorySaver()
    graph = one_turn_graph([safe], [call], saver)
    config = {"configurable": {"thread_id": "set"}}
    graph.invoke({"messages": []}, config)
    (request,) = env.requests()
    text = request.request_text or ""
    assert text.index('"alpha"') < text.index('"beta"') < text.index('"mu"') < text.index('"zeta"')
    row = env.ledger.get_by_request_id(request.id)
    assert row is not None
    assert row.payload["args_hash"] == args_hash(
        "label", {"order_id": "A1", "labels": sorted(labels)}
    )
    assert ARGS_HASH_KEY not in (request.context or {})
    state = settle(env, graph, config, lambda r: "approve")
    assert state.values["messages"][-1].content == "labelled"
    assert seen == [set(labels)]
