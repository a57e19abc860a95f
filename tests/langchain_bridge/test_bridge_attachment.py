"""Issue 21 S1 through the bridge: a call too long to show in one request is attached whole
(the tool wrapper's document, uploaded once and kept in the ledger), so Approve stays offered;
with no upload (budget refused, the client raising) Approve is not offered and an approve
answer does not run the call. The reader re-derives the form from the row (never uploading),
so the form that was sent decides what an answer may do."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
from typing import Any

import pytest
from bridge_agents import calls, script, tool_messages
from hitl_harness import Env
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from hitl_agent import APIConnectionError
from hitl_agent.decision import Decision

USER = {"messages": [HumanMessage("Pay the invoice.")]}
MEMO = "m" * 4990 + " END-OF-MEMO"  # 5,002 characters: far past what one request shows
RECIPIENT = "ATTACKER-IBAN-XX99"
ARGS = {"memo": MEMO, "recipient": RECIPIENT}  # the short key comes after the long one
LINK = re.compile(
    r"\[(tool-call-[0-9a-f]{16}\.txt)\]\(<([^>]+)>\) \((\d+) characters, sha256 `([0-9a-f]{16})…`\)"
)


def _agent(effects: list[dict[str, Any]], mode: str) -> Any:
    @tool
    def send_money(memo: str, recipient: str) -> str:
        """Send money to a recipient."""
        effects.append({"memo": memo, "recipient": recipient})
        return "sent"

    return create_agent(
        script(calls(("send_money", ARGS))),
        tools=[send_money],
        middleware=[
            HumanInTheLoopMiddleware(
                interrupt_on={"send_money": {"allowed_decisions": ["approve", "reject"]}},
                interrupt_mode=mode,  # type: ignore[arg-type]
            )
        ],
        checkpointer=InMemorySaver(),
    )


def _count_uploads(env: Env, monkeypatch: pytest.MonkeyPatch, fail: bool = False) -> list[str]:
    """Count (or fail) the keeper's document uploads; returns the uploaded file names."""
    uploads = env.keeper.client.uploads
    real = uploads.document
    names: list[str] = []

    def document(*args: Any, **kwargs: Any) -> Any:
        names.append(kwargs.get("filename", ""))
        if fail:
            raise APIConnectionError("upload failed")
        return real(*args, **kwargs)

    monkeypatch.setattr(uploads, "document", document)
    return names


def _values(request: dict[str, Any]) -> list[str]:
    return [option["value"] for option in request["response_config"]["options"]]


def _forge(env: Env, row: Any, value: str) -> Decision:
    """A decided row answering ``value`` whether or not the form offered it."""
    forged = Decision(
        request_id=row.request_id, status="completed", outcome="approved", value=value
    )
    env.ledger.record_decision(row.request_id, forged.model_dump(mode="json"), now=1.0)
    return forged


