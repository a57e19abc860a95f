"""Many gated calls in one turn, any pool size, any answer order, restarts between answers
(issue 19, H2): each approved or edited call runs once and nothing wedges, with the
product's per-call routing (hitl_agent.langgraph.tools_condition). The default run takes 3
seeded cases (up to 25 calls); ``make stress`` adds 4 more (up to 50 calls, pools of 1-6)."""

from __future__ import annotations

import os
import random
import time
from typing import Any

import pytest
from hitl_harness import Env
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from tools_support import call_of

from hitl_agent.langgraph import GraphResumer, tools_condition

FULL = os.environ.get("HITL_STRESS") == "full"


def _build(env: Env, runs: list[str], count: int, saver: Any) -> Any:
    @tool
    def refund(order_id: str, amount: int) -> str:
        """Refund an order."""
        runs.append(order_id)
        return f"refunded {amount} on {order_id}"

    safe = env.keeper.require_approval(refund, allow_edit=True)
    calls = [
        {"name": "refund", "args": {"order_id": f"o{i}", "amount": 100 + i}, "id": f"c{i}"}
        for i in range(count)
    ]
    turns = iter([AIMessage("", tool_calls=calls, id="turn"), AIMessage("Done.", id="end")])

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [next(turns, AIMessage("Done.", id="end"))]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([safe]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=saver)


@pytest.mark.parametrize(
    ("count", "pool", "seed"),
    [(12, 2, 1), (12, 6, 2), (25, 2, 3)]
    + ([(50, 2, 4), (50, 1, 5), (50, 6, 6), (30, 3, 7)] if FULL else []),
)
def test_many_gated_calls_run_once_each_without_wedging(
    env: Env, count: int, pool: int, seed: int
) -> None:
    rng = random.Random(seed)
    answers = {f"c{i}": rng.choice(["approve", "reject", "edit"]) for i in range(count)}
    runs: list[str] = []
    saver = InMemorySaver()
    config: Any = {"configurable": {"thread_id": f"many-{count}-{pool}"}, "max_concurrency": pool}
    graph = _build(env, runs, count, saver)
    graph.invoke({"messages": [("user", "refunds")]}, config)
    assert len(env.requests()) == count  # every call asked in the first run

    seen: set[str] = set()
    started = time.monotonic()
    for _ in range(4 * count):
        pending = [r for r in env.requests() if r.status == "pending" and r.id not in seen]
        rng.shuffle(pending)
        for request in pending[: rng.randint(1, 5)]:  # a few answers at a time, any order
            seen.add(request.id)
            call = call_of(request)
            if request.response_type == "editable_text":
                order = call.removeprefix("c") if call else "?"
                revised = {"revised_text": f"order_id: o{order}\namount: 1", "was_edited": True}
                env.hitl.reviewer.respond(request.id, revised)
            else:
                env.hitl.reviewer.respond(request.id, answers[str(call)])
        # A restart between answers: a new process's graph and dispatcher, same stores.
        graph = _build(env, runs, count, saver)
        slowest = time.monotonic()
        env.keeper.dispatcher(GraphResumer(graph)).poll_once()
        assert time.monotonic() - slowest < 20, "a sweep blocked on sibling waits"
        if not graph.get_state(config).next:
            break
    assert not graph.get_state(config).next, "the thread wedged"
    ran = sorted(runs)
    expected = sorted(f"o{i}" for i in range(count) if answers[f"c{i}"] != "reject")
    assert ran == expected  # each approved or edited call exactly once; no rejected one
    assert time.monotonic() - started < 120
