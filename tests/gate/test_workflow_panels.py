"""Issue 22 W8: fan-out and endorsement in the local server's workflow runner, and the typed
client reading every reviewer's answer (``Request.responses``).

Three reviewers (ana, bo, cy) review a workflow's request. Endorsement decides once
``threshold`` distinct reviewers approved, early; a rejection rejects at once unless
``any_reject_rejects: false`` (then only once the threshold is out of reach). Fan-out waits
for all: their common answer, or the default when they disagree. Each reviewer answers once;
one callback, one decision; a gate through such a workflow approves only when the policy did.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hitl_harness import CALLBACK_URL, Env, make_env, refund_graph
from langgraph.checkpoint.memory import InMemorySaver

from hitl_agent.gate import Gatekeeper
from hitl_agent.langgraph import GraphResumer
from hitl_agent.testing import ScriptedReviewer

EMAILS = ("ana@example.com", "bo@example.com", "cy@example.com")


def _node(**review: Any) -> dict[str, Any]:
    return {"type": "human_review", "reviewers": list(EMAILS), **review}


WORKFLOWS = {
    "workflows": [
        {"id": "wf_endorse", "name": "Endorse", "nodes": [
            {"type": "trigger"}, _node(mode="endorsement", threshold=2)]},
        {"id": "wf_patient", "name": "Patient", "nodes": [
            {"type": "trigger"},
            _node(mode="endorsement", threshold=2, any_reject_rejects=False)]},
        {"id": "wf_fanout", "name": "Fan-out", "nodes": [
            {"type": "trigger"}, _node(mode="fan_out")]},
        {"id": "wf_four", "name": "Four", "nodes": [
            {"type": "trigger"}, _node(mode="endorsement", threshold=4)]},
    ]
}  # fmt: skip


@pytest.fixture
def panel(tmp_path: Path) -> Iterator[tuple[Env, dict[str, ScriptedReviewer]]]:
    for env in make_env(tmp_path):
        server = env.hitl.server
        owner = server.add_api_key(env.hitl.api_key).user_id
        server.add_workflows(owner, WORKFLOWS)
        reviewers = {}
        for email in EMAILS:
            token = f"token-{email}-0123456789"
            server.add_reviewer(email, token)
            reviewers[email[:2]] = ScriptedReviewer(env.hitl.http, token, env.hitl.base_url)
        yield env, reviewers


def _trigger(env: Env, workflow: str) -> str:
    body = {"content": "Refund $250?", "callback_url": CALLBACK_URL + "/panel"}
    started = env.hitl.client.workflows.trigger(workflow, body)
    assert started.request_id is not None
    return started.request_id


def _outbox(env: Env, request_id: str) -> int:
    with env.hitl.server.storage.read() as conn:
        sql = "SELECT COUNT(*) FROM outbox WHERE request_id = ?"
        return int(conn.execute(sql, (request_id,)).fetchone()[0])


def test_endorsement_decides_early_with_every_answer_kept(panel: Any) -> None:
    env, r = panel
    request_id = _trigger(env, "wf_endorse")
    r["an"].claim(request_id)  # a claim does not lock a panel request
    assert r["an"].respond(request_id, "approve")["status"] == "pending"
    assert [q["id"] for q in r["an"].queue()] == []  # answered: waits for the others
    assert [q["id"] for q in r["bo"].queue()] == [request_id]
    with pytest.raises(Exception, match="already answered"):
        r["an"].respond(request_id, "approve")
    assert _outbox(env, request_id) == 0
    assert r["bo"].respond(request_id, "approve")["status"] == "completed"  # 2 of 3: early
    with pytest.raises(Exception, match="already been answered"):
        r["cy"].respond(request_id, "reject")
    request = env.hitl.client.requests.get(request_id)
    assert request.response_value == "approve" and request.reviewer.email == EMAILS[1]
    assert request.responses is not None
    answers = [
        (a.response_by_user.email, a.value(request.response_type)) for a in request.responses
    ]
    assert answers == [(EMAILS[0], "approve"), (EMAILS[1], "approve")]
    assert _outbox(env, request_id) == 1  # one callback for the decision


def test_one_rejection_rejects_unless_configured(panel: Any) -> None:
    env, r = panel
    request_id = _trigger(env, "wf_endorse")
    r["an"].respond(request_id, "approve")
    assert r["bo"].respond(request_id, "reject")["status"] == "completed"
    assert env.hitl.client.requests.get(request_id).response_value == "reject"

    patient = _trigger(env, "wf_patient")
    assert r["an"].respond(patient, "reject")["status"] == "pending"
    assert r["bo"].respond(patient, "approve")["status"] == "pending"
    # cy's reject leaves 1 possible approval: the threshold (2) is out of reach.
    assert r["cy"].respond(patient, "reject")["status"] == "completed"
    request = env.hitl.client.requests.get(patient)
    assert request.response_value == "reject" and len(request.responses or []) == 3


def test_fan_out_waits_for_all_and_takes_the_default_without_consensus(panel: Any) -> None:
    env, r = panel
    agreed, split = _trigger(env, "wf_fanout"), _trigger(env, "wf_fanout")
    for who in ("an", "bo"):
        assert r[who].respond(agreed, "approve")["status"] == "pending"
    assert r["cy"].respond(agreed, "approve")["status"] == "completed"
    assert env.hitl.client.requests.get(agreed).response_value == "approve"
    for who, answer in (("an", "approve"), ("bo", "approve"), ("cy", "reject")):
        r[who].respond(split, answer)
    request = env.hitl.client.requests.get(split)
    assert request.status == "completed" and request.response_value == "reject"  # the default
    assert [a.response_data for a in request.responses or []] == ["approve", "approve", "reject"]


def test_a_threshold_above_the_reviewers_creates_nothing(panel: Any) -> None:
    from hitl_agent import ConflictError

    env, _ = panel
    before = len(list(env.hitl.client.requests.iter()))
    with pytest.raises(ConflictError, match="threshold"):
        env.hitl.client.workflows.trigger("wf_four", {"content": "x"})
    assert len(list(env.hitl.client.requests.iter())) == before


def test_a_gate_through_an_endorsement_runs_only_once_endorsed(panel: Any) -> None:
    env, r = panel
    keeper = Gatekeeper(
        client=env.hitl.client, workflow="wf_endorse", ledger=env.ledger, clock=env.clock
    )
    env.keeper = keeper  # the keeper refund_graph's gate reviews with
    effects: list[str] = []
    graph = refund_graph(env, InMemorySaver(), effects)
    config: dict[str, Any] = {"configurable": {"thread_id": "panel-1"}}
    graph.invoke({"amount": 250}, config)
    (row,) = env.ledger.list_open()
    dispatcher = keeper.dispatcher(GraphResumer(graph))
    r["cy"].respond(row.request_id, "approve")
    assert dispatcher.poll_once() == [] and effects == []  # one approval is not enough
    r["an"].respond(row.request_id, "approve")
    (decision,) = dispatcher.poll_once()
    assert decision.approved and effects == ["refund 250"]
