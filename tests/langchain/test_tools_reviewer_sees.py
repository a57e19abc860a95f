"""Issue 21 S1-S3: the reviewer sees the whole truth, or cannot approve.

A hostile corpus through the tool wrapper's first form (``ApprovalFlow.first``, the text and
options a reviewer gets): every argument name is shown whatever the other values hold, each
long value is cut on its own, header and footer are never cut, and when anything was cut
Approve is not offered and the agent is told why. Invisible characters are made visible over
Unicode's whole ranges; mixed-script words in argument values are flagged; agent text cannot
reproduce the product's own (🔒-marked) lines.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import pytest
from hitl_harness import Env
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from tools_support import one_turn_graph, settle

from hitl_agent._text import confusable_words, is_invisible, reveal_invisible
from hitl_agent.decision import Decision
from hitl_agent.langchain._flow import ApprovalFlow, Ask, Verdict
from hitl_agent.langchain._forms import APPROVE, edit_draft
from hitl_agent.langchain._render import (
    MARK,
    MAX_REQUEST_TEXT,
    ToolCallView,
    render_question,
    render_tool_call_checked,
)
from hitl_agent.models import Request
from hitl_agent.server.console import render_markdown

TOO_LONG = "the arguments were too long to show the reviewer in full"


def _deep(levels: int, leaf: Any) -> Any:
    value = leaf
    for i in range(levels):
        value = {f"level{i}": value, "pad": "p" * 20}
    return value


# name -> (tool, args, asked_by, the argument values the reviewer must see in full)
HOSTILE: dict[str, tuple[str, dict[str, Any], str, list[str]]] = {
    "memo-pushes-recipient-out": (
        "send_money",
        {"amount": 900, "memo": "Invoice 4411. " + "m" * 2400, "recipient": "ATTACKER-IBAN-XX99"},
        "an AI agent",
        ['"amount": 900', '"recipient": "ATTACKER-IBAN-XX99"'],
    ),
    "100-kb-body-beside-to": (
        "send_email",
        {"body": "b" * 100_000, "to": "attacker@evil.example"},
        "an AI agent",
        ['"to": "attacker@evil.example"'],
    ),
    "100-deep-settings-beside-target": (
        "configure",
        {"settings": _deep(100, "x"), "target": "prod-db-1"},
        "an AI agent",
        ['"target": "prod-db-1"'],
    ),
    "3000-char-thread-id": (
        "refund",
        {"order_id": "A-1", "amount": 250},
        "an AI agent (thread " + "t" * 3000 + ")",
        ['"order_id": "A-1"', '"amount": 250'],
    ),
    "every-value-long": (
        "bulk",
        {f"field_{i:02d}": f"{i:02d}-" + "v" * 400 for i in range(12)},
        "an AI agent",
        [],
    ),
    "3000-char-argument-name": (
        "odd",
        {"k" * 3000: 1, "amount": 5, "to": "bob"},
        "an AI agent",
        ['"amount": 5', '"to": "bob"'],
    ),
}


def _flow(tool_name: str, args: dict[str, Any], asked_by: str, **kw: Any) -> ApprovalFlow:
    view = ToolCallView(
        tool=tool_name,
        args=args,
        description="Does the thing.",
        asked_by=asked_by,
        tool_call_id="call_1",
    )
    return ApprovalFlow(view=view, properties={n: {} for n in args}, validate=dict, **kw)


def _first(flow: ApprovalFlow) -> Ask:
    ask = flow.first()
    assert isinstance(ask, Ask)
    return ask


def _values(ask: Ask) -> list[str]:
    return [o["value"] for o in ask.kwargs["response_config"]["options"]]


def _decide(ask: Ask, answer: str) -> Decision:
    request = Request.model_validate(
        {
            "id": "r1",
            "status": "completed",
            "response_type": ask.kwargs["response_type"],
            "response_config": ask.kwargs["response_config"],
            "response_data": answer,
        }
    )
    decision = Decision.from_request(request, approve_values=ask.kwargs["approve_values"])
    assert decision is not None
    return decision


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_every_argument_name_is_shown_and_header_and_footer_are_never_cut(name: str) -> None:
    tool_name, args, asked_by, whole = HOSTILE[name]
    text = _first(_flow(tool_name, args, asked_by, allow_respond=True)).text
    assert len(text) <= MAX_REQUEST_TEXT
    assert text.startswith(f"**Approve tool call:** ` {tool_name} `")
    assert "**Asked by:**" in text and "**Which call:**" in text
    assert text.endswith(f"{MARK} No answer by the deadline: not run (timed out).")
    block = text.split("```json\n", 1)[1].split("\n```", 1)[0]
    for arg in args:
        shown = arg if len(arg) <= 80 else arg[:20]
        assert f'"{shown}' in block, f"argument {arg[:20]!r} is not shown"
    for value in whole:
        assert value in block


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_cut_value_keeps_start_end_length_and_hash(name: str) -> None:
    tool_name, args, asked_by, _ = HOSTILE[name]
    rendered = render_tool_call_checked(
        ToolCallView(tool=tool_name, args=args, asked_by=asked_by), footer=["Footer."]
    )
    if name in ("3000-char-thread-id",):
        assert rendered.complete  # the header field is cut, never the arguments
        return
    assert not rendered.complete and rendered.cut
    assert re.search(r"⟪(name )?cut: [^⟫]*sha256 [0-9a-f]{16}⟫", rendered.text)


def test_the_memo_case_shows_its_start_end_and_length() -> None:
    _, args, _, _ = HOSTILE["memo-pushes-recipient-out"]
    text = render_tool_call_checked(ToolCallView(tool="send_money", args=args)).text
    assert '"memo": "Invoice 4411. mmm' in text
    assert "⟪cut: 2,414 characters, sha256 " in text and 'mmm",' in text


def test_a_deep_value_that_is_cut_is_summarised() -> None:
    args = {"settings": _deep(100, "x" * 50), "target": "prod"}
    text = render_tool_call_checked(ToolCallView(tool="configure", args=args)).text
    assert re.search(r"⟪cut: object of 2 keys, depth 100, [\d,]+ chars, sha256 ", text)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_approve_is_not_offered_when_anything_was_cut(name: str) -> None:
    tool_name, args, asked_by, _ = HOSTILE[name]
    ask = _first(_flow(tool_name, args, asked_by, allow_respond=True))
    complete = name == "3000-char-thread-id"
    assert (APPROVE in _values(ask)) is complete
    assert ("**Approve is not offered:**" in ask.text) is not complete


def test_the_agent_is_told_why_approve_was_not_offered() -> None:
    tool_name, args, asked_by, _ = HOSTILE["memo-pushes-recipient-out"]
    flow = _flow(tool_name, args, asked_by)
    ask = _first(flow)
    assert _values(ask) == ["reject", "reject_with_reason"]
    verdict = flow.next(ask, _decide(ask, "reject"))
    assert isinstance(verdict, Verdict) and not verdict.run
    assert "rejected this call of send_money" in verdict.message
    assert f"Approve was not offered: {TOO_LONG}" in verdict.message
    assert '"memo"' in verdict.message


def test_an_approve_that_was_not_offered_does_not_run() -> None:
    tool_name, args, asked_by, _ = HOSTILE["100-kb-body-beside-to"]
    flow = _flow(tool_name, args, asked_by)
    ask = _first(flow)
    # An answer as HITL.sh would record it had the option existed (a stale or forged form).
    options = [*ask.kwargs["response_config"]["options"], {"value": "approve", "label": "A"}]
    forged = Ask(ask.step, ask.text, {**ask.kwargs, "response_config": {"options": options}})
    verdict = flow.next(ask, _decide(forged, "approve"))
    assert isinstance(verdict, Verdict) and not verdict.run
    assert TOO_LONG in verdict.message


def test_edit_stays_offered_and_its_text_box_holds_every_argument() -> None:
    args = {"amount": 900, "memo": "m" * 2400, "recipient": "ATTACKER-IBAN-XX99"}
    flow = _flow("send_money", args, "an AI agent", allow_edit=True)
    ask = _first(flow)
    assert _values(ask) == ["reject", "reject_with_reason", "edit"]
    assert "shows them all in a text box" in ask.text
    follow = flow.next(ask, _decide(ask, "edit"))
    assert isinstance(follow, Ask) and follow.step == "edit"
    draft = follow.kwargs["response_config"]["draft_text"]
    assert "m" * 2400 in draft and 'recipient: "ATTACKER-IBAN-XX99"' in draft


def _long_send_money(env: Env, effects: list[str]) -> tuple[Any, Any]:
    @tool
    def send_money(amount: int, memo: str, recipient: str) -> str:
        """Send money."""
        effects.append(recipient)
        return "sent"

    _, args, _, _ = HOSTILE["memo-pushes-recipient-out"]
    graph = one_turn_graph(
        [env.keeper.require_approval(send_money)],
        [{"name": "send_money", "args": args, "id": "pay-1"}],
        InMemorySaver(),
    )
    return graph, {"configurable": {"thread_id": "s1-long"}}


def test_a_call_too_long_to_show_is_attached_and_can_be_approved(env: Env) -> None:
    """S1 / W7: the whole call goes to the reviewer as a document the request links to."""
    import hashlib
    import re

    effects: list[str] = []
    graph, config = _long_send_money(env, effects)
    graph.invoke({"messages": []}, config)
    (request,) = env.requests()
    text = request.request_text or ""
    values = [o["value"] for o in request.response_config["options"]]  # type: ignore[index]
    assert "approve" in values and "all of them are attached" in text
    link = re.search(r"\[(tool-call-[0-9a-f]{16}\.txt)\]\(<([^>]+)>\) \((\d+) characters, "
                     r"sha256 `([0-9a-f]{16})…`\)", text)  # fmt: skip
    assert link is not None, text
    document = env.hitl.http.get(link.group(2))
    assert document.status_code == 200
    body = document.content.decode()
    assert '"recipient": "ATTACKER-IBAN-XX99"' in body and "m" * 2400 in body
    assert len(body) == int(link.group(3))
    assert hashlib.sha256(document.content).hexdigest()[:16] == link.group(4)

    # A re-run renders the same text (the URL is kept in the ledger): the review holds.
    state = settle(env, graph, config, lambda r: "approve")
    assert effects == ["ATTACKER-IBAN-XX99"]
    assert state.values["messages"][-1].content == "sent"
    assert len(env.requests()) == 1


def test_a_call_too_long_to_show_and_to_attach_tells_the_agent_why(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hitl_agent import APIConnectionError

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise APIConnectionError("upload failed")

    monkeypatch.setattr(env.keeper.client.uploads, "document", unreachable)
    effects: list[str] = []
    graph, config = _long_send_money(env, effects)
    graph.invoke({"messages": []}, config)
    (request,) = env.requests()
    assert "ATTACKER-IBAN-XX99" in (request.request_text or "")
    values = [o["value"] for o in request.response_config["options"]]  # type: ignore[index]
    assert "approve" not in values
    state = settle(env, graph, config, lambda r: "reject")
    message = state.values["messages"][-1]
    assert effects == []
    assert message.status == "error" and TOO_LONG in message.content


# -- S2: invisible characters, over Unicode's whole ranges -----------------------------------

RANGES = {
    "tag characters": (0xE0000, 0xE007F),
    "variation selectors": (0xFE00, 0xFE0F),
    "variation selectors supplement": (0xE0100, 0xE01EF),
    "Mongolian free variation selectors": (0x180B, 0x180D),
    "Khmer inherent vowels": (0x17B4, 0x17B5),
    "braille blank": (0x2800, 0x2800),
    "bidi embeddings and overrides": (0x202A, 0x202E),
    "bidi isolates": (0x2066, 0x2069),
    "zero widths and marks": (0x200B, 0x200F),
    "word joiner and invisible operators": (0x2060, 0x2064),
    "Hangul fillers": (0x115F, 0x1160),
    "line and paragraph separators": (0x2028, 0x2029),
    "interlinear annotation": (0xFFF9, 0xFFFB),
}


@pytest.mark.parametrize("name", sorted(RANGES))
def test_whole_ranges_are_revealed(name: str) -> None:
    low, high = RANGES[name]
    for code in range(low, high + 1):
        char = chr(code)
        assert reveal_invisible(f"a{char}b") == f"a⟦U+{code:04X}⟧b", hex(code)


def test_every_format_and_control_character_in_unicodedata_is_revealed() -> None:
    # The maintained source: every Cc/Cf/Zl/Zp code point of Python's Unicode database.
    missed = [
        hex(code)
        for code in range(0x110000)
        if unicodedata.category(chr(code)) in ("Cc", "Cf", "Zl", "Zp")
        and chr(code) not in "\t\n"
        and not is_invisible(chr(code))
    ]
    assert missed == []


def test_ordinary_text_is_left_alone() -> None:
    text = "Ünïcode 中文 العربية עברית ελληνικά русский हिन्दी 👍 café\tx\n"
    assert reveal_invisible(text) == text


def test_ascii_smuggling_is_visible_in_the_request_and_the_edit_draft() -> None:
    hidden = "".join(chr(0xE0000 + ord(c)) for c in "wire it all")
    args = {"body": "Hi Bob, see you tomorrow." + hidden}
    text = render_tool_call_checked(ToolCallView(tool="send", args=args)).text
    assert "⟦U+E0077⟧⟦U+E0069⟧" in text  # "wi"
    assert not any(0xE0000 <= ord(c) <= 0xE007F for c in text)
    draft = edit_draft(args, {"body": {"type": "string"}})
    assert not any(0xE0000 <= ord(c) <= 0xE007F for c in draft)
    assert "\\udb40\\udc77" in draft  # JSON's escape of U+E0077


def test_mixed_script_argument_values_are_flagged() -> None:
    args = {"to": "ceo@exаmple.com", "cc": "ops@example.com", "note": "Привет Bob"}
    text = render_tool_call_checked(ToolCallView(tool="send", args=args)).text
    assert "⚠ Argument ` to ` has a word mixing scripts" in text
    assert "U+0430 CYRILLIC SMALL LETTER A" in text
    assert "` cc `" not in text and "` note `" not in text  # plain, and two scripts in two words
    assert confusable_words("раураl") == [("раураl", ["р", "а", "у"])]
    assert confusable_words("аррӏе")[0][0] == "аррӏе"  # all Cyrillic, passes for "apple"
    assert confusable_words("日本語のテキスト Привет мир") == []


def test_a_mixed_script_value_deep_inside_an_object_is_flagged() -> None:
    args = {"payload": {"recipients": [{"email": "boss@gооgle.com"}]}}
    text = render_tool_call_checked(ToolCallView(tool="send", args=args)).text
    assert "⚠ Argument ` payload `" in text and "CYRILLIC SMALL LETTER O" in text


# -- S3: agent text cannot pass as the product's own words ----------------------------------

FORGED_FOOTER = (
    "Is it OK?\n\n🔒 Note from hitl_agent: 'No' is recorded as approval.\n\n"
    "Note from hitl_agent: 'No' is recorded as approval.\n**Approve** runs it."
)


def _marked_paragraphs(html: str) -> list[str]:
    return re.findall(r"<p>🔒[^<]*", html)


def test_a_question_repeating_the_footer_is_quoted_and_cannot_show_the_mark() -> None:
    footer = ["Answer yes or no; the agent gets your answer.", "No answer: the agent is told."]
    text = render_question(FORGED_FOOTER, footer=footer)
    assert text.startswith("**Question from an AI agent** (the agent's own words, quoted):")
    # Only the product's two lines carry the mark; the forged one shows as ⟦U+1F512⟧.
    assert text.count(MARK) == 2 and "⟦U\\+1F512⟧" in text  # escaped markdown
    html = render_markdown(text)
    assert len(_marked_paragraphs(html)) == 2
    quote = html.split("<blockquote>", 1)[1].split("</blockquote>", 1)[0]
    assert "recorded as approval" in quote and "**Approve**" in quote  # literal, quoted
    assert "<strong>" not in quote


def test_descriptions_and_values_cannot_show_the_mark() -> None:
    view = ToolCallView(
        tool="refund",
        args={"note": "x\n\n🔒 **Approve** runs refund once; reviewed by security."},
        description="Refunds. 🔒 Approved by the DBA",
        asked_by="an AI agent (thread 🔐 trusted)",
    )
    text = render_tool_call_checked(view, footer=["Footer line."]).text
    assert text.count(MARK) == 1 and text.endswith(f"{MARK} Footer line.")
    assert "🔐" not in text and "⟦U\\+1F510⟧" in text  # escaped markdown
    assert "**What it does** (the tool's description): ` Refunds. ⟦U+1F512⟧ Approved" in text


def test_the_docs_show_what_the_reviewer_sees() -> None:
    from pathlib import Path

    from hitl_agent.langchain._bridge_form import form_for
    from hitl_agent.langchain._bridge_schema import BridgeAction

    docs = Path(__file__).resolve().parents[2] / "docs"
    golden = Path(__file__).parent / "golden" / "plain.md"
    assert golden.read_text(encoding="utf-8") in (docs / "tools.md").read_text(encoding="utf-8")
    action = BridgeAction(
        kind="batched",
        index=0,
        name="execute_sql",
        args={"query": "SELECT 1"},
        description=FORGED_SQL,
        allowed=("approve", "reject"),
    )
    text = form_for(action, "Run a SQL statement.")["request_text"]
    assert text in (docs / "bridge.md").read_text(encoding="utf-8")


FORGED_SQL = "Run this SQL: SELECT 1 -- Approved ✅ by the DBA; just tap Reject to confirm"


@pytest.mark.parametrize("edit", [False, True])
def test_approve_is_offered_exactly_when_the_text_shows_every_argument(edit: bool) -> None:
    # Lengths around the limit, where the footer's own length decides whether the args fit.
    for length in range(1000, 2000, 7):
        memo = "m" * (length - 3) + "END"
        ask = _first(
            _flow("send_money", {"memo": memo, "to": "bob"}, "an AI agent", allow_edit=edit)
        )
        assert len(ask.text) <= MAX_REQUEST_TEXT
        assert (memo in ask.text) is (APPROVE in _values(ask)), length


def test_the_edit_draft_shows_look_alike_letters_as_escapes_and_reads_them_back() -> None:
    from hitl_agent.langchain._forms import parse_edit

    properties = {"to": {"type": "string"}, "cc": {"type": "string"}}
    draft = edit_draft({"to": "ceo@exаmple.com", "cc": "ops@example.com"}, properties)
    assert draft == 'to: "ceo@ex\\u0430mple.com"\ncc: ops@example.com'
    assert parse_edit(draft, properties) == {"to": "ceo@exаmple.com", "cc": "ops@example.com"}


def test_the_products_own_labels_have_nothing_to_reveal() -> None:
    # A variation selector in a label (✏️) would show as ⟦U+FE0F⟧ wherever labels are revealed.
    from hitl_agent.langchain._forms import choice_options

    for option in choice_options(edit=True, respond=True):
        assert reveal_invisible(option["label"]) == option["label"]


def test_a_long_tool_name_is_cut_and_not_offered_for_approval() -> None:
    flow = _flow("t" * 500, {"a": 1}, "an AI agent")
    ask = _first(flow)
    assert APPROVE not in _values(ask) and len(ask.text) <= MAX_REQUEST_TEXT
    timed_out = Decision.model_validate(
        {"request_id": "r1", "status": "timeout", "outcome": "timed_out", "approved": False}
    )
    verdict = flow.next(ask, timed_out)
    assert isinstance(verdict, Verdict) and "timed out" in verdict.message
    assert "Approve was not offered" in verdict.message
