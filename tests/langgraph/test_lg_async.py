"""areview inside an async node, resumed through apoll_once / the async resumer."""

from __future__ import annotations

import asyncio
from typing import Any, TypedDict

from hitl_harness import Env
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph

from hitl_agent.langgraph import GraphResumer


class S(TypedDict, total=False):
    outcome: str


def test_async_node_review(env: Env) -> None:
    effects: list[str] = []

    async def node(state: S) -> dict[str, Any]:
        decision = await env.keeper.areview("Async deploy?")
        if decision.approved:
            effects.append("deploy")
        return {"outcome": decision.outcome}

    builder = StateGraph(S)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    graph = builder.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "async"}}

    async def main() -> None:
        await graph.ainvoke({}, config)
        request_id = await asyncio.to_thread(env.only_request_id)
        await asyncio.to_thread(env.hitl.reviewer.respond, request_id, True)
        dispatcher = env.keeper.dispatcher(GraphResumer(graph))
        delivered = await dispatcher.apoll_once()
        assert [d.outcome for d in delivered] == ["approved"]

    asyncio.run(main())
    assert effects == ["deploy"]
    assert graph.get_state(config).values == {"outcome": "approved"}
    assert len(env.requests()) == 1
