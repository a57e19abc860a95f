"""Parallel tool calls in one ToolNode, and several reviews in one node."""

from __future__ import annotations

import sqlite3
from typing import Annotated, Any, TypedDict

import pytest
from hitl_harness import Env
from langchain_core.messages import AIMessage
from langchain_core.tools import InjectedToolCallId, tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from hitl_agent.langgraph import GraphResumer


def _tool_graph(env: Env, effects: list[str], saver: Any) -> Any:
    @tool
    def pay(amount: int, tool_call_id: Annotated[str, InjectedToolCallId]) -> str:
        """Pay an amount."""
        decision = env.keeper.review(f"Pay {amount}?", tool_call_id=tool_call_id)
        if not decision.approved:
            return f"pay {amount}: {decision.outcome}"
        effects.append(f"pay {amount}")
        return f"paid {amount}"

    @tool
    def delete(name: str, tool_call_id: Annotated[str, InjectedToolCallId]) -> str:
        """Delete something."""
        decision = env.keeper.review(f"Delete {name}?", tool_call_id=tool_call_id)
        if not decision.approved:
            return f"delete {name}: {decision.outcome}"
        effects.append(f"delete {name}")
        return f"deleted {name}"

    def agent(state: MessagesState) -> dict[str, Any]:
        calls = [
            {"name": "pay", "args": {"amount": 10}, "id": "call_pay"},
            {"name": "delete", "args": {"name": "db"}, "id": "call_del"},
            {"name": "pay", "args": {"amount": 99}, "id": "call_pay2"},
        ]
        return {"messages": [AIMessage("", tool_calls=calls)]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([pay, delete]))
    builder.add_edge(START, "agent")
    builder.add_edge("agent", "tools")
    builder.add_edge("tools", END)
    return builder.compile(checkpointer=saver)


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 0, 1], [1, 2, 0]])
def test_parallel_tool_calls_each_get_their_own_review(env: Env, order: list[int]) -> None:
    effects: list[str] = []
    conn = sqlite3.connect(env.tmp_path / "cp.db", check_same_thread=False)
    try:
        graph = _tool_graph(env, effects, SqliteSaver(conn))
        config = {"configurable": {"thread_id": "tools"}}
        graph.invoke({"messages": []}, config)
        requests = {r.request_text: r.id for r in env.requests()}
        assert sorted(requests) == ["Delete db?", "Pay 10?", "Pay 99?"]
        dispatcher = env.plug(env.keeper.dispatcher(GraphResumer(graph)))
        answers = {"Pay 10?": "yes", "Delete db?": "no", "Pay 99?": "yes"}
        texts = sorted(requests)
        for index in order:
            text = texts[index]
            env.hitl.reviewer.respond(requests[text], answers[text] == "yes")
            env.tick()
        dispatcher.poll_once()  # anything a callback found not yet waiting
        state = graph.get_state(config)
        assert not state.next, state.interrupts
        assert sorted(effects) == ["pay 10", "pay 99"]
        contents = sorted(m.content for m in state.values["messages"][1:])
        assert contents == ["delete db: rejected", "paid 10", "paid 99"]
        assert len(env.requests()) == 3  # replays created nothing new
    finally:
        conn.close()


class Two(TypedDict, total=False):
    first: str
    second: str


def test_two_reviews_in_one_node(env: Env) -> None:
    runs: list[str] = []

    def node(state: Two) -> dict[str, Any]:
        runs.append("node")
        first = env.keeper.review("First?")
        second = env.keeper.review("Second?")
        return {"first": first.outcome, "second": second.outcome}

    builder = StateGraph(Two)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    builder.add_edge("node", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "two"}}
    graph.invoke({}, config)
    dispatcher = env.keeper.dispatcher(GraphResumer(graph))
    (first,) = env.requests()
    env.hitl.reviewer.respond(first.id, True)
    assert [d.outcome for d in dispatcher.poll_once()] == ["approved"]
    # Now waiting on the second (read from the tasks: langgraph 1.2.4 shows next == () here).
    assert [t.name for t in graph.get_state(config).tasks if t.interrupts] == ["node"]
    second = next(r for r in env.requests() if r.id != first.id)
    assert second.request_text == "Second?"
    env.hitl.reviewer.respond(second.id, False)
    assert [d.outcome for d in dispatcher.poll_once()] == ["rejected"]
    assert graph.get_state(config).values == {"first": "approved", "second": "rejected"}
    assert len(env.requests()) == 2
    assert runs == ["node", "node", "node"]
