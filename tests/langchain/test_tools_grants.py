"""Scoped standing grants (issue 23, item 4), on SQLite and PostgreSQL.

Through the product: ``require_approval(..., grants=Grants(...))`` in a ToolNode graph on the
local server; the reviewer answers the first form with a grant choice, the keeper's
dispatcher resumes the thread, and later calls in the grant's scope run with no request (the
keeper's ``review`` is not even called), while calls outside it ask again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hitl_harness import Env, backend_env
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from hitl_agent import ConfigError
from hitl_agent.cli import main
from hitl_agent.langchain import approved_call, require_approval
from hitl_agent.langgraph import GraphResumer
from hitl_agent.policies import Grants


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Env, str]]:
    """The harness's keeper on the local server, its ledger on each backend; the ledger URL."""
    yield from backend_env(request.param, tmp_path)


class Agent:
    """A graph whose agent node makes one scripted model turn per ``invoke``."""

    def __init__(self, env: Env, tools: list[BaseTool], saver: Any = None) -> None:
        self.env = env
        self.turns: dict[str, list[list[dict[str, Any]]]] = {}

        def agent(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
            thread = config["configurable"]["thread_id"]
            done = sum(1 for m in state["messages"] if isinstance(m, AIMessage))
            calls = self.turns[thread][done]
            return {"messages": [AIMessage("", tool_calls=calls, id=f"{thread}-turn-{done}")]}

        builder = StateGraph(MessagesState)
        builder.add_node("agent", agent)
        builder.add_node("tools", ToolNode(tools))
        builder.add_edge(START, "agent")
        builder.add_edge("agent", "tools")
        builder.add_edge("tools", END)
        self.graph = builder.compile(checkpointer=saver or InMemorySaver())
        self.dispatcher = env.keeper.dispatcher(GraphResumer(self.graph))

    def call(self, thread: str, call_id: str, **args: Any) -> bool:
        """One model turn calling ``pay(**args)``; True when it ran to the end (no review
        pending)."""
        self.turns.setdefault(thread, []).append([{"name": "pay", "args": args, "id": call_id}])
        config = {"configurable": {"thread_id": thread}}
        self.graph.invoke({"messages": []}, config)
        self.env.clock.advance(1)
        return not self.graph.get_state(config).next

    def turn(self, thread: str, calls: list[dict[str, Any]]) -> bool:
        """One model turn with several calls (one ToolNode task); True when it ran to the end."""
        self.turns.setdefault(thread, []).append(calls)
        config = {"configurable": {"thread_id": thread}}
        self.graph.invoke({"messages": []}, config)
        self.env.clock.advance(1)
        return not self.graph.get_state(config).next

    def answer(self, value: str) -> None:
        """The reviewer answers the one open request; the dispatcher resumes its thread."""
        (open_,) = [r for r in self.env.requests() if r.status == "pending"]
        self.env.hitl.reviewer.respond(open_.id, value)
        self.dispatcher.poll_once()

    def last_result(self, thread: str) -> str:
        messages = self.graph.get_state({"configurable": {"thread_id": thread}}).values["messages"]
        return str([m for m in messages if m.type == "tool"][-1].content)


def _pay_tool(effects: list[tuple[str, int]], keys: list[str] | None = None) -> BaseTool:
    @tool
    def pay(order_id: str, amount: int) -> str:
        """Pay an order."""
        effects.append((order_id, amount))
        approval = approved_call()
        if keys is not None and approval is not None:
            keys.append(approval.idempotency_key)
        return f"paid {amount} on {order_id}"

    return pay


def _no_review(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a grant-covered call asked for a review")

    monkeypatch.setattr(env.keeper, "review", refuse)
    monkeypatch.setattr(env.keeper, "areview", refuse)


def test_the_form_offers_only_the_grants_the_policy_allows(backend: tuple[Env, str]) -> None:
    env, _ = backend
    effects: list[tuple[str, int]] = []
    agent = Agent(
        env, [require_approval(env.keeper, _pay_tool(effects), grants=Grants(thread=3600))]
    )
    assert not agent.call("t1", "c1", order_id="o-1", amount=5)
    (request,) = env.requests()
    values = [o["value"] for o in request.response_config["options"]]
    assert values == ["approve", "approve_thread", "reject", "reject_with_reason"]
    labels = [o["label"] for o in request.response_config["options"]]
    assert "✅ Approve for this thread, 1 h" in labels
    assert "Approve for this thread** also runs every later call of" in request.request_text
    assert "thread `t1`" in request.request_text and "exact arguments" not in request.request_text


def test_a_thread_grant_covers_later_calls_of_that_thread_only(
    backend: tuple[Env, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env, url = backend
    effects: list[tuple[str, int]] = []
    keys: list[str] = []
    pay = require_approval(env.keeper, _pay_tool(effects, keys), grants=Grants(thread=3600))
    agent = Agent(env, [pay])
    assert not agent.call("t1", "c1", order_id="o-1", amount=5)
    agent.answer("approve_thread")
    assert effects == [("o-1", 5)]

    requests_before = len(env.requests())
    sent: list[str] = []
    http = env.keeper.client._http
    send = http.send
    with monkeypatch.context() as patch:
        _no_review(env, patch)
        patch.setattr(
            http, "send", lambda request, **kw: sent.append(str(request.url)) or send(request, **kw)
        )
        assert agent.call("t1", "c2", order_id="o-2", amount=700)  # other args, same thread
        assert agent.call("t1", "c3", order_id="o-3", amount=1)
    assert sent == []  # 0 API calls per covered call
    assert len(env.requests()) == requests_before
    assert effects == [("o-1", 5), ("o-2", 700), ("o-3", 1)]
    assert agent.last_result("t1") == "paid 1 on o-3"
    assert len(set(keys)) == 3  # each covered call has its own idempotency key

    with monkeypatch.context() as patch:  # the counter does count: a call that asks
        patch.setattr(
            http, "send", lambda request, **kw: sent.append(str(request.url)) or send(request, **kw)
        )
        assert not agent.call("t2", "d1", order_id="o-1", amount=5)  # another thread asks
    assert sent
    assert len(env.requests()) == requests_before + 1

    (grant,) = env.keeper.ledger.list_grants()
    assert (grant.scope, grant.tool, grant.thread_id, grant.args_hash) == (
        "thread", "pay", "t1", None,
    )  # fmt: skip
    assert grant.reviewer == "reviewer@localhost"
    uses = env.keeper.ledger.list_grant_uses(grant.grant_id)
    assert [u.tool_call_id for u in uses] == ["c2", "c3"]  # oldest first
    executions = env.keeper.ledger.get_executions([u.key for u in uses])
    assert {e.state for e in executions.values()} == {"succeeded"}
    assert {e.request_id for e in executions.values()} == {grant.request_id}

    # The audit export names the grant of every call that ran without a review.
    out = CliRunner().invoke(main, ["audit", "export", "--ledger", url, "--thread", "t1"])
    assert out.exit_code == 0, out.output
    records = [json.loads(line) for line in out.output.splitlines()]
    granted = [r for r in records if r["grant_id"] and r["request_id"] is None]
    assert [r["key"].rsplit("|", 1)[-1] for r in granted] == ["c2", "c3"]
    assert {r["execution"] for r in granted} == {"succeeded"}
    (made,) = [r for r in records if r["answer"] == "approve_thread"]
    assert made["grant_id"] == grant.grant_id


def test_an_args_grant_covers_exactly_those_args_in_any_thread(
    backend: tuple[Env, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env, _ = backend
    effects: list[tuple[str, int]] = []
    # The keeper's method takes grants= as the function does.
    pay = env.keeper.require_approval(_pay_tool(effects), grants=Grants(thread=60, args=86400))
    agent = Agent(env, [pay])
    assert not agent.call("t1", "c1", order_id="o-1", amount=5)
    agent.answer("approve_args")
    with monkeypatch.context() as patch:
        _no_review(env, patch)
        assert agent.call("t2", "d1", order_id="o-1", amount=5)  # same args, other thread
    assert not agent.call("t2", "d2", order_id="o-1", amount=6)  # other args: asks again
    assert not agent.call("t1", "c2", order_id="o-9", amount=5)  # no thread grant was given
    assert effects == [("o-1", 5), ("o-1", 5)]
    assert len(env.requests()) == 3


def test_a_grant_expires_on_the_keeper_clock_and_approve_once_grants_nothing(
    backend: tuple[Env, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env, _ = backend
    effects: list[tuple[str, int]] = []
    pay = require_approval(env.keeper, _pay_tool(effects), grants=Grants(thread=600))
    agent = Agent(env, [pay])
    assert not agent.call("t1", "c1", order_id="o-1", amount=5)
    agent.answer("approve_thread")
    env.clock.advance(599)
    with monkeypatch.context() as patch:
        _no_review(env, patch)
        assert agent.call("t1", "c2", order_id="o-2", amount=5)
    env.clock.advance(2)  # 601 s after the answer
    assert not agent.call("t1", "c3", order_id="o-3", amount=5)
    agent.answer("approve")  # once
    assert not agent.call("t1", "c4", order_id="o-4", amount=5)
    assert [e[0] for e in effects] == ["o-1", "o-2", "o-3"]
    assert len(env.keeper.ledger.list_grants()) == 1


def test_a_revoked_grant_covers_nothing_and_grants_are_listed(
    backend: tuple[Env, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env, url = backend
    effects: list[tuple[str, int]] = []
    pay = require_approval(env.keeper, _pay_tool(effects), grants=Grants(thread=3600))
    agent = Agent(env, [pay])
    assert not agent.call("t1", "c1", order_id="o-1", amount=5)
    agent.answer("approve_thread")
    (grant,) = env.keeper.ledger.list_grants()

    runner = CliRunner()
    listed = runner.invoke(main, ["grants", "list", "--all", "--format", "json", "--ledger", url])
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.output)
    assert row["grant_id"] == grant.grant_id and row["scope"] == "thread" and row["uses"] == 0
    assert "token" not in listed.output

    revoked = runner.invoke(main, ["grants", "revoke", grant.grant_id, "--ledger", url])
    assert revoked.exit_code == 0, revoked.output
    again = runner.invoke(main, ["grants", "revoke", grant.grant_id, "--ledger", url])
    assert again.exit_code == 1 and "already revoked" in again.output
    missing = runner.invoke(main, ["grants", "revoke", "g-nope", "--ledger", url])
    assert missing.exit_code == 1 and "grants list --all" in missing.output
    empty = runner.invoke(main, ["grants", "list", "--ledger", url])
    assert empty.exit_code == 0 and "no live grants" in empty.output

    assert not agent.call("t1", "c2", order_id="o-2", amount=5)  # asks again
    assert effects == [("o-1", 5)]


class _FlakySaver(InMemorySaver):
    """A checkpointer whose writes fail while ``failures`` is set (a full disk): the task's
    result is lost, so LangGraph runs the task again."""

    failures = 0

    def put(self, *args: Any, **kwargs: Any) -> Any:
        if self.failures:
            raise OSError(28, "No space left on device")
        return super().put(*args, **kwargs)

    def put_writes(self, *args: Any, **kwargs: Any) -> Any:
        if self.failures:
            raise OSError(28, "No space left on device")
        return super().put_writes(*args, **kwargs)


def test_a_covered_call_re_run_replays_and_never_runs_twice(
    backend: tuple[Env, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env, _ = backend
    effects: list[tuple[str, int]] = []
    saver = _FlakySaver()

    @tool
    def pay(order_id: str, amount: int) -> str:
        """Pay an order."""
        effects.append((order_id, amount))
        if order_id == "o-2":
            saver.failures = 1  # the call ran; the step that holds its result cannot be saved
        return f"paid {amount} on {order_id}"

    gated = require_approval(env.keeper, pay, grants=Grants(thread=3600))
    agent = Agent(env, [gated], saver)
    assert not agent.call("t1", "c1", order_id="o-1", amount=5)
    agent.answer("approve_thread")
    config = {"configurable": {"thread_id": "t1"}}
    with monkeypatch.context() as patch:
        _no_review(env, patch)
        with pytest.raises(OSError):
            agent.call("t1", "c2", order_id="o-2", amount=5)
        saver.failures = 0  # the disk has room again
        # Revoked meanwhile: the call that already ran under it replays, it does not ask.
        (grant,) = env.keeper.ledger.list_grants()
        env.keeper.ledger.revoke_grant(grant.grant_id, now=env.clock())
        agent.graph.invoke(None, config)  # LangGraph re-runs the task
    assert not agent.graph.get_state(config).next
    assert effects == [("o-1", 5), ("o-2", 5)]
    assert agent.last_result("t1") == "paid 5 on o-2"


def test_a_covered_call_beside_a_reviewed_sibling_in_one_task_runs_once_each(
    backend: tuple[Env, str],
) -> None:
    env, _ = backend
    effects: list[tuple[str, int]] = []
    refunded: list[str] = []

    @tool
    def refund(order_id: str) -> str:
        """Refund an order."""
        refunded.append(order_id)
        return f"refunded {order_id}"

    pay = require_approval(env.keeper, _pay_tool(effects), grants=Grants(thread=3600))
    agent = Agent(env, [pay, require_approval(env.keeper, refund)])
    assert not agent.call("t1", "c1", order_id="o-1", amount=5)
    agent.answer("approve_thread")
    calls = [
        {"name": "pay", "args": {"order_id": "o-2", "amount": 5}, "id": "c2"},
        {"name": "refund", "args": {"order_id": "o-7"}, "id": "r1"},
    ]
    # pay is covered and runs; refund asks: the task suspends, and re-runs once answered.
    assert not agent.turn("t1", calls)
    started = time.monotonic()
    agent.answer("approve")
    assert time.monotonic() - started < 5  # the approved sibling did not wait for pay
    assert not agent.graph.get_state({"configurable": {"thread_id": "t1"}}).next
    assert effects == [("o-1", 5), ("o-2", 5)] and refunded == ["o-7"]


def test_grants_must_be_a_grants_policy_with_positive_durations() -> None:
    with pytest.raises(ConfigError, match=r"grants.thread: must be a positive number"):
        Grants(thread=0)
    with pytest.raises(ConfigError, match=r"grants: offers no grant"):
        Grants()
    assert Grants(args=__import__("datetime").timedelta(hours=2)).args_seconds == 7200.0
