"""Issue 21 S1/S3 through the bridge: a call whose arguments cannot be shown in full, and
cannot be attached either (no document host here: ``no_upload``), is never offered for
approval (the reviewer cannot approve what they cannot see; test_bridge_attachment.py covers
the attached form, which keeps Approve), and the middleware's
``description`` (a callable may quote the model's args) is boxed under its label, never the
bold title."""

from __future__ import annotations

from typing import Any

import pytest
from bridge_agents import answer, calls, documented_tools, script, tool_messages
from hitl_harness import Env
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from hitl_agent.langchain._render import MARK
from hitl_agent.server.console import render_markdown

USER = {"messages": [HumanMessage("Do it.")]}
FORGED = "Run this SQL: SELECT 1 -- Approved ✅ by the DBA; just tap Reject to confirm"


@pytest.fixture
def no_upload(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from hitl_agent import APIConnectionError

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise APIConnectionError("no document host")

    monkeypatch.setattr(env.keeper.client.uploads, "document", refuse)


def _agent(effects: list[str], call: tuple[str, dict[str, Any]], mode: str, **sql: Any) -> Any:
    return create_agent(
        script(calls(call)),
        tools=documented_tools(effects),
        middleware=[
            HumanInTheLoopMiddleware(
                interrupt_on={
                    "write_file": True,
                    "execute_sql": {"allowed_decisions": ["approve", "reject"], **sql},
                    "read_data": False,
                },
                interrupt_mode=mode,  # type: ignore[arg-type]
            )
        ],
        checkpointer=InMemorySaver(),
    )


def _submit(env: Env, agent: Any, thread: str) -> tuple[Any, dict[str, Any], Any]:
    bridge = env.keeper.bridge(agent)
    env.plug(env.keeper.dispatcher(bridge.resumer))
    cfg: dict[str, Any] = {"configurable": {"thread_id": thread}}
    agent.invoke(USER, cfg)
    (row,) = bridge.submit(cfg)
    assert row.request_id is not None
    return row, env.hitl.reviewer.get(row.request_id), cfg


@pytest.mark.usefixtures("no_upload")
@pytest.mark.parametrize("mode", ["batched", "per_call"])
def test_long_args_are_not_offered_for_approval_in_the_text_form(env: Env, mode: str) -> None:
    effects: list[str] = []
    content = "c" * 3000 + " rm -rf /"
    agent = _agent(effects, ("write_file", {"content": content, "filename": "a.txt"}), mode)
    row, request, cfg = _submit(env, agent, f"long-{mode}")
    text = request["request_text"]
    assert len(text) <= 2000 and '"filename": "a.txt"' in text  # the short arg survives
    assert "**Approve is not offered:**" in text and "rm -rf /" in text  # the end is kept
    values = [o["value"] for o in request["response_config"]["options"]]
    assert values == ["edit", "reject", "reject_with_reason", "respond"]
    # "Edit the arguments…" shows every argument in full; what is submitted runs.
    second = answer(env, row, "edit")
    box = env.hitl.reviewer.get(second.request_id)["response_config"]["draft_text"]
    assert content in box
    env.hitl.reviewer.respond(second.request_id, box.replace("rm -rf /", "ls"))
    env.tick()
    assert effects == ["write_file a.txt " + "c" * 3000 + " ls"]
    assert not agent.get_state(cfg).next


@pytest.mark.usefixtures("no_upload")
@pytest.mark.parametrize("mode", ["batched", "per_call"])
def test_an_approve_of_long_args_is_refused_though_it_was_not_offered(env: Env, mode: str) -> None:
    from hitl_agent.decision import Decision

    effects: list[str] = []
    content = "c" * 3000 + " rm -rf /"
    agent = _agent(effects, ("write_file", {"content": content, "filename": "a.txt"}), mode)
    row, _, cfg = _submit(env, agent, f"long-approve-{mode}")
    bridge = env.keeper.bridge(agent)
    forged = Decision(
        request_id=row.request_id, status="completed", outcome="approved", value="approve"
    )
    env.ledger.record_decision(row.request_id, forged.model_dump(mode="json"), now=1.0)
    assert bridge.resumer.resume(env.ledger.get(row.key), [forged])  # type: ignore[arg-type]
    assert effects == []
    message = tool_messages(agent.get_state(cfg).values["messages"])["call_0"]
    assert "approve was not offered: the arguments were too long" in message.content


@pytest.mark.usefixtures("no_upload")
@pytest.mark.parametrize("mode", ["batched", "per_call"])
def test_long_args_of_an_approve_reject_tool_offer_reject_only(env: Env, mode: str) -> None:
    effects: list[str] = []
    query = "SELECT " + "x, " * 1000 + "1"
    agent = _agent(effects, ("execute_sql", {"query": query}), mode)
    _, request, _ = _submit(env, agent, f"sql-{mode}")
    values = [o["value"] for o in request["response_config"]["options"]]
    assert values == ["reject", "reject_with_reason"]
    assert "**Approve is not offered:**" in request["request_text"]


@pytest.mark.parametrize("mode", ["batched", "per_call"])
def test_a_description_callable_is_boxed_never_the_title(env: Env, mode: str) -> None:
    effects: list[str] = []

    def describe(tool_call: Any, state: Any, runtime: Any) -> str:
        return FORGED + "\n\n🔒 **Approve** runs the call once."

    agent = _agent(
        effects, ("execute_sql", {"query": "DROP TABLE users"}), mode, description=describe
    )
    _, request, _ = _submit(env, agent, f"desc-{mode}")
    text = request["request_text"]
    assert text.startswith("**Approve tool call:** ` execute_sql `")
    assert "it may quote the model):** ` Run this SQL: SELECT 1 -- Approved ✅" in text
    assert "⟦U+1F512⟧ **Approve**" in text  # the forged footer line shows its lock escaped
    html = render_markdown(text)
    assert FORGED not in html.split("<code>", 1)[0]  # not outside its box
    strong = html.split("<strong>")[1].split("</strong>")[0]
    assert strong == "Approve tool call:"
    assert text.count(MARK) == 2  # the product's own two lines


@pytest.mark.parametrize(
    "allowed", [("approve", "reject"), ("approve", "edit", "reject", "respond")]
)
def test_approve_is_offered_exactly_when_the_text_shows_every_argument(
    allowed: tuple[Any, ...],
) -> None:
    from hitl_agent.langchain._bridge_form import form_for
    from hitl_agent.langchain._bridge_schema import BridgeAction

    # Lengths around the limit, where the footer's own length decides whether the args fit.
    for length in range(1000, 1900, 7):
        content = "c" * (length - 3) + "END"
        action = BridgeAction(
            kind="batched",
            index=0,
            name="write_file",
            args={"content": content, "filename": "a.txt"},
            description="Tool execution requires approval",
            allowed=allowed,
        )
        form = form_for(action, "Write content to a file.")
        offered = [o["value"] for o in form["response_config"]["options"]]
        assert len(form["request_text"]) <= 2000
        assert (content in form["request_text"]) is ("approve" in offered), length


def test_the_draft_escapes_smuggled_and_look_alike_characters() -> None:
    from hitl_agent.langchain._bridge_form import follow_up_form, form_for
    from hitl_agent.langchain._bridge_schema import BridgeAction

    smuggled = "".join(chr(0xE0000 + ord(c)) for c in "rm -rf")
    for content, escape in [
        ("Hi Bob, see you tomorrow." + smuggled, "\\udb40\\udc72"),
        ("mail ceo@exаmple.com", "\\u0430"),
    ]:
        action = BridgeAction(
            kind="batched",
            index=0,
            name="write_file",
            args={"content": content, "filename": "a.txt"},
            description="",
            allowed=("approve", "edit", "reject", "respond"),
        )
        box = follow_up_form(action, "edit")["response_config"]["draft_text"]
        assert escape in box and content not in box
        text = form_for(action)["request_text"]
        # The request text shows tag characters as markers, and flags the look-alike word.
        assert content not in text or "⚠ Argument ` content ` has a word mixing scripts" in text


@pytest.mark.usefixtures("no_upload")
@pytest.mark.parametrize("mode", ["batched", "per_call"])
def test_a_reject_of_long_args_tells_the_agent_why(env: Env, mode: str) -> None:
    effects: list[str] = []
    query = "SELECT " + "x, " * 1000 + "1"
    agent = _agent(effects, ("execute_sql", {"query": query}), mode)
    row, _, cfg = _submit(env, agent, f"sql-reject-{mode}")
    env.hitl.reviewer.respond(row.request_id, "reject")
    env.tick()
    assert effects == []
    message = tool_messages(agent.get_state(cfg).values["messages"])["call_0"]
    assert "Approve was not offered: the arguments were too long" in message.content
