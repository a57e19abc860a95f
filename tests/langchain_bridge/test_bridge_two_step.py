"""Issue 21 S5: the reviewer decides with one tap and types only what needs text.

The first request is a ``single_select`` of the tool's allowed decisions; a choice ending in
… (edit, reject and say why, answer instead) opens one follow-up request keyed with the first's
key plus ``|1`` in the same task, so the resolver delivers both rows together, once. Measured
here: the requests each kind of decision costs, a follow-up that times out, and a process
that dies between the two requests.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from bridge_agents import answer, calls, documented_agent, follow_up, script, tool_messages
from hitl_harness import Env
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from hitl_agent._hooks import set_hook
from hitl_agent.ledger import ReviewRecord

USER = {"messages": [HumanMessage("Write it.")]}
WRITE = ("write_file", {"filename": "a.txt", "content": "x"})
MODES = ["batched", "per_call"]


def _one_write(env: Env, mode: str) -> tuple[Any, Any, ReviewRecord, list[str], Any]:
    effects: list[str] = []
    agent = documented_agent(script(calls(WRITE)), effects, InMemorySaver(), mode=mode)
    bridge = env.keeper.bridge(agent)
    env.plug(env.keeper.dispatcher(bridge.resumer))
    cfg: dict[str, Any] = {"configurable": {"thread_id": f"two-{mode}"}}
    agent.invoke(USER, cfg)
    (row,) = bridge.submit(cfg)
    return agent, bridge, row, effects, cfg


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("choice", "text", "requests", "ran", "result"),
    [
        pytest.param("approve", None, 1, ["write_file a.txt x"], "wrote a.txt", id="approve"),
        pytest.param("reject", None, 1, [], "User rejected the tool call", id="reject"),
        pytest.param("reject_with_reason", "too risky", 2, [], "too risky", id="reason"),
        pytest.param(
            "edit",
            json.dumps({"filename": "a.txt", "content": "y"}),
            2,
            ["write_file a.txt y"],
            "wrote a.txt",
            id="edit",
        ),
        pytest.param("respond", "Saved it by hand.", 2, [], "Saved it by hand.", id="respond"),
    ],
)
def test_each_decision_costs_one_tap_and_at_most_two_requests(
    env: Env,
    mode: str,
    choice: str,
    text: str | None,
    requests: int,
    ran: list[str],
    result: str,
) -> None:
    agent, bridge, row, effects, cfg = _one_write(env, mode)
    first = env.hitl.reviewer.get(row.request_id)  # type: ignore[arg-type]
    assert first["response_type"] == "single_select"  # a tap, never a draft to cut down
    assert first["default_response"] == "reject"
    second = answer(env, row, choice, text)
    assert (second is not None) is (requests == 2)
    if second is not None:
        # One correlation: the follow-up's key is the first's plus its next index, in the
        # same task (the resolver delivers both rows together).
        assert second.key == row.key + "|1"
        assert (second.thread_id, second.checkpoint_ns) == (row.thread_id, row.checkpoint_ns)
        asked = env.hitl.reviewer.get(second.request_id)  # type: ignore[arg-type]
        assert asked["response_type"] == ("editable_text" if choice == "edit" else "text")
        if choice == "edit":  # pre-filled with the current args
            assert json.loads(asked["response_config"]["draft_text"]) == WRITE[1]
    assert effects == ran
    state = agent.get_state(cfg)
    assert not state.next
    assert result in tool_messages(state.values["messages"])["call_0"].content
    assert len(env.requests()) == requests
    # Exactly once: the rows are resumed; another sweep or poll creates and delivers nothing.
    assert env.ledger.get(row.key).state == "resumed"  # type: ignore[union-attr]
    bridge.submit(cfg)
    assert env.keeper.dispatcher(bridge.resumer).poll_once() == []
    assert len(env.requests()) == requests and effects == ran
    # The resume that asked the follow-up found nothing to send yet; that note is cleared
    # once both rows are delivered (no "nothing waited" entry in `ledger problems`).
    assert env.ledger.list_delivery_faults() == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("choice", "told"),
    [
        ("edit", "chose to edit the arguments but sent no edited arguments before the deadline"),
        ("reject_with_reason", "chose to reject with a reason but sent no reason before the"),
        ("respond", "chose to answer instead but sent no reply before the deadline"),
    ],
)
def test_a_follow_up_that_times_out_fails_closed_saying_so(
    env: Env, mode: str, choice: str, told: str
) -> None:
    agent, _, row, effects, cfg = _one_write(env, mode)
    second = answer(env, row, choice)
    assert second is not None and second.state == "pending"
    env.clock.advance(3601)
    env.tick()  # the server times the follow-up out and calls back
    assert effects == []
    state = agent.get_state(cfg)
    assert not state.next
    message = tool_messages(state.values["messages"])["call_0"]
    assert message.status == "error"
    assert told in message.content and "(timed out)" in message.content
    assert "not run" in message.content


class Crash(Exception):
    """The process dies here (the resolver logs it and releases its claim)."""


@pytest.mark.parametrize("mode", MODES)
def test_a_restart_between_the_two_requests_finds_the_follow_up_again(env: Env, mode: str) -> None:
    agent, _, row, effects, cfg = _one_write(env, mode)
    crashed: list[str] = []

    def die_after_create(point: str) -> None:
        if point == "gate.after_create" and not crashed:
            crashed.append(point)
            raise Crash(point)

    set_hook(die_after_create)
    try:
        # The tap: the follow-up is created on the server, then the process dies before the
        # ledger learns its request id.
        env.hitl.reviewer.respond(row.request_id, "edit")  # type: ignore[arg-type]
        env.tick()
    finally:
        set_hook(None)
    assert crashed
    assert len(env.requests()) == 2
    second = follow_up(env, row)
    assert second is not None and second.request_id is None  # an intent, not yet marked

    # A new process: a new bridge and dispatcher over the same ledger and checkpointer.
    bridge = env.keeper.bridge(agent)
    dispatcher = env.plug(env.keeper.dispatcher(bridge.resumer))
    bridge.submit(cfg)  # within a minute the intent is left to its writer: nothing created
    assert len(env.requests()) == 2
    env.clock.advance(61)
    bridge.submit(cfg)  # then it is reconciled with the server: found, not created again
    assert len(env.requests()) == 2
    second = follow_up(env, row)
    assert second is not None and second.request_id is not None
    created = {r.id for r in env.requests()}
    assert second.request_id in created and row.request_id in created

    env.hitl.reviewer.respond(
        second.request_id, json.dumps({"filename": "a.txt", "content": "after restart"})
    )
    env.tick()
    assert effects == ["write_file a.txt after restart"]
    assert not agent.get_state(cfg).next
    assert dispatcher.poll_once() == [] and bridge.submit(cfg) == []
    assert len(env.requests()) == 2 and effects == ["write_file a.txt after restart"]


class WrapsLikeTheRemoteResumer:
    """The local graph resumer wrapped as ``RemoteGraphResumer`` wraps every error of a
    resume, the codec's included (``raise RemoteResumeError.wrap(...) from exc``)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def resume(self, record: ReviewRecord, decisions: Any) -> bool:
        from hitl_agent._exceptions import RemoteResumeError

        try:
            return bool(self.inner.resume(record, decisions))
        except Exception as exc:
            raise RemoteResumeError.wrap(f"resuming thread {record.thread_id}", exc) from exc

    async def aresume(self, record: ReviewRecord, decisions: Any) -> bool:
        from hitl_agent._exceptions import RemoteResumeError

        try:
            return bool(await self.inner.aresume(record, decisions))
        except Exception as exc:
            raise RemoteResumeError.wrap(f"resuming thread {record.thread_id}", exc) from exc

    def finished(self, record: ReviewRecord) -> bool:
        return bool(self.inner.finished(record))

    async def afinished(self, record: ReviewRecord) -> bool:
        return bool(await self.inner.afinished(record))


