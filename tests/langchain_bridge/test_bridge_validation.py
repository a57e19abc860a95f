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
from bridge_agents import calls, documented_agent, draft, script, tool_messages
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


def _answer(env: Env, row: ReviewRecord, **changes: str) -> None:
    assert row.request_id is not None
    text = env.hitl.reviewer.get(row.request_id)["response_config"]["draft_text"]
    env.hitl.reviewer.respond(row.request_id, draft(text, **changes))
    env.tick()


BAD_ANSWERS = [
    pytest.param({}, "exactly one decision word", id="all-words-kept"),
    pytest.param({"decision": "approve reject"}, "exactly one decision word", id="two-words"),
    pytest.param({"decision": "maybe"}, "exactly one decision word", id="unknown-word"),
    pytest.param(
        {"decision": "edit", "args": json.dumps({"filename": "a.txt"})},
        "field content",
        id="edit-missing-field",
    ),
    pytest.param(
        {"decision": "edit", "args": json.dumps({"filename": ["x"], "content": "y"})},
        "field filename",
        id="edit-wrong-type",
    ),
    pytest.param({"decision": "edit", "args": "{not json"}, "not valid JSON", id="edit-bad-json"),
    pytest.param({"decision": "edit", "args": "[1, 2]"}, "not a JSON object", id="edit-list"),
    pytest.param(
        {"decision": "edit", "tool": "rm_rf"},
        "which the agent does not have|only 'write_file' can be edited here",
        id="unknown-tool",
    ),
    pytest.param(
        {"decision": "approve", "args": json.dumps({"filename": "b", "content": "x"})},
        "changed under 'approve'",
        id="approve-with-changed-args",
    ),
    pytest.param({"decision": "respond"}, "'respond' needs a message", id="respond-empty"),
]


@pytest.mark.parametrize("mode", ["batched", "per_call"])
@pytest.mark.parametrize(("changes", "reason"), BAD_ANSWERS)
def test_an_answer_that_cannot_be_valid_becomes_a_reject_with_its_reason(
    env: Env,
    mode: str,
    changes: dict[str, str],
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    agent, row, effects, cfg = _one_write(env, mode)
    with caplog.at_level(logging.WARNING, logger="hitl_agent.bridge"):
        _answer(env, row, **changes)
    assert effects == []
    state = agent.get_state(cfg)
    assert not state.next, "the thread must not stick"
    message = tool_messages(state.values["messages"])["call_0"]
    assert message.status == "error"
    assert re.search(reason, message.content), message.content
    assert "not run" in message.content
    assert any(re.search(reason, r.getMessage()) for r in caplog.records)
    assert env.ledger.get(row.key).state == "resumed"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("target", "args"),
    [
        # execute_sql is approve/reject only: an edit must not run SQL no one could edit.
        pytest.param("execute_sql", {"query": "DROP TABLE users"}, id="into-approve-only"),
        # read_data is not gated at all (interrupt_on False).
        pytest.param("read_data", {"query": "z"}, id="into-ungated"),
    ],
)
def test_a_batched_edit_cannot_turn_one_tool_into_another(
    env: Env, target: str, args: dict[str, Any]
) -> None:
    # Issue 21 S4: write_file allows edit; an edit naming another tool of the agent ran it.
    agent, row, effects, cfg = _one_write(env)
    _answer(env, row, decision="edit", tool=target, args=json.dumps(args))
    assert effects == []
    state = agent.get_state(cfg)
    assert not state.next
    message = tool_messages(state.values["messages"])["call_0"]
    assert message.status == "error"
    assert f"the edit names tool {target!r}; only 'write_file' can be edited" in message.content
    assert "never the tool" in message.content


def test_per_call_edit_cannot_switch_tools(env: Env) -> None:
    agent, row, effects, cfg = _one_write(env, "per_call")
    _answer(env, row, decision="edit", tool="read_data", args=json.dumps({"query": "z"}))
    assert effects == []
    message = tool_messages(agent.get_state(cfg).values["messages"])["call_0"]
    assert "only 'write_file' can be edited" in message.content


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
    _answer(env, row, decision="approve")
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


@pytest.mark.parametrize("word", ["Approve", " approve. ", "APPROVE!"])
def test_the_decision_word_is_read_whatever_its_case_and_punctuation(env: Env, word: str) -> None:
    agent, row, effects, cfg = _one_write(env)
    _answer(env, row, decision=word)
    assert effects == ["write_file a.txt x"]
    assert not agent.get_state(cfg).next
