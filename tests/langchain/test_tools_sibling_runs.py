"""Every call of a turn runs once across any number of resumes (issue 19, H1).

The README's graph: agent -> tools_condition -> ToolNode([refund, lookup]) -> agent, with
``refund`` gated above $100. One model turn asks for refund(50) (``when=`` lets it through),
refund(250) (a reviewer decides, with an edit round: two resumes) and lookup (never gated).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from hitl_harness import Env
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.prebuilt import tools_condition as langgraph_tools_condition
from tools_support import call_of

from hitl_agent.langgraph import GraphResumer, tools_condition

TURN = [
    {"name": "refund", "args": {"order_id": "small", "amount": 50}, "id": "c-small"},
    {"name": "refund", "args": {"order_id": "big", "amount": 250}, "id": "c-big"},
    {"name": "lookup", "args": {"order_id": "big"}, "id": "c-lookup"},
]


def _graph(env: Env, runs: list[str], condition: Any) -> Any:
    @tool
    def refund(order_id: str, amount: int) -> str:
        """Refund an order."""
        runs.append(f"refund {order_id} {amount}")
        return f"refunded {amount}"

    @tool
    def lookup(order_id: str) -> str:
        """Look an order up."""
        runs.append(f"lookup {order_id}")
        return "order found"

    safe = env.keeper.require_approval(refund, when=lambda a: a["amount"] > 100, allow_edit=True)
    turns = iter([AIMessage("", tool_calls=TURN, id="m1"), AIMessage("Done.", id="m2")])

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [next(turns)]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([safe, lookup]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=InMemorySaver())


def _answer(env: Env, seen: set[str]) -> None:
    for request in env.requests():
        if request.id in seen or request.status != "pending":
            continue
        seen.add(request.id)
        assert call_of(request) == "c-big"
        if request.response_type == "single_select":
            env.hitl.reviewer.respond(request.id, "edit")  # a second request: a second resume
        else:
            revised = {"revised_text": "order_id: big\namount: 200", "was_edited": True}
            env.hitl.reviewer.respond(request.id, revised)


def _run(env: Env, graph: Any, config: Any, *, asynchronous: bool) -> None:
    dispatcher = env.keeper.dispatcher(GraphResumer(graph))
    if asynchronous:
        asyncio.run(graph.ainvoke({"messages": [("user", "refunds")]}, config))
    else:
        graph.invoke({"messages": [("user", "refunds")]}, config)
    seen: set[str] = set()
    for _ in range(6):
        _answer(env, seen)
        if asynchronous:
            asyncio.run(dispatcher.apoll_once())
        else:
            dispatcher.poll_once()
        if not graph.get_state(config).next:
            return
    raise AssertionError("the thread did not finish")


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_each_call_of_the_turn_runs_once_with_the_products_tools_condition(
    env: Env, asynchronous: bool
) -> None:
    runs: list[str] = []
    graph = _graph(env, runs, tools_condition)
    config = {"configurable": {"thread_id": f"h1-{asynchronous}"}}
    _run(env, graph, config, asynchronous=asynchronous)
    assert sorted(runs) == ["lookup big", "refund big 200", "refund small 50"]
    tool_messages = [m for m in graph.get_state(config).values["messages"] if m.type == "tool"]
    assert sorted(m.tool_call_id for m in tool_messages) == ["c-big", "c-lookup", "c-small"]


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_langgraphs_tools_condition_runs_gated_and_policy_skipped_calls_once_and_warns(
    env: Env, asynchronous: bool, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hitl_agent.langchain import _approval

    monkeypatch.setattr(_approval, "_WARNED", set())  # warned once per process
    runs: list[str] = []
    graph = _graph(env, runs, langgraph_tools_condition)
    config = {"configurable": {"thread_id": f"h1-shared-{asynchronous}"}}
    with caplog.at_level(logging.WARNING, logger="hitl_agent.langchain"):
        _run(env, graph, config, asynchronous=asynchronous)
    # One task for the whole turn: the gated call and the one when= let through are
    # recorded and run once; the unguarded lookup is the user's to route (warned).
    assert runs.count("refund small 50") == 1
    assert runs.count("refund big 200") == 1
    warnings = [r.getMessage() for r in caplog.records if "same ToolNode task" in r.getMessage()]
    assert warnings and "lookup" in warnings[0]
    assert "hitl_agent.langgraph.tools_condition" in warnings[0]


def test_the_products_tools_condition_keeps_langgraphs_contract() -> None:
    assert tools_condition({"messages": [AIMessage("no tools")]}) == "__end__"
    sends = tools_condition([AIMessage("", tool_calls=TURN[:2])])
    assert isinstance(sends, list) and [s.node for s in sends] == ["tools", "tools"]
    assert [s.arg["tool_call"]["id"] for s in sends] == ["c-small", "c-big"]
    with pytest.raises(ValueError, match="no messages under 'history'"):
        tools_condition({"history": []}, messages_key="history")


def _refund_graph(env: Env, runs: list[str], saver: Any, *, gate: str) -> Any:
    """One turn, refund(250); ``gate``: v1 (> $100), loosened (> $1000) or gone."""
    from tools_support import one_turn_graph

    @tool
    def refund(order_id: str, amount: int) -> str:
        """Refund an order."""
        runs.append(f"refund {order_id} {amount}")
        return f"refunded {amount}"

    limit = {"v1": 100, "loosened": 1000}.get(gate)
    tools = (
        [refund]
        if limit is None
        else [env.keeper.require_approval(refund, when=lambda a: a["amount"] > limit)]
    )
    calls = [{"name": "refund", "args": {"order_id": "big", "amount": 250}, "id": "c-big"}]
    return one_turn_graph(tools, calls, saver)


@pytest.mark.parametrize("v2", ["loosened", "gone"])
def test_a_redeploy_that_loosens_the_gate_never_runs_a_rejected_call(
    env: Env, v2: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 19, M7: v1 gates refunds over $100 and the reviewer rejects refund(250); v2
    raises when= to $1000 (or drops the gate) and resumes the thread."""
    runs: list[str] = []
    saver = InMemorySaver()
    config = {"configurable": {"thread_id": f"m7-{v2}"}}
    _refund_graph(env, runs, saver, gate="v1").invoke({"messages": []}, config)
    request_id = env.only_request_id()
    env.hitl.reviewer.respond(request_id, "reject")

    v2_graph = _refund_graph(env, runs, saver, gate=v2)
    dispatcher = env.keeper.dispatcher(GraphResumer(v2_graph))
    with caplog.at_level(logging.ERROR):
        for _ in range(12):
            dispatcher.poll_once()
            env.clock.advance(3600)

    assert runs == []  # the rejected refund never ran
    if v2 == "loosened":  # the earlier review still governs: the agent hears "rejected"
        (message,) = [m for m in v2_graph.get_state(config).values["messages"] if m.type == "tool"]
        assert message.status == "error" and "rejected" in message.content.lower()
    else:  # nothing gates it any more: not resumed, parked, said at ERROR
        assert v2_graph.get_state(config).next
        errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert any("no longer gates tool refund" in e and request_id in e for e in errors)
        fault = env.ledger.get_delivery_fault(request_id)
        assert fault is not None and fault.parked


def test_more_gated_calls_than_a_shared_tasks_threads_are_warned_at_run_time(
    env: Env, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tools_support import one_turn_graph

    from hitl_agent.langchain import _approval

    monkeypatch.setattr(_approval, "_WARNED", set())

    @tool
    def refund(order_id: str, amount: int) -> str:
        """Refund an order."""
        return "refunded"

    calls = [
        {"name": "refund", "args": {"order_id": f"o{i}", "amount": 200}, "id": f"c{i}"}
        for i in range(3)
    ]
    graph = one_turn_graph([env.keeper.require_approval(refund)], calls, InMemorySaver())
    config: Any = {"configurable": {"thread_id": "pool"}, "max_concurrency": 2}
    with caplog.at_level(logging.WARNING, logger="hitl_agent.langchain"):
        graph.invoke({"messages": []}, config)
    warnings = [m for r in caplog.records if "more than its 2 threads" in (m := r.getMessage())]
    assert len(warnings) == 1 and "3 calls" in warnings[0]
