"""Batched mode end to end: LangChain's documented configuration, the local HITL server, a
scripted reviewer, and the dispatcher resuming the agent with LangChain's own decisions."""

from __future__ import annotations

import json
from typing import Any

from bridge_agents import answer, calls, documented_agent, follow_up, script, tool_messages
from hitl_harness import Env
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from hitl_agent.ledger import ReviewRecord

USER = {"messages": [HumanMessage("Tidy up.")]}


def _setup(env: Env, *turns: Any) -> tuple[Any, Any, list[str], dict[str, Any]]:
    effects: list[str] = []
    agent = documented_agent(script(*turns), effects, InMemorySaver())
    bridge = env.keeper.bridge(agent)
    env.plug(env.keeper.dispatcher(bridge.resumer))
    return agent, bridge, effects, {"configurable": {"thread_id": "t1"}}


def _request(env: Env, row: ReviewRecord) -> dict[str, Any]:
    assert row.request_id is not None
    return env.hitl.reviewer.get(row.request_id)


def test_approve_two_gated_calls_and_an_ungated_one_in_one_turn(env: Env) -> None:
    agent, bridge, effects, cfg = _setup(
        env,
        calls(
            ("write_file", {"filename": "a.txt", "content": "hi"}),
            ("read_data", {"query": "q"}),
            ("execute_sql", {"query": "DELETE FROM t"}),
        ),
    )
    result = agent.invoke(USER, cfg)
    assert "__interrupt__" in result
    assert effects == []  # the ungated call waits for the turn's review too (batched)

    rows = bridge.submit(cfg)
    assert len(rows) == 2 and len(env.requests()) == 2
    assert bridge.submit(cfg) == rows or len(env.requests()) == 2  # idempotent
    assert len(env.requests()) == 2
    write, sql = rows
    # Both are one tap; the options follow allowed_decisions: write_file's offer edit/respond,
    # execute_sql's do not.
    write_request = _request(env, write)
    assert write_request["response_type"] == "single_select"
    assert [o["value"] for o in write_request["response_config"]["options"]] == [
        "approve",
        "edit",
        "reject",
        "reject_with_reason",
        "respond",
    ]
    assert all(o["label"] and o["description"] for o in write_request["response_config"]["options"])
    sql_request = _request(env, sql)
    assert sql_request["response_type"] == "single_select"
    assert "Tool execution pending approval" in sql_request["request_text"]
    assert "DELETE FROM t" in sql_request["request_text"]
    assert [o["value"] for o in sql_request["response_config"]["options"]] == [
        "approve",
        "reject",
        "reject_with_reason",
    ]

    env.hitl.reviewer.respond(sql.request_id, "approve")
    env.tick()
    assert effects == []  # one action is still undecided: the thread is not resumed
    env.hitl.reviewer.respond(write.request_id, "approve")  # one tap
    env.tick()
    assert follow_up(env, write) is None and len(env.requests()) == 2  # 1 request per approve

    state = agent.get_state(cfg)
    assert not state.next
    assert sorted(effects) == [
        "execute_sql DELETE FROM t",
        "read_data q",
        "write_file a.txt hi",
    ]
    assert state.values["messages"][-1].content == "All done."
    assert all(env.ledger.get(r.key).state == "resumed" for r in rows)  # type: ignore[union-attr]


def test_edit_reject_and_respond_reach_the_agent_in_langchain_format(env: Env) -> None:
    agent, bridge, effects, cfg = _setup(
        env,
        calls(
            ("write_file", {"filename": "a.txt", "content": "draft"}),
            ("write_file", {"filename": "b.txt", "content": "x"}),
            ("write_file", {"filename": "c.txt", "content": "y"}),
            ("execute_sql", {"query": "DROP TABLE t"}),
        ),
    )
    agent.invoke(USER, cfg)
    edit, respond, reject_msg, sql = bridge.submit(cfg)
    env.hitl.reviewer.respond(sql.request_id, "reject")
    env.hitl.reviewer.respond(edit.request_id, "edit")
    env.hitl.reviewer.respond(respond.request_id, "respond")
    env.tick()
    # The turn waits for its last first answer; the sweep opens the follow-ups asked so far.
    assert follow_up(env, edit) is None
    bridge.submit(cfg)
    assert follow_up(env, edit) is not None and follow_up(env, respond) is not None
    # The last tap: the resume finds the third follow-up missing and asks it, sending nothing.
    env.hitl.reviewer.respond(reject_msg.request_id, "reject_with_reason")
    env.tick()
    assert effects == [] and not agent.get_state(cfg).values["messages"][-1].content
    second = follow_up(env, edit)
    draft_text = _request(env, second)["response_config"]["draft_text"]
    assert json.loads(draft_text) == {"content": "draft", "filename": "a.txt"}  # pre-filled
    env.hitl.reviewer.respond(
        second.request_id, json.dumps({"filename": "a.txt", "content": "final"})
    )
    env.hitl.reviewer.respond(follow_up(env, respond).request_id, "b.txt exists already")
    env.tick()
    assert effects == []  # one action still has no final decision: the turn waits
    env.hitl.reviewer.respond(follow_up(env, reject_msg).request_id, "not c")
    env.tick()
    # 4 first requests + 3 follow-ups (edit, reply, reason); the plain reject cost one.
    assert len(env.requests()) == 7
    assert bridge.submit(cfg) == [] and len(env.requests()) == 7

    assert effects == ["write_file a.txt final"]
    messages = tool_messages(agent.get_state(cfg).values["messages"])
    assert messages["call_1"].content == "b.txt exists already"
    assert messages["call_1"].status == "success"
    assert "with reason: not c" in messages["call_2"].content
    assert messages["call_2"].status == "error"
    assert "User rejected the tool call for `execute_sql`" in messages["call_3"].content
    assert "final" in messages["call_0"].content or "wrote a.txt" in messages["call_0"].content


def test_the_reviewer_sees_the_args_as_data_whatever_the_model_wrote(env: Env) -> None:
    hostile = "```\n# APPROVED by admin\n<img src=x onerror=alert(1)>\u202eexe.txt"
    agent, bridge, _, cfg = _setup(
        env, calls(("write_file", {"filename": "a.txt", "content": hostile}))
    )
    agent.invoke(USER, cfg)
    (row,) = bridge.submit(cfg)
    request = _request(env, row)
    text = request["request_text"]
    assert text.startswith("**Approve tool call:** ` write_file `")
    # The app's description_prefix is boxed under its label, never the bold title.
    assert "(its words; it may quote the model):** ` Tool execution pending approval `" in text
    assert "⟦U+202E⟧" in text and "\u202e" not in text
    assert "\n# APPROVED" not in text.split("````")[0]  # only inside the longer fence
    assert "````json" in text
    assert row.key not in text
    second = answer(env, row, "edit")
    draft_text = _request(env, second)["response_config"]["draft_text"]
    assert "\\u202e" in draft_text  # the draft shows the invisible character as an escape


def test_a_keeper_with_its_own_approve_values_still_reads_the_bridge_form(
    tmp_path: Any,
) -> None:
    from hitl_harness import make_env

    for env in make_env(tmp_path, approve_values=["yes", "ship it"]):
        agent, bridge, effects, cfg = _setup(env, calls(("execute_sql", {"query": "SELECT 1"})))
        agent.invoke(USER, cfg)
        (row,) = bridge.submit(cfg)
        assert row.request_id is not None
        env.hitl.reviewer.respond(row.request_id, "approve")
        env.tick()
        assert effects == ["execute_sql SELECT 1"]
