"""per_call mode end to end: one request per ToolApprovalRequest, each resumed by its own
interrupt id as soon as it is decided, matched by tool_call_id."""

from __future__ import annotations

import json
from typing import Any

from bridge_agents import answer, calls, documented_agent, per_call_agent, script, tool_messages
from hitl_harness import Env
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from hitl_agent.ledger import ReviewRecord

USER = {"messages": [HumanMessage("Email Alice, then delete the report.")]}


def _draft_of(env: Env, request_id: str | None) -> str:
    assert request_id is not None
    return str(env.hitl.reviewer.get(request_id)["response_config"]["draft_text"])


def _by_tool(env: Env, rows: list[ReviewRecord]) -> dict[str, ReviewRecord]:
    """Rows by the tool their request asks about (per_call rows come in no fixed order)."""
    found: dict[str, ReviewRecord] = {}
    for row in rows:
        assert row.request_id is not None
        request = env.hitl.reviewer.get(row.request_id)
        found[request["context"]["langchain_bridge"]["tool"]] = row
    return found


def test_the_per_call_sample_each_call_resumed_alone_as_soon_as_decided(env: Env) -> None:
    effects: list[str] = []
    agent = per_call_agent(
        script(
            calls(
                ("send_email", {"to": "alice", "body": "hi"}),
                ("delete_file", {"path": "report.txt"}),
            )
        ),
        effects,
        InMemorySaver(),
    )
    bridge = env.keeper.bridge(agent)
    env.plug(env.keeper.dispatcher(bridge.resumer))
    cfg: dict[str, Any] = {"configurable": {"thread_id": "pc"}}
    result = agent.invoke(USER, cfg)
    assert len(result["__interrupt__"]) == 2

    rows = bridge.submit(cfg)
    assert len(rows) == 2 and len(env.requests()) == 2
    by_tool = _by_tool(env, rows)
    email, delete = by_tool["send_email"], by_tool["delete_file"]
    assert email.checkpoint_ns != delete.checkpoint_ns  # each call is its own task
    # delete_file allows approve/reject only: no edit in its form.
    assert env.hitl.reviewer.get(delete.request_id)["response_type"] == "single_select"  # type: ignore[arg-type]

    # Decide the second call first: it runs at once, alone, the first still waits.
    env.hitl.reviewer.respond(delete.request_id, "approve")  # type: ignore[arg-type]
    env.tick()
    assert effects == ["delete_file report.txt"]
    state = agent.get_state(cfg)
    assert [i.value["tool_call_id"] for i in state.interrupts] == ["call_0"]

    # Edit in two steps: tap "Edit the arguments…", then change the pre-filled args.
    env.hitl.reviewer.respond(email.request_id, "edit")  # type: ignore[arg-type]
    env.tick()
    assert effects == ["delete_file report.txt"]  # nothing sent before the edited args
    second = env.ledger.get(email.key + "|1")
    assert second is not None and second.checkpoint_ns == email.checkpoint_ns
    assert json.loads(_draft_of(env, second.request_id)) == {"to": "alice", "body": "hi"}
    env.hitl.reviewer.respond(
        second.request_id,  # type: ignore[arg-type]
        json.dumps({"to": "alice", "body": "hello"}),
    )
    env.tick()
    assert effects == ["delete_file report.txt", "send_email alice hello"]
    final = agent.get_state(cfg)
    assert not final.next
    assert final.values["messages"][-1].content == "All done."
    assert env.ledger.get(email.key).state == "resumed"  # type: ignore[union-attr]


def test_per_call_reject_respond_and_an_ungated_call_that_runs_at_once(env: Env) -> None:
    effects: list[str] = []
    agent = documented_agent(
        script(
            calls(
                ("write_file", {"filename": "a.txt", "content": "x"}),
                ("read_data", {"query": "q"}),
                ("execute_sql", {"query": "DROP TABLE t"}),
            )
        ),
        effects,
        InMemorySaver(),
        mode="per_call",
    )
    bridge = env.keeper.bridge(agent)
    env.plug(env.keeper.dispatcher(bridge.resumer))
    cfg: dict[str, Any] = {"configurable": {"thread_id": "pc2"}}
    agent.invoke(USER, cfg)
    assert effects == ["read_data q"]  # per_call: the ungated tool did not wait
    rows = _by_tool(env, bridge.submit(cfg))
    write, sql = rows["write_file"], rows["execute_sql"]
    env.hitl.reviewer.respond(sql.request_id, "reject")  # type: ignore[arg-type]
    answer(env, write, "respond", "Saved it by hand.")
    assert effects == ["read_data q"]
    messages = tool_messages(agent.get_state(cfg).values["messages"])
    assert messages["call_0"].content == "Saved it by hand."
    assert messages["call_0"].status == "success"
    assert messages["call_2"].status == "error"
    assert "execute_sql" in messages["call_2"].content
    assert messages["call_1"].content == "42"
    assert not agent.get_state(cfg).next
