"""A reviewer's answer that LangChain would refuse is never sent: in batched mode a bad resume
value sticks the thread for good (the value is saved before the middleware checks it), so
every decision is checked first and whatever cannot be made valid becomes a reject with a
reason. Timeouts and cancellations fail closed the same way."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
from bridge_agents import answer, calls, documented_agent, script, tool_messages
from hitl_harness import Env
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from hitl_agent.decision import Decision
from hitl_agent.ledger import ReviewRecord

USER = {"messages": [HumanMessage("Write it.")]}
WRITE = ("write_file", {"filename": "a.txt", "content": "x"})


def _one_write(env: Env, mode: str = "batched") -> tuple[Any, ReviewRecord, list[str], Any]:
    effects: list[str] = []
    agent = documented_agent(script(calls(WRITE)), effects, InMemorySaver(), mode=mode)
    bridge = env.keeper.bridge(agent)
    env.plug(env.keeper.dispatcher(bridge.resumer))
    cfg: dict[str, Any] = {"configurable": {"thread_id": f"v-{mode}"}}
    agent.invoke(USER, cfg)
    (row,) = bridge.submit(cfg)
    return agent, row, effects, cfg


BAD_ANSWERS = [
    # (first tap, follow-up text, the reason the agent is told)
    pytest.param("edit", json.dumps({"filename": "a.txt"}), "field content", id="edit-missing"),
    pytest.param(
        "edit",
        json.dumps({"filename": ["x"], "content": "y"}),
        "field filename",
        id="edit-wrong-type",
    ),
    pytest.param("edit", "{not json", "not valid JSON", id="edit-bad-json"),
    pytest.param("edit", "[1, 2]", "not a JSON object", id="edit-list"),
    pytest.param("edit", "   ", "the edited arguments were cleared", id="edit-cleared"),
    pytest.param("respond", "  ", "'respond' needs a message", id="respond-empty"),
]


@pytest.mark.parametrize("mode", ["batched", "per_call"])
@pytest.mark.parametrize(("choice", "text", "reason"), BAD_ANSWERS)
def test_an_answer_that_cannot_be_valid_becomes_a_reject_with_its_reason(
    env: Env,
    mode: str,
    choice: str,
    text: str,
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    agent, row, effects, cfg = _one_write(env, mode)
    with caplog.at_level(logging.WARNING, logger="hitl_agent.bridge"):
        answer(env, row, choice, text)
    assert effects == []
    state = agent.get_state(cfg)
    assert not state.next, "the thread must not stick"
    message = tool_messages(state.values["messages"])["call_0"]
    assert message.status == "error"
    assert re.search(reason, message.content), message.content
    assert "not run" in message.content
    assert any(re.search(reason, r.getMessage()) for r in caplog.records)
    assert env.ledger.get(row.key).state == "resumed"  # type: ignore[union-attr]
    assert env.ledger.get(row.key + "|1").state == "resumed"  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ["batched", "per_call"])
def test_an_edit_form_holds_the_args_only_so_it_cannot_name_another_tool(
    env: Env, mode: str
) -> None:
    # Issue 21 S4 (helper D's rule, kept by the two-step form): the follow-up's text box holds
    # the reviewed tool's args, nothing else; a tool name typed into it is an argument
    # write_file does not have, and nothing runs.
    agent, row, effects, cfg = _one_write(env, mode)
    sql = {"tool": "execute_sql", "query": "DROP TABLE users"}
    answer(env, row, "edit", json.dumps(sql))
    assert effects == []
    message = tool_messages(agent.get_state(cfg).values["messages"])["call_0"]
    assert message.status == "error"
    assert "the edited args are invalid for 'write_file' (field" in message.content


def test_an_answer_to_the_earlier_draft_form_still_cannot_switch_tools() -> None:
    """Rows created before the two-step form are read as their reviewer was told; an edit
    there naming another tool stays refused (issue 21 S4)."""
    from hitl_agent.langchain._bridge_form import read_answer
    from hitl_agent.langchain._bridge_schema import BridgeAction
    from hitl_agent.models.response_types import EditedText

    action = BridgeAction(
        "batched",
        0,
        "write_file",
        {"filename": "a", "content": "x"},
        "",
        (
            "approve",
            "edit",
            "reject",
            "respond",
        ),
    )
    text = 'decision: edit\nmessage:\ntool: execute_sql\nargs:\n{"query": "DROP TABLE users"}'
    decision = Decision(
        request_id="r1", status="completed", outcome="edited", value=EditedText(text=text)
    )
    sent = read_answer(decision, action).decision
    assert sent["type"] == "reject"
    assert "only 'write_file' can be edited here" in sent["message"]


@pytest.mark.parametrize("mode", ["batched", "per_call"])
def test_a_timeout_is_a_reject_saying_timed_out(env: Env, mode: str) -> None:
    agent, _, effects, cfg = _one_write(env, mode)
    env.clock.advance(3601)
    env.tick()  # the server times the request out and calls back
    assert effects == []
    state = agent.get_state(cfg)
    assert not state.next
    message = tool_messages(state.values["messages"])["call_0"]
    assert "timed out" in message.content and "rejected" in message.content.lower()


@pytest.mark.parametrize("mode", ["batched", "per_call"])
def test_a_cancelled_request_is_a_reject_saying_cancelled(env: Env, mode: str) -> None:
    agent, row, effects, cfg = _one_write(env, mode)
    assert row.request_id is not None
    env.hitl.client.requests.cancel(row.request_id)
    env.tick()
    assert effects == []
    message = tool_messages(agent.get_state(cfg).values["messages"])["call_0"]
    assert "cancelled" in message.content
    assert not agent.get_state(cfg).next


def test_a_tool_that_cannot_be_refused_is_not_resumed_on_a_refusal(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    effects: list[str] = []

    @tool
    def deploy(target: str) -> str:
        """Deploy."""
        effects.append(f"deploy {target}")
        return "ok"

    agent = create_agent(
        script(calls(("deploy", {"target": "prod"}))),
        tools=[deploy],
        middleware=[HumanInTheLoopMiddleware({"deploy": {"allowed_decisions": ["approve"]}})],
        checkpointer=InMemorySaver(),
    )
    bridge = env.keeper.bridge(agent)
    dispatcher = env.plug(env.keeper.dispatcher(bridge.resumer))
    cfg: dict[str, Any] = {"configurable": {"thread_id": "approve-only"}}
    agent.invoke(USER, cfg)
    (row,) = bridge.submit(cfg)
    assert row.request_id is not None
    env.hitl.reviewer.respond(row.request_id, "reject")
    with caplog.at_level(logging.ERROR):
        env.tick()
        dispatcher.poll_once()
    assert effects == []
    assert agent.get_state(cfg).next  # still waiting: nothing valid could be sent
    assert env.ledger.get(row.key).state == "decided"  # type: ignore[union-attr]
    assert any("cannot be refused" in (r.exc_text or "") for r in caplog.records)


def test_an_approval_does_not_apply_to_a_call_that_changed_since_review(env: Env) -> None:
    """The row stores the hash of the question it asked; a different call under the same key
    (args rewritten in the checkpoint) does not run on the old answer (invariant 5)."""
    agent, row, _, cfg = _one_write(env)
    bridge = env.keeper.bridge(agent)
    env.forwarder.target = None  # no callback: nothing is resumed, the codec is asked below
    assert row.request_id is not None
    env.hitl.reviewer.respond(row.request_id, "approve")
    env.tick()
    decision = Decision.from_request(env.hitl.client.requests.get(row.request_id or ""))
    assert decision is not None
    env.ledger.record_decision(decision.request_id, decision.model_dump(mode="json"), now=1.0)
    decisions = [decision]

    (pending,) = agent.get_state(cfg).interrupts
    assert bridge.codec.encode(pending.value, decisions) == {"decisions": [{"type": "approve"}]}
    changed = json.loads(json.dumps(pending.value))
    changed["action_requests"][0]["args"]["content"] = "rm -rf /"
    (sent,) = bridge.codec.encode(changed, decisions)["decisions"]
    assert sent["type"] == "reject"
    assert "changed after it was sent for review" in sent["message"]