@pytest.mark.parametrize("mode", MODES)
def test_the_follow_up_is_asked_through_a_resumer_that_wraps_the_codecs_errors(
    env: Env, mode: str
) -> None:
    """The remote bridge shares this code; its resumer wraps what the codec raises, and the
    follow-up is asked all the same (the remote server tests need the langgraph CLI)."""
    from hitl_agent.langchain._bridge_core import BridgeResumer

    agent, bridge, row, effects, cfg = _one_write(env, mode)
    resumer = BridgeResumer(
        WrapsLikeTheRemoteResumer(bridge.resumer.bridged),  # type: ignore[arg-type]
        codec=bridge.codec,
        keeper=env.keeper,
    )
    env.plug(env.keeper.dispatcher(resumer))
    second = answer(env, row, "respond", "Done by hand.")
    assert second is not None and second.key == row.key + "|1"
    assert effects == [] and not agent.get_state(cfg).next
    message = tool_messages(agent.get_state(cfg).values["messages"])["call_0"]
    assert message.content == "Done by hand."
    assert len(env.requests()) == 2


@pytest.mark.parametrize(
    ("allowed", "values", "default"),
    [
        (
            ("approve", "edit", "reject", "respond"),
            ["approve", "edit", "reject", "reject_with_reason", "respond"],
            "reject",
        ),
        (("approve", "reject"), ["approve", "reject", "reject_with_reason"], "reject"),
        (
            ("approve", "edit", "reject"),
            ["approve", "edit", "reject", "reject_with_reason"],
            "reject",
        ),
        # Nothing else can say no: Reject is offered all the same (the timeout default must
        # be an option, or the request cannot be created).
        (("approve", "edit"), ["approve", "edit", "reject", "reject_with_reason"], "reject"),
        (("approve",), ["approve", "reject", "reject_with_reason"], "reject"),
        (("approve", "respond"), ["approve", "respond"], "respond"),
    ],
)
def test_the_options_follow_allowed_decisions_and_the_default_is_one_of_them(
    env: Env, allowed: tuple[Any, ...], values: list[str], default: str
) -> None:
    from hitl_agent.langchain._bridge_form import form_for
    from hitl_agent.langchain._bridge_schema import BridgeAction

    action = BridgeAction("batched", 0, "write_file", dict(WRITE[1]), "", allowed)
    form = form_for(action)
    options = form["response_config"]["options"]
    assert [o["value"] for o in options] == values
    assert all(o["label"] and o["description"] for o in options)
    assert form["default_response"] == default
    # The form is valid for HITL.sh: the request is created.
    spec = env.keeper.bridge(documented_agent(script(), [], InMemorySaver())).spec(action)
    created = env.hitl.client.requests.create(env.hitl.loop_id, **spec.create_kwargs("k", None))
    assert env.hitl.reviewer.get(created.id)["response_type"] == "single_select"


