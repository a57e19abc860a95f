"""Standing grants on ``keeper.review`` / ``review_node`` (issue 23 item 4, beyond the tool
wrapper): the reviewer approves this step for the thread, or this exact question, for a
while; later reviews in that scope ask nobody. On the local server, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import pytest
from hitl_harness import Env, backend_env
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from hitl_agent import ConfigError, Decision, Grants
from hitl_agent.cli._audit import audit_records
from hitl_agent.langgraph import GraphResumer


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    for env, _ in backend_env(request.param, tmp_path):
        yield env


class State(TypedDict, total=False):
    amount: int
    hitl_decision: dict[str, Any]
    done: str


class Refunds:
    """START -> review (review_node with grants) -> refund | explain -> END."""

    def __init__(self, env: Env, grants: Grants, twin: str = "sync") -> None:
        self.env = env
        self.refunds: list[int] = []
        build = lambda s: {"request_text": f"Refund ${s['amount']}?", "grants": grants}  # noqa: E731

        def refund(state: State) -> State:
            self.refunds.append(state["amount"])
            return {"done": "refunded"}

        async def areview(state: State) -> dict[str, Any]:
            kwargs = dict(build(state))
            decision = await env.keeper.areview(kwargs.pop("request_text"), **kwargs)
            return {"hitl_decision": decision.model_dump(mode="json")}

        builder = StateGraph(State)
        if twin == "sync":
            node = env.keeper.review_node(build=build, approved="refund", rejected="explain")
            builder.add_node("review", node)
        else:
            builder.add_node("review", areview)
            builder.add_conditional_edges(
                "review",
                lambda s: "refund" if s["hitl_decision"]["approved"] else "explain",
            )
        builder.add_node("refund", refund)
        builder.add_node("explain", lambda s: {"done": "explained"})
        builder.add_edge(START, "review")
        builder.add_edge("refund", END)
        builder.add_edge("explain", END)
        self.graph = builder.compile(checkpointer=InMemorySaver())
        self.dispatcher = env.keeper.dispatcher(GraphResumer(self.graph))
        self.twin = twin

    def ask(self, thread: str, amount: int) -> bool:
        """One refund in ``thread``; True when it finished without a reviewer."""
        config = {"configurable": {"thread_id": thread}}
        if self.twin == "sync":
            self.graph.invoke({"amount": amount}, config)
        else:
            asyncio.run(self.graph.ainvoke({"amount": amount}, config))
        return not self.graph.get_state(config).next

    def answer(self, value: str) -> str:
        (request,) = [r for r in self.env.requests() if r.status == "pending"]
        self.env.hitl.reviewer.respond(request.id, value)
        if self.twin == "sync":
            self.dispatcher.poll_once()
        else:
            asyncio.run(self.dispatcher.apoll_once())
        return str(request.request_text)


@pytest.mark.parametrize("twin", ["sync", "async"])
def test_a_thread_grant_covers_later_reviews_of_the_step_in_that_thread(
    env: Env, twin: str
) -> None:
    flow = Refunds(env, Grants(thread=3600), twin)
    assert not flow.ask("t1", 250)
    (request,) = env.requests()
    values = [o["value"] for o in request.response_config["options"]]
    assert values == ["approve", "approve_thread", "reject"]
    text = flow.answer("approve_thread")
    assert "🔒 **Approve for this thread** also approves every later review of this step" in text
    assert flow.refunds == [250]
    assert flow.ask("t1", 900)  # covered: no request, approved
    assert flow.refunds == [250, 900] and len(env.requests()) == 1
    (grant,) = env.ledger.list_grants()
    assert grant.scope == "thread" and grant.thread_id == "t1" and grant.tool == "review:review"
    assert not flow.ask("t2", 5)  # another thread: asks
    assert len(env.requests()) == 2
    granted = [a for a in audit_records(env.ledger) if a["outcome"] == "granted"]
    assert [(g["grant_id"], g["tool"]) for g in granted] == [(grant.grant_id, "review:review")]


def test_an_args_grant_covers_the_same_question_anywhere_until_it_expires(env: Env) -> None:
    flow = Refunds(env, Grants(args=600))
    flow.ask("t1", 250)
    (request,) = env.requests()
    labels = [o["label"] for o in request.response_config["options"]]
    assert labels == ["✅ Approve", "✅ Approve this exact question, 10 min", "❌ Reject"]
    text = flow.answer("approve_args")
    assert "🔒 **Approve this exact question** also approves later reviews asking" in text
    assert flow.ask("t2", 250)  # the same question in another thread: covered
    assert not flow.ask("t3", 251)  # another question: asks
    flow.answer("reject")
    assert flow.refunds == [250, 250] and len(env.requests()) == 2
    env.clock.advance(601)
    assert not flow.ask("t4", 250)  # expired: asks
    assert len(env.requests()) == 3


def test_a_revoked_grant_covers_nothing_new_and_a_covered_review_replays(env: Env) -> None:
    flow = Refunds(env, Grants(thread=3600))
    flow.ask("t1", 1)
    flow.answer("approve_thread")
    assert flow.ask("t1", 2)
    (grant,) = env.ledger.list_grants()
    assert env.ledger.revoke_grant(grant.grant_id, now=env.clock())
    assert not flow.ask("t1", 3)  # revoked: asks
    assert flow.refunds == [1, 2] and len(env.requests()) == 2
    state = flow.graph.get_state({"configurable": {"thread_id": "t1"}})
    assert state.next == ("review",)


def test_grants_refuse_what_one_approval_cannot_scope(env: Env) -> None:
    with pytest.raises(ConfigError, match="grants"):
        env.keeper.review(
            "Deploy?",
            grants=Grants(args=60),
            response_type="text",
            default_response="",
            mode="block",
        )
    with pytest.raises(ConfigError, match="grants"):
        env.keeper.review("Deploy?", grants=Grants(args=60), quorum=2, mode="block")
    with pytest.raises(ConfigError, match="grants"):
        env.keeper.review("Deploy?", grants={"args": 60}, mode="block")  # type: ignore[arg-type]
    assert env.requests() == []


def test_a_blocking_review_is_covered_by_an_args_grant(env: Env) -> None:
    import threading

    def answer() -> None:
        for _ in range(500):
            pending = [r for r in env.requests() if r.status == "pending"]
            if pending:
                env.hitl.reviewer.respond(pending[0].id, "approve_args")
                return
            threading.Event().wait(0.02)

    helper = threading.Thread(target=answer)
    helper.start()
    first = env.keeper.review("Rotate the API key?", grants=Grants(args=60), wait_timeout=20)
    helper.join()
    assert first.approved and first.value == "approve_args"
    again = env.keeper.review("Rotate the API key?", grants=Grants(args=60), wait_timeout=1)
    assert isinstance(again, Decision) and again.approved and "standing grant" in again.reason
    assert len(env.requests()) == 1


def test_a_review_that_ran_under_a_grant_replays_under_it_after_a_revoke(env: Env) -> None:
    crashes = [True]
    approved: list[bool] = []

    def step(state: State) -> State:
        decision = env.keeper.review(f"Refund ${state['amount']}?", grants=Grants(thread=3600))
        if crashes and state["amount"] == 2:
            crashes.pop()
            raise RuntimeError("the process died after the review")
        approved.append(decision.approved)
        return {}

    builder = StateGraph(State)
    builder.add_node("review", step)
    builder.add_edge(START, "review")
    builder.add_edge("review", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    dispatcher = env.keeper.dispatcher(GraphResumer(graph))
    config = {"configurable": {"thread_id": "t1"}}
    graph.invoke({"amount": 1}, config)
    (request,) = env.requests()
    env.hitl.reviewer.respond(request.id, "approve_thread")
    dispatcher.poll_once()
    with pytest.raises(RuntimeError):
        graph.invoke({"amount": 2}, config)  # covered, then the node died
    (grant,) = env.ledger.list_grants()
    env.ledger.revoke_grant(grant.grant_id, now=env.clock())
    graph.invoke(None, config)  # the node runs again: the same review, under the same grant
    assert approved == [True, True] and len(env.requests()) == 1
    assert len(env.ledger.list_grant_uses(grant.grant_id)) == 1


def test_a_grant_given_in_an_escalation_stage_covers_the_keepers_own_loop(env: Env) -> None:
    from hitl_agent import Escalate
    from hitl_agent.testing import ScriptedReviewer

    owner = env.hitl.server.authenticate_key(env.hitl.api_key)
    assert owner is not None
    managers = env.hitl.server.create_loop(owner.user_id, "Managers")
    env.hitl.server.add_reviewer("boss@example.com", "boss-token-0123456", [managers])
    boss = ScriptedReviewer(env.hitl.http, "boss-token-0123456", env.hitl.base_url)
    done: list[int] = []

    def step(state: State) -> State:
        decision = env.keeper.review(
            f"Refund ${state['amount']}?",
            grants=Grants(thread=3600),
            escalate=[Escalate(after=60, loop_id=managers, name="Managers")],
        )
        if decision.approved:
            done.append(state["amount"])
        return {}

    builder = StateGraph(State)
    builder.add_node("review", step)
    builder.add_edge(START, "review")
    builder.add_edge("review", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    dispatcher = env.keeper.dispatcher(GraphResumer(graph))
    config = {"configurable": {"thread_id": "t1"}}
    graph.invoke({"amount": 1}, config)
    env.clock.advance(61)
    env.tick()
    dispatcher.poll_once()  # escalated to Managers
    (escalated,) = [r for r in env.hitl.client.requests.iter() if r.status == "pending"]
    boss.respond(escalated.id, "approve_thread")
    dispatcher.poll_once()
    (grant,) = env.ledger.list_grants()
    assert grant.loop_id == env.hitl.loop_id
    graph.invoke({"amount": 2}, config)  # covered: no request
    assert done == [1, 2] and len(list(env.hitl.client.requests.iter())) == 2
