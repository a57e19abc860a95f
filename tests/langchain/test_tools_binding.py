"""T11: an approval covers exactly the arguments that were reviewed. Arguments changed in the
checkpoint after the review (or a replayed model turn with other arguments under the same
tool call id) do not run, and the tool result says why."""

from __future__ import annotations

from typing import Any

import pytest
from hitl_harness import Env
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from tools_support import one_turn_graph, settle

from hitl_agent.gate import ARGS_HASH_KEY, ReviewSpec, args_hash

LONG = "x" * 600  # long, but shown in full (cut arguments are never offered for approval)


def _tamper(saver: InMemorySaver, thread_id: str, change: dict[str, Any]) -> None:
    """Rewrite the tool call args inside the stored checkpoint (as a bug or an attacker would)."""
    keys = [k for k in saver.blobs if k[0] == thread_id and k[2] == "messages"]
    key = max(keys, key=lambda k: str(k[3]))
    messages = saver.serde.loads_typed(saver.blobs[key])
    turn = next(m for m in messages if isinstance(m, AIMessage))
    call = turn.tool_calls[0]
    call["args"] = {**call["args"], **change}
    saver.blobs[key] = saver.serde.dumps_typed(messages)


def _graph(env: Env, effects: list[str], saver: InMemorySaver) -> Any:
    @tool
    def send(to: str, body: str) -> str:
        """Send an email."""
        effects.append(f"{to}: {body[-10:]}")
        return "sent"

    safe = env.keeper.require_approval(send)
    call = {"name": "send", "args": {"to": "ops@example.com", "body": LONG}, "id": "mail-1"}
    return one_turn_graph([safe], [call], saver)


@pytest.mark.parametrize(
    "change",
    [
        {"body": LONG[:-5] + "EVIL!"},  # at the end of a long value
        {"to": "attacker@example.net"},
    ],
    ids=["end-of-a-long-value", "another-field"],
)
def test_args_changed_in_the_checkpoint_after_approval_do_not_run(
    env: Env, change: dict[str, Any]
) -> None:
    effects: list[str] = []
    saver = InMemorySaver()
    graph = _graph(env, effects, saver)
    config = {"configurable": {"thread_id": "t11"}}
    graph.invoke({"messages": []}, config)
    (request,) = env.requests()
    assert LONG in (request.request_text or "")
    env.hitl.reviewer.respond(request.id, "approve")
    _tamper(saver, "t11", change)
    state = settle(env, graph, config, lambda r: "approve")
    (message,) = state.values["messages"][1:]
    assert effects == []
    assert message.status == "error"
    assert message.content.startswith("Not run: the arguments of this call are not the ones")
    assert len(env.requests()) == 1


def test_untampered_long_args_run_once_approved(env: Env) -> None:
    effects: list[str] = []
    saver = InMemorySaver()
    graph = _graph(env, effects, saver)
    config = {"configurable": {"thread_id": "t11-ok"}}
    graph.invoke({"messages": []}, config)
    state = settle(env, graph, config, lambda r: "approve")
    assert state.values["messages"][-1].content == "sent"
    assert effects == ["ops@example.com: " + "x" * 10]


def test_the_bound_hash_is_kept_apart_from_the_spec_hash(env: Env) -> None:
    bound = args_hash("send", {"to": "a"})
    spec = ReviewSpec.build("Send?", context={ARGS_HASH_KEY: bound, "ticket": 7})
    plain = ReviewSpec.build("Send?", context={"ticket": 7})
    assert spec.args_hash == bound
    assert spec.context == {"ticket": 7}  # never sent to HITL.sh, never shown
    assert spec.spec_hash() == plain.spec_hash()
    assert ARGS_HASH_KEY not in str(spec.create_kwargs("k", None))


def test_a_row_bound_to_other_args_does_not_run(env: Env) -> None:
    """The check right before running: the first review's row must hold this call's hash."""
    import json
    import sqlite3

    from hitl_agent.ledger.sqlite import _TABLE

    effects: list[str] = []
    saver = InMemorySaver()
    graph = _graph(env, effects, saver)
    config = {"configurable": {"thread_id": "t11-row"}}
    graph.invoke({"messages": []}, config)
    (request,) = env.requests()
    row = env.ledger.get_by_request_id(request.id)
    assert row is not None
    assert row.payload["args_hash"] == args_hash("send", {"to": "ops@example.com", "body": LONG})
    payload = {**row.payload, "args_hash": args_hash("send", {"to": "someone@else", "body": ""})}
    with sqlite3.connect(env.tmp_path / "ledger.db") as db:
        db.execute(f"UPDATE {_TABLE} SET payload = ? WHERE key = ?", (json.dumps(payload), row.key))
    state = settle(env, graph, config, lambda r: "approve")
    assert effects == []
    assert state.values["messages"][-1].content.startswith("Not run: the arguments of this call")