@pytest.mark.parametrize("mode", ["batched", "per_call"])
def test_a_call_too_long_to_show_is_attached_and_approve_runs_it_once(
    env: Env, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    uploaded = _count_uploads(env, monkeypatch)
    effects: list[dict[str, Any]] = []
    agent = _agent(effects, mode)
    bridge = env.keeper.bridge(agent)
    env.plug(env.keeper.dispatcher(bridge.resumer))
    cfg: dict[str, Any] = {"configurable": {"thread_id": f"attach-{mode}"}}
    agent.invoke(USER, cfg)
    charged = env.keeper.budget.charged
    (row,) = bridge.submit(cfg)
    assert row.request_id is not None
    request = env.hitl.reviewer.get(row.request_id)
    text = request["request_text"]

    # The text cuts the memo but links the whole call; Approve stays offered.
    assert len(text) <= 2000 and MEMO not in text
    assert "all of them are attached" in text
    assert _values(request) == ["approve", "reject", "reject_with_reason"]
    link = LINK.search(text)
    assert link is not None, text
    name, url, size, digest = link.groups()

    # The document holds every argument, as the link says (size, sha256).
    document = env.hitl.http.get(url)
    assert document.status_code == 200
    body = document.content.decode()
    assert json.loads(body) == {"tool": "send_money", "args": ARGS}
    assert len(body) == int(size)
    assert hashlib.sha256(document.content).hexdigest()[:16] == digest
    assert uploaded == [name]
    assert env.keeper.budget.charged == charged + 1  # 1 API call for the upload

    # Sweeps, a second submit and another replica re-derive the same text: no new upload
    # and no new request.
    assert bridge.submit(cfg) == [env.ledger.get(row.key)]
    assert env.keeper.bridge(agent).submit(cfg)[0].request_id == row.request_id
    bridge.sweep()
    assert uploaded == [name] and len(env.requests()) == 1

    env.hitl.reviewer.respond(row.request_id, "approve")
    env.tick()
    assert effects == [ARGS]  # once, with exactly the reviewed args
    assert tool_messages(agent.get_state(cfg).values["messages"])["call_0"].content == "sent"
    assert not agent.get_state(cfg).next

    # The resume read the form without uploading; a later sweep does nothing either.
    bridge.sweep()
    env.tick()
    assert uploaded == [name] and effects == [ARGS] and len(env.requests()) == 1


@pytest.mark.parametrize("failure", ["client raises", "budget refused"])
@pytest.mark.parametrize("mode", ["batched", "per_call"])
def test_with_no_upload_approve_is_not_offered_and_an_approve_does_not_run(
    env: Env, monkeypatch: pytest.MonkeyPatch, mode: str, failure: str
) -> None:
    uploaded = _count_uploads(env, monkeypatch, fail=failure == "client raises")
    if failure == "budget refused":
        monkeypatch.setattr(env.keeper.budget, "try_spend", lambda *a, **k: False)
    effects: list[dict[str, Any]] = []
    agent = _agent(effects, mode)
    bridge = env.keeper.bridge(agent)
    cfg: dict[str, Any] = {"configurable": {"thread_id": f"no-attach-{mode}"}}
    agent.invoke(USER, cfg)
    (row,) = bridge.submit(cfg)
    request = env.hitl.reviewer.get(row.request_id)
    assert "**Approve is not offered:**" in request["request_text"]
    assert "attached" not in request["request_text"]
    assert _values(request) == ["reject", "reject_with_reason"]
    assert len(uploaded) == (0 if failure == "budget refused" else 1)  # refused, or tried

    forged = _forge(env, row, "approve")
    assert bridge.resumer.resume(env.ledger.get(row.key), [forged])  # type: ignore[arg-type]
    assert effects == []
    message = tool_messages(agent.get_state(cfg).values["messages"])["call_0"]
    assert "approve was not offered: the arguments were too long" in message.content


@pytest.mark.parametrize("mode", ["batched", "per_call"])
def test_a_row_sent_without_an_attachment_stays_without_one(
    env: Env, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """The same document hosted later (another thread's call, or the budget back) does not
    turn a request sent without Approve into one that had it: the row's spec decides."""
    monkeypatch.setattr(env.keeper.budget, "try_spend", lambda *a, **k: False)
    effects: list[dict[str, Any]] = []
    agent = _agent(effects, mode)
    bridge = env.keeper.bridge(agent)
    cfg: dict[str, Any] = {"configurable": {"thread_id": f"cut-{mode}"}}
    agent.invoke(USER, cfg)
    (row,) = bridge.submit(cfg)
    monkeypatch.undo()
    uploaded = _count_uploads(env, monkeypatch)

    # Another agent's identical call is attached (the document is shared by content).
    other_agent = _agent([], mode)
    other: dict[str, Any] = {"configurable": {"thread_id": f"cut-other-{mode}"}}
    other_agent.invoke(USER, other)
    (attached,) = env.keeper.bridge(other_agent).submit(other)
    assert len(uploaded) == 1
    assert "approve" in _values(env.hitl.reviewer.get(attached.request_id))

    # The first thread's sweep neither uploads nor changes its request.
    assert bridge.submit(cfg) == [env.ledger.get(row.key)]
    assert len(uploaded) == 1 and len(env.requests()) == 2
    forged = _forge(env, row, "approve")
    assert bridge.resumer.resume(env.ledger.get(row.key), [forged])  # type: ignore[arg-type]
    assert effects == []
    message = tool_messages(agent.get_state(cfg).values["messages"])["call_0"]
    assert "approve was not offered" in message.content


def test_asubmit_attaches_too(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    uploaded = _count_uploads(env, monkeypatch)
    effects: list[dict[str, Any]] = []
    agent = _agent(effects, "batched")
    bridge = env.keeper.bridge(agent)
    dispatcher = env.keeper.dispatcher(bridge.resumer)
    cfg: dict[str, Any] = {"configurable": {"thread_id": "attach-async"}}
    loop_reads: list[str] = []
    read = env.ledger.get_meta

    def watched(name: str) -> Any:
        if threading.current_thread() is threading.main_thread():
            loop_reads.append(name)  # asyncio.run runs the loop on this thread
        return read(name)

    env.ledger.get_meta = watched  # type: ignore[method-assign]

    async def main() -> None:
        await agent.ainvoke(USER, cfg)
        (row,) = await bridge.asubmit(cfg)
        await bridge.asubmit(cfg)
        request = await asyncio.to_thread(env.hitl.reviewer.get, row.request_id)
        assert "approve" in _values(request) and LINK.search(request["request_text"])
        await asyncio.to_thread(env.hitl.reviewer.respond, row.request_id, "approve")
        assert len(await dispatcher.apoll_once()) == 1

    asyncio.run(main())
    assert effects == [ARGS] and len(uploaded) == 1
    assert loop_reads == []  # the resume found the URL this process hosted