def test_in_a_batched_turn_the_sweep_opens_a_follow_up_before_the_others_are_decided(
    env: Env,
) -> None:
    """The resolver resumes a batched turn only when every call is decided; a follow-up asked
    before that opens at the next submit / sweep (sync and async), once."""
    import asyncio

    effects: list[str] = []
    agent = documented_agent(
        script(calls(WRITE, ("execute_sql", {"query": "SELECT 1"}))), effects, InMemorySaver()
    )
    bridge = env.keeper.bridge(agent)
    env.plug(env.keeper.dispatcher(bridge.resumer))
    cfg: dict[str, Any] = {"configurable": {"thread_id": "sweep-opens"}}
    agent.invoke(USER, cfg)
    write, sql = bridge.submit(cfg)
    assert answer(env, write, "reject_with_reason") is None  # sql undecided: not yet
    asyncio.run(bridge.asubmit(cfg))
    second = follow_up(env, write)
    assert second is not None and second.request_id is not None
    bridge.submit(cfg)
    bridge.sweep()
    assert len(env.requests()) == 3  # 2 first requests + 1 follow-up, whatever the sweeps
    env.hitl.reviewer.respond(second.request_id, "not this file")
    env.tick()
    assert effects == [] and agent.get_state(cfg).next  # sql still undecided
    env.hitl.reviewer.respond(sql.request_id, "approve")  # type: ignore[arg-type]
    env.tick()
    assert effects == ["execute_sql SELECT 1"]
    messages = tool_messages(agent.get_state(cfg).values["messages"])
    assert "not this file" in messages["call_0"].content
    assert len(env.requests()) == 3
