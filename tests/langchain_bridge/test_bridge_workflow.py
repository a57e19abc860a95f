"""Issue 22 W1: the middleware bridge reviews through a HITL.sh workflow (the local server's
default one) when its keeper has ``workflow=``: each call's request is the workflow's, and an
approval resumes the agent once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bridge_agents import calls, per_call_agent, script
from hitl_harness import Env, make_env
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

WORKFLOW = "wf_local-approvals-workflow"


@pytest.fixture
def wf(tmp_path: Path) -> Iterator[Env]:
    yield from make_env(tmp_path, loop_id=None, workflow=WORKFLOW)


def test_the_bridge_asks_through_the_workflow(wf: Env) -> None:
    effects: list[str] = []
    agent = per_call_agent(
        script(calls(("delete_file", {"path": "report.txt"}))), effects, InMemorySaver()
    )
    bridge = wf.keeper.bridge(agent)
    wf.plug(wf.keeper.dispatcher(bridge.resumer))
    cfg: dict[str, Any] = {"configurable": {"thread_id": "bridge-wf"}}
    agent.invoke({"messages": [HumanMessage("Delete the report.")]}, cfg)
    (row,) = bridge.submit(cfg)
    bridge.submit(cfg)  # again: the same row, no second trigger
    requests = list(wf.hitl.client.requests.iter())
    assert [r.id for r in requests] == [row.request_id]
    with wf.hitl.server.storage.read() as conn:
        executions = conn.execute("SELECT workflow_id, request_id FROM executions").fetchall()
    assert [tuple(e) for e in executions] == [(WORKFLOW, row.request_id)]
    assert row.payload["workflow_id"] == WORKFLOW

    wf.hitl.reviewer.respond(str(row.request_id), "approve")
    wf.tick()
    wf.tick()
    assert effects == ["delete_file report.txt"]
