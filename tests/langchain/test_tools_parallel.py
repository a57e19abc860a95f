"""Parallel calls in one AIMessage: each its own review, each resumed correctly, none run twice
(also when a sibling's answer needs a second request), identical calls shown as distinct."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from hitl_harness import Env
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from tools_support import call_of, one_turn_graph, refund_tool, settle

CALLS = [
    {"name": "refund", "args": {"order_id": "A-1", "amount": 10}, "id": "c1"},
    {"name": "refund", "args": {"order_id": "A-1", "amount": 10}, "id": "c2"},  # identical
    {"name": "refund", "args": {"order_id": "B-2", "amount": 30}, "id": "c3"},
    {"name": "refund", "args": {"order_id": "C-3", "amount": 40}, "id": "c4"},
]
SCRIPT = {
    ("c1", "single_select"): "approve",
    ("c2", "single_select"): "edit",
    ("c2", "editable_text"): {"revised_text": "order_id: A-1\namount: 5", "was_edited": True},
    ("c3", "single_select"): "reject_with_reason",
    ("c3", "text"): "duplicate",
    ("c4", "single_select"): "respond",
    ("c4", "text"): "Ask the customer first.",
}


@pytest.mark.parametrize("saver_kind", ["memory", "sqlite"])
def test_mixed_decisions_in_one_tool_node_run_each_call_once(env: Env, saver_kind: str) -> None:
    effects: list[tuple[str, int]] = []
    conn = sqlite3.connect(env.tmp_path / "cp.db", check_same_thread=False)
    saver: Any = InMemorySaver() if saver_kind == "memory" else SqliteSaver(conn)
    try:
        safe = env.keeper.require_approval(
            refund_tool(effects), allow_edit=True, allow_respond=True
        )
        graph = one_turn_graph([safe], CALLS, saver)
        config = {"configurable": {"thread_id": f"par-{saver_kind}"}}
        graph.invoke({"messages": []}, config)
        first = env.requests()
        assert sorted(call_of(r) for r in first) == ["c1", "c2", "c3", "c4"]
        state = settle(env, graph, config, SCRIPT)
        by_id = {m.tool_call_id: m for m in state.values["messages"][1:]}
        assert by_id["c1"].content == "refunded 10 on A-1"
        assert by_id["c2"].content == "refunded 5 on A-1"
        assert "rejected" in by_id["c3"].content and "duplicate" in by_id["c3"].content
        assert by_id["c3"].status == "error"
        assert by_id["c4"].content == "Ask the customer first."
        # Each approved call ran exactly once, although the task re-ran on every resume.
        assert sorted(effects) == [("A-1", 5), ("A-1", 10)]
        assert len(env.requests()) == 4 + 3  # the first forms and three follow-ups
    finally:
        conn.close()


def test_identical_calls_are_shown_as_distinct(env: Env) -> None:
    effects: list[tuple[str, int]] = []
    safe = env.keeper.require_approval(refund_tool(effects))
    graph = one_turn_graph([safe], CALLS[:2], InMemorySaver())
    graph.invoke({"messages": []}, {"configurable": {"thread_id": "twins"}})
    texts = sorted(r.request_text for r in env.requests())
    assert len(texts) == 2 and texts[0] != texts[1]
    assert "call 1 of 2 in this turn, call id ` c1 `" in texts[0]
    assert "call 2 of 2 in this turn, call id ` c2 `" in texts[1]


def test_async_tool_node_runs_each_call_once(env: Env) -> None:
    import asyncio

    from hitl_agent.langgraph import GraphResumer

    effects: list[tuple[str, int]] = []
    safe = env.keeper.require_approval(refund_tool(effects), allow_edit=True, allow_respond=True)
    graph = one_turn_graph([safe], CALLS, InMemorySaver())
    config = {"configurable": {"thread_id": "par-async"}}

    async def main() -> Any:
        await graph.ainvoke({"messages": []}, config)
        dispatcher = env.keeper.dispatcher(GraphResumer(graph))
        seen: set[str] = set()
        for _ in range(8):
            for request in await asyncio.to_thread(env.requests):
                if request.status == "pending" and request.id not in seen:
                    seen.add(request.id)
                    answer = SCRIPT[(call_of(request), request.response_type)]
                    await asyncio.to_thread(env.hitl.reviewer.respond, request.id, answer)
            await dispatcher.apoll_once()
            state = await graph.aget_state(config)
            if not state.next:
                return state
        raise AssertionError("still waiting")

    state = asyncio.run(main())
    by_id = {m.tool_call_id: m.content for m in state.values["messages"][1:]}
    assert by_id["c1"] == "refunded 10 on A-1" and by_id["c2"] == "refunded 5 on A-1"
    assert sorted(effects) == [("A-1", 5), ("A-1", 10)]
