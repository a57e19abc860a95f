"""Approval policies on a ``require_approval`` tool (issue 23 items 1-3): quorum, exclusion,
escalation, through a ToolNode graph on the local server, resumed by the keeper's dispatcher,
on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hitl_harness import Env, backend_env
from test_tools_grants import Agent, _pay_tool

from hitl_agent import ConfigError
from hitl_agent.langchain import require_approval
from hitl_agent.policies import Escalate, Grants
from hitl_agent.testing import ScriptedReviewer

BOB = "bob@example.com"


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    for env, _ in backend_env(request.param, tmp_path):
        yield env


def _bob(env: Env) -> ScriptedReviewer:
    env.hitl.server.add_reviewer(BOB, "bob-token-0123456789", [env.hitl.loop_id], name="Bob")
    return ScriptedReviewer(env.hitl.http, "bob-token-0123456789", env.hitl.base_url)


def _answer(agent: Agent, who: ScriptedReviewer, value: str) -> str:
    (open_,) = [r for r in agent.env.requests() if r.status == "pending"]
    who.respond(open_.id, value)
    agent.dispatcher.poll_once()
    return str(open_.request_text)


def test_a_two_person_tool_runs_once_after_two_different_approvals(env: Env) -> None:
    bob = _bob(env)
    effects: list[tuple[str, int]] = []
    agent = Agent(env, [require_approval(env.keeper, _pay_tool(effects), quorum=2)])
    assert not agent.call("t1", "c1", order_id="o-1", amount=900)
    first = _answer(agent, env.hitl.reviewer, "approve")
    assert first.startswith("🔒 Approval 1 of 2") and "Approve tool call" in first
    assert "**Approve** is one of the 2 approvals from different reviewers after which" in first
    assert len(first) <= 2000
    _answer(agent, env.hitl.reviewer, "approve")  # the same reviewer again: not counted
    assert effects == []
    _answer(agent, bob, "approve")
    assert effects == [("o-1", 900)]
    assert agent.last_result("t1") == "paid 900 on o-1"
    assert len(env.requests()) == 3
    agent.dispatcher.poll_once()
    assert effects == [("o-1", 900)]


def test_a_rejection_vetoes_a_two_person_tool(env: Env) -> None:
    bob = _bob(env)
    effects: list[tuple[str, int]] = []
    agent = Agent(env, [require_approval(env.keeper, _pay_tool(effects), quorum=2)])
    agent.call("t1", "c1", order_id="o-1", amount=900)
    _answer(agent, env.hitl.reviewer, "approve")
    _answer(agent, bob, "reject")
    assert effects == [] and "rejected" in agent.last_result("t1")
    assert len(env.requests()) == 2


def test_the_excluded_user_counts_neither_on_the_choice_nor_on_the_reason(env: Env) -> None:
    bob = _bob(env)
    effects: list[tuple[str, int]] = []
    gated = require_approval(
        env.keeper, _pay_tool(effects), exclude=lambda c: c.get("on_behalf_of")
    )
    agent = Agent(env, [gated])
    agent.turns["t1"] = [[{"name": "pay", "args": {"order_id": "o-1", "amount": 5}, "id": "c1"}]]
    agent.graph.invoke({"messages": []}, {"configurable": {"thread_id": "t1", "on_behalf_of": BOB}})
    text = _answer(agent, bob, "approve")  # the user approving their own call: void
    assert "an answer by `bob@example.com` does not count" in text and effects == []
    _answer(agent, env.hitl.reviewer, "reject_with_reason")
    # The reason form is asked on a resumed run (no on_behalf_of in its config): the
    # exclusion kept with the first form still applies.
    void = _answer(agent, bob, "let it through")
    assert "an answer by `bob@example.com` does not count" in void
    assert effects == [] and [r for r in env.requests() if r.status == "pending"]
    _answer(agent, env.hitl.reviewer, "wrong amount")
    result = agent.last_result("t1")
    assert "rejected" in result and "wrong amount" in result and "let it through" not in result
    assert effects == []


def test_an_escalated_tool_call_runs_once_when_the_next_loop_approves(env: Env) -> None:
    owner = env.hitl.server.authenticate_key(env.hitl.api_key)
    assert owner is not None
    managers = env.hitl.server.create_loop(owner.user_id, "Managers")
    env.hitl.server.add_reviewer("boss@example.com", "boss-token-0123456", [managers])
    boss = ScriptedReviewer(env.hitl.http, "boss-token-0123456", env.hitl.base_url)
    effects: list[tuple[str, int]] = []
    stage = Escalate(after=900, loop_id=managers, priority="critical", name="Managers")
    agent = Agent(env, [require_approval(env.keeper, _pay_tool(effects), escalate=[stage])])
    agent.call("t1", "c1", order_id="o-1", amount=5)
    env.clock.advance(901)
    env.tick()
    agent.dispatcher.poll_once()
    (second,) = [r for r in env.requests() if r.status == "pending"] or [
        r for r in env.hitl.client.requests.iter(loop_id=managers) if r.status == "pending"
    ]
    assert second.loop_id == managers and second.priority == "critical"
    boss.respond(second.id, "approve")
    agent.dispatcher.poll_once()
    assert effects == [("o-1", 5)]


@pytest.mark.parametrize("extra", [{"allow_edit": True}, {"grants": Grants(thread=60)}])
def test_a_quorum_refuses_one_reviewers_edit_or_grant(env: Env, extra: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="quorum") as caught:
        require_approval(env.keeper, _pay_tool([]), quorum=2, **extra)
    assert "one reviewer's choice" in str(caught.value)
    require_approval(env.keeper, _pay_tool([]), quorum=1, **extra)  # one approval: fine


def test_a_two_person_call_beside_a_one_person_and_a_plain_call_each_run_once(env: Env) -> None:
    """The README's shape: hitl_agent.langgraph.tools_condition, one task per tool call."""
    from langchain_core.messages import AIMessage
    from langchain_core.tools import tool
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode

    from hitl_agent.langgraph import GraphResumer, tools_condition

    bob = _bob(env)
    effects: list[tuple[str, int]] = []
    looked: list[str] = []

    @tool
    def refund(order_id: str, amount: int) -> str:
        """Refund an order."""
        effects.append((f"refund {order_id}", amount))
        return "refunded"

    @tool
    def lookup(order_id: str) -> str:
        """Look an order up."""
        looked.append(order_id)
        return "found"

    calls = [
        {"name": "pay", "args": {"order_id": "o-1", "amount": 900}, "id": "c-pay"},
        {"name": "refund", "args": {"order_id": "o-2", "amount": 5}, "id": "c-refund"},
        {"name": "lookup", "args": {"order_id": "o-3"}, "id": "c-lookup"},
    ]

    def agent(state: MessagesState) -> dict[str, Any]:
        if any(isinstance(m, AIMessage) for m in state["messages"]):
            return {"messages": []}
        return {"messages": [AIMessage("", tool_calls=calls)]}

    pay = require_approval(env.keeper, _pay_tool(effects), quorum=2)
    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([pay, require_approval(env.keeper, refund), lookup]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    dispatcher = env.keeper.dispatcher(GraphResumer(graph))
    graph.invoke({"messages": []}, {"configurable": {"thread_id": "t1"}})
    for _ in range(6):  # answer whatever is open: pay twice (two reviewers), refund once
        pending = [r for r in env.requests() if r.status == "pending"]
        if not pending:
            break
        for request in pending:
            who = bob if "Approval 2 of 2" in request.request_text else env.hitl.reviewer
            who.respond(request.id, "approve")
        dispatcher.poll_once()
    assert sorted(effects) == [("o-1", 900), ("refund o-2", 5)]
    assert looked == ["o-3"]
    assert len(env.requests()) == 3  # pay's two stages, refund's one
