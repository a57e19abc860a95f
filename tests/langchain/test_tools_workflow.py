"""Issue 22 W1 end to end: a ``require_approval`` tool in a graph, gated through a HITL.sh
workflow (the local server's default one) instead of a loop. Approved: it runs once, however
often the sweeps run; rejected: never, and the agent is told."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hitl_harness import Env, make_env
from langgraph.checkpoint.memory import InMemorySaver
from tools_support import one_turn_graph, refund_tool

from hitl_agent.langgraph import GraphResumer

WORKFLOW = "wf_local-approvals-workflow"
CALL = [{"name": "refund", "args": {"order_id": "o-7", "amount": 250}, "id": "call-7"}]


@pytest.fixture
def wf(tmp_path: Path) -> Iterator[Env]:
    yield from make_env(tmp_path, loop_id=None, workflow=WORKFLOW)


def _tool_messages(graph: Any, config: Any) -> list[Any]:
    return [m for m in graph.get_state(config).values["messages"] if m.type == "tool"]


@pytest.mark.parametrize(("answer", "ran"), [("approve", [("o-7", 250)]), ("reject", [])])
def test_require_approval_through_a_workflow(wf: Env, answer: str, ran: list[Any]) -> None:
    effects: list[tuple[str, int]] = []
    graph = one_turn_graph(
        [wf.keeper.require_approval(refund_tool(effects))], CALL, InMemorySaver()
    )
    config: dict[str, Any] = {"configurable": {"thread_id": f"wf-{answer}"}}
    graph.invoke({"messages": []}, config)
    (request,) = list(wf.hitl.client.requests.iter())
    with wf.hitl.server.storage.read() as conn:
        (execution,) = conn.execute("SELECT workflow_id, request_id FROM executions").fetchall()
    assert tuple(execution) == (WORKFLOW, request.id)
    assert "refund" in request.request_text and "o-7" in request.request_text
    wf.hitl.reviewer.respond(request.id, answer)
    dispatcher = wf.keeper.dispatcher(GraphResumer(graph))
    for _ in range(3):  # more sweeps change nothing
        dispatcher.poll_once()
        wf.clock.advance(60)
    assert effects == ran
    assert not graph.get_state(config).next
    (message,) = _tool_messages(graph, config)
    assert ("refunded 250" in message.content) == (answer == "approve")
    assert len(list(wf.hitl.client.requests.iter())) == 1
