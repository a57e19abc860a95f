"""An unchanged ``HumanInTheLoopMiddleware`` agent, answered on HITL.sh through the bridge.

The agent is plain LangChain: ``create_agent(model, tools, middleware=[HumanInTheLoopMiddleware(
interrupt_on=...)], checkpointer=...)``; nothing in it knows about HITL.sh. Two lines connect
it::

    bridge = keeper.bridge(agent)                   # its interrupts become HITL requests
    dispatcher = keeper.dispatcher(bridge.resumer)  # answers resume it, in LangChain's format

A scripted chat model stands in for the LLM. In one turn it calls ``execute_sql`` (approve or
reject only) and ``write_file`` (every decision allowed). The middleware interrupts once for
the turn (batched mode); ``bridge.submit(config)`` sends one HITL request per gated call.

It shows:

1. ``execute_sql``: a ``single_select`` (Approve / Reject / Reject and say why…); the reviewer
   taps *Approve*; the query runs;
2. ``write_file``: the same one-tap form with every decision its config allows; the reviewer
   taps *Edit the arguments…*, which opens a second request: an ``editable_text`` pre-filled
   with the call's arguments as JSON; the reviewer changes the file's content; the tool runs
   with the edited arguments (LangChain's ``{"type": "edit", "edited_action": ...}``);
3. the thread resumed once, when every final answer is in (3 requests: approve costs one,
   edit two).

Run it offline (an in-process local HITL server; the script plays the reviewer)::

    python examples/middleware_bridge.py

or against the real HITL.sh, answering on the phone app (it sweeps every 20 s)::

    HITL_LIVE=1 HITL_API_KEY=... HITL_LOOP_ID=... python examples/middleware_bridge.py

``HITL_LIVE=1`` is the switch: an exported ``HITL_API_KEY`` alone (as after
``hitl-agent serve``) still runs offline. ``HITL_BASE_URL`` sends the live run elsewhere,
e.g. to a ``hitl-agent serve`` whose console you answer in.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite import SqliteSaver

from hitl_agent import Gatekeeper
from hitl_agent.testing import hitl_or_local as connect  # HITL.sh or offline

EDITED_CONTENT = "Carts older than 30 days were emptied (approved by the on-call lead)."


class ScriptedModel(GenericFakeChatModel):
    """Stands in for an LLM: ``create_agent`` binds tools, which a script has no use for."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


def build_agent(checkpointer: Any, ran: list[str]) -> Any:
    """The app's agent, exactly as it would be without HITL.sh."""

    @tool
    def execute_sql(query: str) -> str:
        """Run a SQL statement."""
        ran.append(f"execute_sql: {query}")
        return "3 rows deleted"

    @tool
    def write_file(filename: str, content: str) -> str:
        """Write a text file."""
        ran.append(f"write_file: {filename}: {content}")
        return f"wrote {len(content)} characters to {filename}"

    calls = [
        {
            "name": "execute_sql",
            "args": {"query": "DELETE FROM carts WHERE age_days > 30"},
            "id": "call_sql",
        },
        {
            "name": "write_file",
            "args": {"filename": "notes.txt", "content": "deleted old carts"},
            "id": "call_file",
        },
    ]
    model = ScriptedModel(messages=iter([AIMessage("", tool_calls=calls), AIMessage("Done.")]))
    return create_agent(
        model,
        tools=[execute_sql, write_file],
        middleware=[
            HumanInTheLoopMiddleware(
                interrupt_on={
                    "execute_sql": {"allowed_decisions": ["approve", "reject"]},
                    "write_file": True,  # approve, edit, reject, respond
                }
            )
        ],
        checkpointer=checkpointer,
    )


def answer_for(request: dict[str, Any]) -> tuple[str, Any]:
    """Offline: (what the form is, what this script's reviewer answers)."""
    if request["response_type"] == "single_select":
        if "execute_sql" in (request.get("request_text") or ""):
            return "execute_sql: one tap", "approve"
        return "write_file: one tap", "edit"  # "Edit the arguments…" opens a second request
    # The edit's follow-up: the call's arguments as JSON, pre-filled.
    edited = {**json.loads(request["response_config"]["draft_text"]), "content": EDITED_CONTENT}
    return "write_file: the arguments", {"revised_text": json.dumps(edited, indent=2)}


@dataclass
class Result:
    forms: dict[str, str]  # tool -> the response type its request used
    ran: list[str]  # the tool calls that really ran, with their arguments
    tool_results: dict[str, str]  # tool call id -> the tool's result
    resumes: int  # decisions delivered by the dispatcher's sweeps
    final: str


def main() -> Result:
    ran: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="hitl-bridge-") as tmp,
        connect() as (client, loop_id, reviewer),
        Gatekeeper(client=client, loop_id=loop_id, ledger=f"sqlite:///{tmp}/ledger.db") as keeper,
        contextlib.closing(sqlite3.connect(f"{tmp}/checkpoints.db", check_same_thread=False)) as db,
    ):
        agent = build_agent(SqliteSaver(db), ran)
        bridge = keeper.bridge(agent)
        dispatcher = keeper.dispatcher(bridge.resumer)

        config: Any = {"configurable": {"thread_id": "cleanup-1"}}
        agent.invoke({"messages": [("user", "Clean up old carts and note it.")]}, config)
        rows = bridge.submit(config)  # one HITL request per gated call of the turn
        forms: dict[str, str] = {}
        for row in rows:
            request = client.requests.get(str(row.request_id))
            tool_name = (
                "execute_sql" if "execute_sql" in (request.request_text or "") else "write_file"
            )
            forms[tool_name] = str(request.response_type)
            print(f"{tool_name}: request {row.request_id} ({request.response_type})")
        print(f"interrupted, nothing ran yet: {ran}")

        resumes = 0
        while agent.get_state(config).next:
            if reviewer is not None:
                for item in reviewer.queue():
                    asked, value = answer_for(item)
                    reviewer.respond(item["id"], value)
                    shown = "edited content" if isinstance(value, dict) else value
                    print(f"reviewer: {asked} -> {shown!r}")
            else:
                print("  waiting: answer both requests in the HITL.sh app")
            delivered = dispatcher.poll_once()  # the turn resumes once all are decided
            resumes += len(delivered)
            if not delivered:
                # An "Edit…" tap opens its follow-up instead of resuming: answer it next.
                if reviewer is not None and not reviewer.queue():
                    raise RuntimeError("answered, yet nothing was resumed")
                time.sleep(20)

        messages = agent.get_state(config).values["messages"]
        results = {m.tool_call_id: str(m.content) for m in messages if isinstance(m, ToolMessage)}
    for line in ran:
        print(f"ran {line}")
    for call_id, content in results.items():
        print(f"{call_id}: {content}")
    print(f"decisions delivered: {resumes} (one resume of the turn)")
    final = str(messages[-1].content)
    print(f"agent: {final}")
    return Result(forms, ran, results, resumes, final)


if __name__ == "__main__":
    main()
