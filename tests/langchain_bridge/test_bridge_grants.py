"""Standing grants per tool in the middleware bridge (issue 23 item 4), SQLite and PostgreSQL.

``keeper.bridge(agent, policies={"pay": {"grants": Grants(thread=, args=)}})`` on the local
server: the reviewer answers the first form with a grant choice, the keeper's dispatcher
resumes the thread, and later actions in the grant's scope make no request: ``submit`` /
``sweep`` record a grant use and resume the middleware with an approve, once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bridge_agents import ScriptedModel, tool_messages
from click.testing import CliRunner
from hitl_harness import Env, backend_env
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import Field

from hitl_agent import ConfigError
from hitl_agent.cli import main
from hitl_agent.langchain._bridge_grants import claim_resume
from hitl_agent.policies import Grants, Quorum


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Env, str]]:
    """The harness's keeper on the local server, its ledger on each backend; the ledger URL."""
    yield from backend_env(request.param, tmp_path)


class _Model(ScriptedModel):
    """Answers a user's message with the next queued tool-call turn, anything else (tool
    results) with "Done.": each thread's turn is asked for when its ``invoke`` starts."""

    queued: list[AIMessage] = Field(default_factory=list)

    def _generate(self, messages: list[Any], *args: Any, **kwargs: Any) -> ChatResult:
        if isinstance(messages[-1], HumanMessage):
            message = self.queued.pop(0)
        else:
            message = AIMessage("Done.")
        return ChatResult(generations=[ChatGeneration(message=message)])


