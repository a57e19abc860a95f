"""create_agent (langchain, the optional extra) with a scripted chat model: the wrapped tools
suspend the agent durably and the dispatcher resumes it with each decision."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest
from hitl_harness import Env
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from tools_support import ScriptedModel, call_of, refund_tool, settle

agents = pytest.importorskip("langchain.agents", reason="the langchain extra is not installed")


def _model(calls: list[dict[str, Any]]) -> ScriptedModel:
    return ScriptedModel(messages=iter([AIMessage("", tool_calls=calls), AIMessage("All done.")]))


CALLS = [
    {"name": "refund", "args": {"order_id": "A-1", "amount": 120}, "id": "r1"},
    {"name": "refund", "args": {"order_id": "B-2", "amount": 80}, "id": "r2"},
    {"name": "refund", "args": {"order_id": "C-3", "amount": 300}, "id": "r3"},
    {
        "name": "ask_human",
        "args": {"question": "Notify the customer?", "response_type": "boolean"},
        "id": "q1",
    },
]
SCRIPT = {
    ("r1", "single_select"): "approve",
    ("r2", "single_select"): "edit",
    ("r2", "editable_text"): {"revised_text": "order_id: B-2\namount: 60", "was_edited": True},
    ("r3", "single_select"): "reject_with_reason",
    ("r3", "text"): "Too large without a manager.",
    (None, "boolean"): True,
}


def test_create_agent_every_call_reviewed_and_resumed(env: Env) -> None:
    effects: list[tuple[str, int]] = []
    conn = sqlite3.connect(env.tmp_path / "agent.db", check_same_thread=False)
    try:
        safe = env.keeper.require_approval(refund_tool(effects), allow_edit=True)
        agent = agents.create_agent(
            _model(CALLS), tools=[safe, env.keeper.ask_human_tool()], checkpointer=SqliteSaver(conn)
        )
        config = {"configurable": {"thread_id": "agent-1"}}
        agent.invoke({"messages": [HumanMessage("Refund the three orders.")]}, config)
        assert sorted(str(call_of(r)) for r in env.requests()) == ["None", "r1", "r2", "r3"]
        assert effects == []
        state = settle(env, agent, config, SCRIPT)
        messages = state.values["messages"]
        results = {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}
        assert results["r1"].content == "refunded 120 on A-1"
        assert results["r2"].content == "refunded 60 on B-2"
        assert results["r3"].status == "error" and "Too large" in results["r3"].content
        assert results["q1"].content == "true"
        assert messages[-1].content == "All done."
        assert sorted(effects) == [("A-1", 120), ("B-2", 60)]  # each once
    finally:
        conn.close()


def test_create_agent_policy_skips_small_refunds(env: Env) -> None:
    effects: list[tuple[str, int]] = []
    safe = env.keeper.require_approval(refund_tool(effects), when=lambda a: a["amount"] > 100)
    agent = agents.create_agent(_model(CALLS[:2]), tools=[safe], checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "agent-2"}}
    agent.invoke({"messages": [HumanMessage("Refund.")]}, config)
    assert [call_of(r) for r in env.requests()] == ["r1"]  # 80 went straight through
    assert effects == [("B-2", 80)]
    state = settle(env, agent, config, {("r1", "single_select"): "reject"})
    assert effects == [("B-2", 80)]
    assert state.values["messages"][-1].content == "All done."


def test_create_agent_async(env: Env) -> None:
    effects: list[tuple[str, int]] = []
    safe = env.keeper.require_approval(refund_tool(effects))
    agent = agents.create_agent(_model(CALLS[:1]), tools=[safe], checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "agent-3"}}

    async def main() -> Any:
        from hitl_agent.langgraph import GraphResumer

        await agent.ainvoke({"messages": [HumanMessage("Refund.")]}, config)
        (request,) = await asyncio.to_thread(env.requests)
        await asyncio.to_thread(env.hitl.reviewer.respond, request.id, "approve")
        await env.keeper.dispatcher(GraphResumer(agent)).apoll_once()
        return await agent.aget_state(config)

    state = asyncio.run(main())
    assert effects == [("A-1", 120)]
    assert state.values["messages"][-1].content == "All done."
