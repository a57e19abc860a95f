"""T9: every way of not getting a trustworthy approval ends denied, with the reason visible."""

from __future__ import annotations

from typing import Any, TypedDict

import httpx
import pytest
from hitl_harness import Env, refund_graph
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph

from hitl_agent import HITLClient, RetryPolicy
from hitl_agent.dispatch import CallBudget
from hitl_agent.langgraph import GraphResumer


class S(TypedDict, total=False):
    d: dict[str, Any]


def _broken_client(kind: str, request_id: str, loop_id: str) -> HITLClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if kind == "5xx":
            return httpx.Response(503, json={"error": True, "msg": "down"})
        if kind == "timeout":
            raise httpx.ReadTimeout("slow", request=request)
        if kind == "429":
            return httpx.Response(
                429, json={"error": True, "msg": "quota"}, headers={"X-RateLimit-Reset": "0"}
            )
        if kind == "garbage_json":
            return httpx.Response(200, content=b"{not json")
        doc = {
            "id": request_id,
            "loop_id": loop_id,
            "status": kind,
            "response_type": "single_select",
            "response_data": "approve",
        }
        if request.url.path.endswith("/requests"):
            return httpx.Response(
                200,
                json={"error": False, "msg": "ok", "data": {"requests": [doc], "has_more": False}},
            )
        return httpx.Response(200, json={"error": False, "msg": "ok", "data": {"request": doc}})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    return HITLClient(
        "k", base_url="http://mock/v1", http_client=http, retry=RetryPolicy(max_retries=0)
    )


@pytest.mark.parametrize("cell", ["claimed", "mystery_status"])
def test_api_failures_past_the_deadline_fail_closed(env: Env, cell: str) -> None:
    """HITL.sh's own word past deadline + grace (not answered, an unknown status): denied."""
    effects: list[str] = []
    graph = refund_graph(env, InMemorySaver(), effects)
    graph.invoke({"amount": 9}, {"configurable": {"thread_id": "t9"}})
    request_id = env.only_request_id()
    dispatcher = env.keeper.dispatcher(GraphResumer(graph))
    status = "mystery" if cell == "mystery_status" else cell
    dispatcher.resolver.client = _broken_client(status, request_id, env.hitl.loop_id)
    env.hitl.reviewer.respond(request_id, "approve")  # the truth is unreachable for us
    assert dispatcher.poll_once() == []
    assert effects == []
    env.clock.advance(3600 + 301)  # past deadline + grace
    delivered = dispatcher.poll_once()
    assert [d.outcome for d in delivered] == ["timed_out"]
    assert effects == []
    decision = graph.get_state({"configurable": {"thread_id": "t9"}}).values["decision"]
    assert decision["approved"] is False and "failed closed" in decision["reason"]


@pytest.mark.parametrize("cell", ["5xx", "timeout", "garbage_json"])
def test_an_outage_past_the_deadline_fails_closed_only_after_the_outage_bound(
    env: Env, cell: str
) -> None:
    """Issue 20 F3: a failure that says nothing about the request is no answer. Past
    deadline + grace the row waits; only ``fail_closed_after_outage`` (24 h) later is it
    denied, the outage named in its reason."""
    effects: list[str] = []
    graph = refund_graph(env, InMemorySaver(), effects)
    graph.invoke({"amount": 9}, {"configurable": {"thread_id": "t9"}})
    request_id = env.only_request_id()
    dispatcher = env.keeper.dispatcher(GraphResumer(graph))
    dispatcher.resolver.client = _broken_client(cell, request_id, env.hitl.loop_id)
    env.hitl.reviewer.respond(request_id, "approve")  # the truth is unreachable for us
    env.clock.advance(3600 + 301)  # past deadline + grace
    assert dispatcher.poll_once() == [] and effects == []
    row = env.ledger.get_by_request_id(request_id)
    assert row is not None and row.state == "pending"  # not failed closed
    env.clock.advance(86_400)  # a day of outage
    delivered = dispatcher.poll_once()
    assert [d.outcome for d in delivered] == ["timed_out"]
    assert effects == []
    decision = graph.get_state({"configurable": {"thread_id": "t9"}}).values["decision"]
    assert decision["approved"] is False and "fail_closed_after_outage" in decision["reason"]


@pytest.mark.parametrize("cell", ["429", "budget_exhausted"])
def test_a_spent_quota_past_the_deadline_never_fails_closed(env: Env, cell: str) -> None:
    """Issue 8 H3: our quota being spent is no reason to deny; the approval is found later."""
    effects: list[str] = []
    graph = refund_graph(env, InMemorySaver(), effects)
    graph.invoke({"amount": 9}, {"configurable": {"thread_id": "t9"}})
    request_id = env.only_request_id()
    dispatcher = env.keeper.dispatcher(GraphResumer(graph))
    real_client = dispatcher.resolver.client
    budget = CallBudget(1, clock=env.clock)
    if cell == "budget_exhausted":
        dispatcher.resolver.budget = budget
        assert budget.try_spend(1)  # someone else spent the hour
    else:
        dispatcher.resolver.client = _broken_client("429", request_id, env.hitl.loop_id)
    env.hitl.reviewer.respond(request_id, "approve")  # the server holds the answer
    assert dispatcher.poll_once() == []
    env.clock.advance(3600 + 301)  # past deadline + grace on every clock
    if cell == "budget_exhausted":
        assert budget.try_spend(1)  # ... and spent the next hour too
    assert dispatcher.poll_once() == [] and effects == []
    row = env.ledger.get_by_request_id(request_id)
    assert row is not None and row.state == "pending"  # not failed closed
    dispatcher.resolver.client = real_client
    env.clock.advance(3600)  # the quota is back
    delivered = dispatcher.poll_once()
    assert [d.outcome for d in delivered] == ["approved"] and effects == ["refund 9"]


@pytest.mark.parametrize("answer", ["timeout_default_approve", "cancelled", "not_in_allow_list"])
def test_server_side_denials(env: Env, answer: str) -> None:
    effects: list[str] = []

    def gate_graph() -> Any:
        def gate(state: S) -> dict[str, Any]:
            decision = env.keeper.review(
                "Ship?",
                response_type="single_select",
                response_config={"options": ["Approve", "Reject", "Later"]},
                default_response="approve",  # an approving default, without the opt-in
            )
            if decision.approved:
                effects.append("ship")
            return {"d": decision.model_dump(mode="json")}

        builder = StateGraph(S)
        builder.add_node("gate", gate)
        builder.add_edge(START, "gate")
        return builder.compile(checkpointer=InMemorySaver())

    graph = gate_graph()
    config = {"configurable": {"thread_id": answer}}
    graph.invoke({}, config)
    request_id = env.only_request_id()
    if answer == "timeout_default_approve":
        env.clock.advance(3601)
        env.hitl.tick_sync()
    elif answer == "cancelled":
        env.hitl.client.requests.cancel(request_id)
    else:
        env.hitl.reviewer.respond(request_id, "later")
    env.keeper.dispatcher(GraphResumer(graph)).poll_once()
    decision = graph.get_state(config).values["d"]
    assert effects == [] and decision["approved"] is False
    expected = {
        "timeout_default_approve": "timed_out",
        "cancelled": "cancelled",
        "not_in_allow_list": "answered",
    }[answer]
    assert decision["outcome"] == expected and decision["reason"]