class Agent:
    """LangChain's agent with ``pay`` (all decisions) and ``refund`` (approve/reject) gated,
    bridged with ``policies``; the keeper's dispatcher gets the server's callbacks."""

    def __init__(self, env: Env, policies: dict[str, Any], *, mode: str = "batched") -> None:
        self.env = env
        self.effects: list[str] = []
        self.model = _Model(messages=iter([]))
        self.calls = 0
        effects = self.effects

        @tool
        def pay(order_id: str, amount: int) -> str:
            """Pay an order."""
            effects.append(f"pay {order_id} {amount}")
            return f"paid {amount} on {order_id}"

        @tool
        def refund(order_id: str) -> str:
            """Refund an order."""
            effects.append(f"refund {order_id}")
            return f"refunded {order_id}"

        self.agent = create_agent(
            self.model,
            tools=[pay, refund],
            middleware=[
                HumanInTheLoopMiddleware(
                    interrupt_on={
                        "pay": True,
                        "refund": {"allowed_decisions": ["approve", "reject"]},
                    },
                    interrupt_mode=mode,  # type: ignore[arg-type]
                )
            ],
            checkpointer=InMemorySaver(),
        )
        self.bridge = env.keeper.bridge(self.agent, policies=policies)
        self.dispatcher = env.plug(env.keeper.dispatcher(self.bridge.resumer))

    def turn(self, thread: str, *items: tuple[str, dict[str, Any]]) -> list[Any]:
        """One model turn calling ``items`` in ``thread``, then ``submit``: its rows."""
        tool_calls = []
        for name, args in items:
            self.calls += 1
            tool_calls.append(
                {"name": name, "args": args, "id": f"c{self.calls}", "type": "tool_call"}
            )
        self.model.queued.append(AIMessage("", tool_calls=tool_calls))
        config = self.cfg(thread)
        self.agent.invoke({"messages": [HumanMessage("Go.")]}, config)
        self.env.clock.advance(1)
        return self.bridge.submit(config)

    def pay(self, thread: str, order_id: str, amount: int) -> list[Any]:
        return self.turn(thread, ("pay", {"order_id": order_id, "amount": amount}))

    @staticmethod
    def cfg(thread: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": thread}}

    def answer(self, value: str) -> Any:
        """The reviewer answers the one open request; the callback resumes the thread."""
        (open_,) = [r for r in self.env.requests() if r.status == "pending"]
        self.env.hitl.reviewer.respond(open_.id, value)
        self.env.tick()
        return open_

    def done(self, thread: str) -> bool:
        return not self.agent.get_state(self.cfg(thread)).next

    def results(self, thread: str) -> list[str]:
        messages = self.agent.get_state(self.cfg(thread)).values["messages"]
        return [str(m.content) for m in tool_messages(messages).values()]


THREAD = Grants(thread=3600)
BOTH = Grants(thread=3600, args=86400)


def test_the_form_offers_the_grants_beside_approve(backend: tuple[Env, str]) -> None:
    env, _ = backend
    agent = Agent(env, {"pay": {"grants": BOTH}})
    (row,) = agent.pay("t1", "o-1", 5)
    sent = env.hitl.reviewer.get(row.request_id)
    options = sent["response_config"]["options"]
    assert [o["value"] for o in options] == [
        "approve", "approve_thread", "approve_args", "edit", "reject", "reject_with_reason",
        "respond",
    ]  # fmt: skip
    labels = [o["label"] for o in options]
    assert "✅ Approve for this thread, 1 h" in labels
    assert "✅ Approve these exact arguments, 1 d" in labels
    text = sent["request_text"]
    assert "🔒 **Approve for this thread** also runs every later call of" in text
    assert "🔒 **Approve these exact arguments** also runs later calls of" in text
    assert "`hitl-agent grants revoke`" in text
    # refund has no grants: its form is unchanged.
    (other,) = agent.turn("t2", ("refund", {"order_id": "o-1"}))
    values = [
        o["value"] for o in env.hitl.reviewer.get(other.request_id)["response_config"]["options"]
    ]
    assert values == ["approve", "reject", "reject_with_reason"]


def test_a_thread_grant_covers_later_calls_of_that_tool_in_that_thread_only(
    backend: tuple[Env, str],
) -> None:
    env, url = backend
    agent = Agent(env, {"pay": {"grants": THREAD}, "refund": {"grants": THREAD}})
    assert len(agent.pay("t1", "o-1", 5)) == 1
    agent.answer("approve_thread")
    assert agent.effects == ["pay o-1 5"] and agent.done("t1")
    (grant,) = env.ledger.list_grants()
    assert (grant.scope, grant.tool, grant.thread_id, grant.args_hash) == (
        "thread", "pay", "t1", None,
    )  # fmt: skip
    assert grant.loop_id == env.hitl.loop_id and grant.reviewer == "reviewer@localhost"
    assert grant.expires_at - grant.created_at == 3600

    before = len(env.requests())
    assert agent.pay("t1", "o-2", 700) == []  # other args, same thread: no request
    assert agent.done("t1") and agent.effects == ["pay o-1 5", "pay o-2 700"]
    assert agent.results("t1")[-1] == "paid 700 on o-2"
    assert len(env.requests()) == before
    # Re-sweeps and resubmits create nothing and run nothing twice.
    agent.bridge.submit(agent.cfg("t1"))
    agent.bridge.sweep()
    agent.dispatcher.poll_once()
    assert len(env.requests()) == before and agent.effects == ["pay o-1 5", "pay o-2 700"]

    assert len(agent.pay("t2", "o-1", 5)) == 1  # another thread asks
    assert len(agent.turn("t1", ("refund", {"order_id": "o-1"}))) == 1  # another tool asks
    assert len(env.requests()) == before + 2
    assert agent.effects == ["pay o-1 5", "pay o-2 700"]

    (use,) = env.ledger.list_grant_uses(grant.grant_id)
    assert use.thread_id == "t1" and use.key.startswith("grant|")
    out = CliRunner().invoke(main, ["audit", "export", "--ledger", url, "--thread", "t1"])
    assert out.exit_code == 0, out.output
    records = [json.loads(line) for line in out.output.splitlines()]
    (granted,) = [r for r in records if r["outcome"] == "granted"]
    assert granted["grant_id"] == grant.grant_id and granted["tool"] == "pay"
    (made,) = [r for r in records if r["answer"] == "approve_thread"]
    assert made["grant_id"] == grant.grant_id


def test_an_args_grant_covers_the_same_args_in_any_thread(backend: tuple[Env, str]) -> None:
    env, _ = backend
    agent = Agent(env, {"pay": {"grants": BOTH}})
    agent.pay("t1", "o-1", 5)
    agent.answer("approve_args")
    (grant,) = env.ledger.list_grants()
    assert grant.scope == "args" and grant.thread_id is None and grant.args_hash
    assert agent.pay("t2", "o-1", 5) == []  # same args, other thread
    assert agent.done("t2")
    assert len(agent.pay("t2", "o-1", 6)) == 1  # other args ask
    assert len(agent.pay("t3", "o-9", 5)) == 1  # no thread grant was given
    assert agent.effects == ["pay o-1 5", "pay o-1 5"]
    assert len(env.requests()) == 3


def test_a_grant_expires_on_the_keeper_clock_and_a_revoked_one_covers_nothing(
    backend: tuple[Env, str],
) -> None:
    env, url = backend
    agent = Agent(env, {"pay": {"grants": Grants(thread=600)}})
    agent.pay("t1", "o-1", 5)
    agent.answer("approve_thread")
    env.clock.advance(590)
    assert agent.pay("t1", "o-2", 5) == []
    env.clock.advance(20)  # past 600 s after the answer
    assert len(agent.pay("t1", "o-3", 5)) == 1
    agent.answer("approve_thread")  # a second grant, from this answer
    assert agent.pay("t1", "o-4", 5) == []
    assert [e.split()[1] for e in agent.effects] == ["o-1", "o-2", "o-3", "o-4"]

    live = [g for g in env.ledger.list_grants() if g.live(env.clock())]
    (grant,) = live
    runner = CliRunner()
    # --all: the command judges liveness on the wall clock, the keeper on its FakeClock.
    listed = runner.invoke(main, ["grants", "list", "--all", "--format", "json", "--ledger", url])
    assert listed.exit_code == 0, listed.output
    uses = {row["grant_id"]: row["uses"] for row in json.loads(listed.output)}
    assert len(uses) == 2 and uses[grant.grant_id] == 1
    revoked = runner.invoke(main, ["grants", "revoke", grant.grant_id, "--ledger", url])
    assert revoked.exit_code == 0, revoked.output
    assert len(agent.pay("t1", "o-5", 5)) == 1  # asks again
    assert len(agent.effects) == 4


def test_a_recorded_use_replays_its_approve_after_a_revoke_and_runs_once(
    backend: tuple[Env, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env, _ = backend
    agent = Agent(env, {"pay": {"grants": THREAD}})
    agent.pay("t1", "o-1", 5)
    agent.answer("approve_thread")
    with monkeypatch.context() as patch:
        # The process stops after recording the use, before the resume.
        patch.setattr(agent.bridge, "_resume_granted", lambda *a, **k: None)
        assert agent.pay("t1", "o-2", 5) == []
    assert not agent.done("t1") and agent.effects == ["pay o-1 5"]
    (grant,) = env.ledger.list_grants()
    env.ledger.revoke_grant(grant.grant_id, now=env.clock())
    before = len(env.requests())
    agent.bridge.sweep()  # finds the use: the same approve, no request
    assert agent.done("t1") and agent.effects == ["pay o-1 5", "pay o-2 5"]
    agent.bridge.sweep()
    agent.bridge.submit(agent.cfg("t1"))
    assert agent.effects == ["pay o-1 5", "pay o-2 5"] and len(env.requests()) == before


def test_an_action_that_asked_keeps_its_review(backend: tuple[Env, str]) -> None:
    env, _ = backend
    agent = Agent(env, {"pay": {"grants": BOTH}})
    agent.pay("t1", "o-1", 5)
    (pending,) = agent.pay("t2", "o-1", 5)  # asks: no grant yet
    (first,) = [r for r in env.requests() if r.id != pending.request_id]
    env.hitl.reviewer.respond(first.id, "approve_args")
    env.tick()
    assert agent.effects == ["pay o-1 5"]
    # A grant now covers t2's action, but it asked a reviewer: it waits for its answer.
    assert agent.bridge.submit(agent.cfg("t2"))[0].key == pending.key
    assert agent.effects == ["pay o-1 5"] and not agent.done("t2")
    assert env.ledger.list_grant_uses() == []
    agent.answer("reject")
    assert agent.effects == ["pay o-1 5"] and agent.done("t2")


def test_a_granted_action_beside_a_reviewed_one_in_one_batched_turn(
    backend: tuple[Env, str],
) -> None:
    env, _ = backend
    agent = Agent(env, {"pay": {"grants": THREAD}})
    agent.pay("t1", "o-1", 5)
    agent.answer("approve_thread")
    rows = agent.turn(
        "t1", ("pay", {"order_id": "o-2", "amount": 5}), ("refund", {"order_id": "o-7"})
    )
    assert len(rows) == 1 and "refund" in env.hitl.reviewer.get(rows[0].request_id)["request_text"]
    assert agent.effects == ["pay o-1 5"]  # the turn waits for refund's review
    agent.answer("approve")  # one resume: pay under the grant, refund approved
    assert agent.done("t1")
    assert sorted(agent.effects) == ["pay o-1 5", "pay o-2 5", "refund o-7"]
    agent.bridge.sweep()
    assert len(agent.effects) == 3 and len(env.requests()) == 2


def test_per_call_mode(backend: tuple[Env, str]) -> None:
    env, _ = backend
    agent = Agent(env, {"pay": {"grants": THREAD}}, mode="per_call")
    agent.pay("t1", "o-1", 5)
    agent.answer("approve_thread")
    assert agent.effects == ["pay o-1 5"]
    assert (
        agent.turn(
            "t1",
            ("pay", {"order_id": "o-2", "amount": 1}),
            ("pay", {"order_id": "o-3", "amount": 2}),
        )
        == []
    )
    assert agent.done("t1") and sorted(agent.effects) == ["pay o-1 5", "pay o-2 1", "pay o-3 2"]
    assert len(env.requests()) == 1 and len(env.ledger.list_grant_uses()) == 2


def test_async_submit_resumes_a_granted_action(backend: tuple[Env, str]) -> None:
    import asyncio

    env, _ = backend
    agent = Agent(env, {"pay": {"grants": THREAD}})
    agent.pay("t1", "o-1", 5)
    agent.answer("approve_thread")
    call = {
        "name": "pay",
        "args": {"order_id": "o-2", "amount": 3},
        "id": "a1",
        "type": "tool_call",
    }
    agent.model.queued.append(AIMessage("", tool_calls=[call]))
    agent.agent.invoke({"messages": [HumanMessage("Go.")]}, agent.cfg("t1"))
    assert asyncio.run(agent.bridge.asubmit(agent.cfg("t1"))) == []
    assert agent.done("t1") and agent.effects == ["pay o-1 5", "pay o-2 3"]


def test_a_resume_claim_is_held_once(env: Env) -> None:
    done = claim_resume(env.ledger, "k", thread_id="t", tool="pay", now=100.0, stale_after=60)
    assert done is not None
    assert (
        claim_resume(env.ledger, "k", thread_id="t", tool="pay", now=110.0, stale_after=60) is None
    )
    # A holder that died (never finished) is taken over after stale_after.
    again = claim_resume(env.ledger, "k", thread_id="t", tool="pay", now=200.0, stale_after=60)
    assert again is not None
    again(True)
    assert (
        claim_resume(env.ledger, "k", thread_id="t", tool="pay", now=900.0, stale_after=60) is None
    )


def test_grants_config_errors(env: Env) -> None:
    agent = Agent(env, {})
    bad: list[tuple[dict[str, Any], str, str]] = [
        ({"pay": {"quorum": 2, "grants": THREAD}}, "policies.pay.grants", "one reviewer"),
        ({"pay": {"quorum": Quorum(3), "grants": THREAD}}, "policies.pay.grants", "quorum 3"),
        ({"pay": {"grants": {"thread": 60}}}, "policies.pay.grants", "Grants"),
    ]
    for policies, field, says in bad:
        with pytest.raises(ConfigError) as err:
            env.keeper.bridge(agent.agent, policies=policies)
        assert err.value.field == field, policies
        assert says in str(err.value), policies
    env.keeper.bridge(agent.agent, policies={"pay": {"quorum": 1, "grants": THREAD}})

    @tool
    def wire(to: str) -> str:
        """Wire money."""
        return "wired"

    no_approve = create_agent(
        ScriptedModel(messages=iter([])),
        tools=[wire],
        middleware=[
            HumanInTheLoopMiddleware(
                interrupt_on={"wire": {"allowed_decisions": ["reject", "respond"]}}
            )
        ],
        checkpointer=InMemorySaver(),
    )
    with pytest.raises(ConfigError) as err:
        env.keeper.bridge(no_approve, policies={"wire": {"grants": THREAD}})
    assert err.value.field == "policies.wire.grants" and "approve" in str(err.value)


def test_a_grant_choice_counts_as_an_approval_under_an_exclusion(backend: tuple[Env, str]) -> None:
    env, _ = backend
    agent = Agent(env, {"pay": {"exclude": ["bob@example.com"], "grants": THREAD}})
    (row,) = agent.pay("t1", "o-1", 5)
    text = env.hitl.reviewer.get(row.request_id)["request_text"]
    assert "Approve for this thread" in text
    agent.answer("approve_thread")
    assert agent.effects == ["pay o-1 5"] and agent.done("t1")
    (grant,) = env.ledger.list_grants()
    assert grant.review_key == row.key and grant.scope == "thread"
    assert agent.pay("t1", "o-2", 5) == [] and agent.effects == ["pay o-1 5", "pay o-2 5"]
