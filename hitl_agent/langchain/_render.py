"""What a reviewer reads: a trusted header, then the agent's words shown as data, never as markup.

The request text of a tool review mixes two sources. The header (which tool, what it does, who
asks, which call of the turn) and the footer (what each choice does) are written here; the
arguments come from a model that may have been talked into anything ("Lies-in-the-Loop"). So:

* the arguments are pretty-printed JSON inside a fenced code block whose fence is longer than
  any run of backticks in it: nothing inside can close the fence, so a fake ``# APPROVED``
  heading, raw HTML, a link or an image stays literal text;
* every other untrusted string (a description, a question) is escaped: each ASCII punctuation
  character that markdown could read is backslash-escaped, so it renders as itself;
* bidi overrides and isolates, zero-width and other invisible characters, and C0/C1 controls are
  replaced by visible ``⟦U+202E⟧`` markers, so "refund ‮001$" cannot read as something else;
* a tool name that is not plain ASCII gets a warning listing its non-ASCII characters by name
  (a Cyrillic ``е`` in ``rеfund`` is not an ``e``);
* long arguments are cut at a line boundary with a note saying how much was cut and the
  SHA-256 of the full arguments, so the text always fits HITL.sh's 2000-character limit and the
  footer (the trusted part) is never pushed out;
* the gate's correlation key is never part of the text.

Framework-free (no LangChain import) so the tool wrappers and the middleware bridge share it.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._text import reveal_invisible

__all__ = [
    "MAX_REQUEST_TEXT",
    "ToolCallView",
    "code_span",
    "escape_markdown",
    "fenced",
    "render_question",
    "render_tool_call",
    "reveal_invisible",
]

MAX_REQUEST_TEXT = 2000
"""HITL.sh's limit on ``request_text`` (characters)."""

_DESCRIPTION_CHARS = 300
_MIN_ARGS_CHARS = 200
_ID_CHARS = 100

# Every ASCII punctuation character may be backslash-escaped in CommonMark; escaping them all
# leaves no emphasis, link, image, heading, list, table, HTML or entity to parse.
_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")
_BACKTICKS = re.compile(r"`+")


def escape_markdown(text: str, *, one_line: bool = False) -> str:
    """``text`` as literal markdown: renders as exactly these characters (invisibles revealed).

    Args:
        text: untrusted text.
        one_line: fold line breaks into spaces (for header fields).
    """
    text = reveal_invisible(text)
    if one_line:
        text = " ".join(text.split())
    escaped = _PUNCTUATION.sub(r"\\\1", text)
    if one_line:
        return escaped
    # A hard line break per line; four leading spaces would start a code block (harmless,
    # but it changes what the reviewer sees), so leading whitespace is dropped.
    lines = [line.strip() for line in escaped.split("\n")]
    return "\\\n".join(lines)


def code_span(text: str) -> str:
    """``text`` as an inline code span that no backtick in it can close."""
    text = reveal_invisible(" ".join(text.split()))
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * (longest + 1)
    return f"{fence} {text} {fence}"


def fenced(body: str, info: str = "") -> str:
    """``body`` in a fenced code block whose fence no line of ``body`` can close."""
    body = reveal_invisible(body)
    longest = max((len(run) for run in _BACKTICKS.findall(body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{body}\n{fence}"


def _homoglyph_note(name: str) -> str:
    odd = [ch for ch in dict.fromkeys(name) if not (ch.isascii() and (ch.isalnum() or ch in "_-."))]
    if not odd:
        return ""
    names = ", ".join(f"U+{ord(ch):04X} {unicodedata.name(ch, 'UNNAMED')}" for ch in odd[:5])
    more = f" and {len(odd) - 5} more" if len(odd) > 5 else ""
    return f"⚠ The tool name has characters other than ASCII letters and digits: {names}{more}."


def _args_json(args: Mapping[str, Any]) -> str:
    return json.dumps(args, indent=2, ensure_ascii=False, sort_keys=True, default=repr)


def _cut(body: str, budget: int) -> tuple[str, int]:
    """The longest prefix of ``body`` ending at a line break that fits ``budget``."""
    if len(body) <= budget:
        return body, 0
    head = body[:budget]
    newline = head.rfind("\n")
    if newline > budget // 2:
        head = head[:newline]
    return head, len(body) - len(head)


@dataclass(frozen=True)
class ToolCallView:
    """What the header says about one tool call.

    Attributes:
        tool: the tool's name.
        args: the arguments the model sent (injected ones left out).
        description: what the tool does (the tool's own description, or the gate's).
        asked_by: who asks, e.g. "an AI agent (thread support-42)".
        tool_call_id: the model's id for this call.
        call_index, call_count: this call's position (1-based) among the calls of one model
            turn, when known: two identical calls must not look like one.
    """

    tool: str
    args: Mapping[str, Any]
    description: str | None = None
    asked_by: str = "an AI agent"
    tool_call_id: str | None = None
    call_index: int | None = None
    call_count: int | None = None


def _header(view: ToolCallView, title: str) -> list[str]:
    lines = [f"**{title}:** {code_span(view.tool)}"]
    note = _homoglyph_note(view.tool)
    if note:
        lines.append(note)
    if view.description:
        text = " ".join(view.description.split())
        if len(text) > _DESCRIPTION_CHARS:
            text = text[: _DESCRIPTION_CHARS - 1] + "…"
        lines.append(f"**What it does:** {escape_markdown(text, one_line=True)}")
    lines.append(f"**Asked by:** {escape_markdown(view.asked_by, one_line=True)}")
    call: list[str] = []
    if view.call_index is not None:
        of = f" of {view.call_count}" if view.call_count else ""
        call.append(f"call {view.call_index}{of} in this turn")
    if view.tool_call_id:
        call.append(f"call id {code_span(view.tool_call_id[:_ID_CHARS])}")
    if call:
        lines.append("**Which call:** " + ", ".join(call))
    # Two trailing spaces would be invisible; a backslash is CommonMark's visible hard break.
    return [line + "\\" for line in lines[:-1]] + [lines[-1]]


def render_tool_call(
    view: ToolCallView,
    *,
    footer: Sequence[str] = (),
    title: str = "Approve tool call",
    max_chars: int = MAX_REQUEST_TEXT,
) -> str:
    """The request text for a review of one tool call (see the module docstring).

    Args:
        view: the call.
        footer: trusted lines after the arguments (what each choice does).
        title: the header's first words.
        max_chars: the whole text's limit; the arguments are cut to fit.
    """
    header = "\n".join(_header(view, title))
    tail = "\n\n".join(footer)
    body = _args_json(view.args)
    label = "**Arguments** (as the agent sent them; shown as data):"
    frame = len(header) + len(tail) + len(label) + 16  # blank lines, fences, info string
    budget = max(_MIN_ARGS_CHARS, max_chars - frame - 160)  # 160: the truncation note
    shown, cut = _cut(reveal_invisible(body), budget)
    parts = [header, label, fenced(shown, "json")]
    if cut:
        digest = hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()
        parts.append(
            f"_The arguments were cut for display: {cut} more characters not shown "
            f"(SHA-256 of the full arguments: {digest[:16]}…)._"
        )
    if tail:
        parts.append(tail)
    text = "\n\n".join(parts)
    return text[:max_chars]


def _escaped_within(text: str, budget: int) -> tuple[str, int]:
    """``escape_markdown(text)`` cut (before escaping, so no escape is split) to ``budget``."""
    keep = len(text)
    escaped = escape_markdown(text)
    while len(escaped) > budget and keep > 0:
        keep = max(0, min(keep - 1, keep * budget // len(escaped)))
        escaped = escape_markdown(text[:keep])
    return escaped, len(text) - keep


def render_question(
    question: str,
    *,
    asked_by: str = "an AI agent",
    footer: Sequence[str] = (),
    max_chars: int = MAX_REQUEST_TEXT,
) -> str:
    """The request text for a question an agent asks a human (the question is escaped)."""
    head = f"**Question from {escape_markdown(asked_by, one_line=True)}:**"
    tail = "\n\n".join(footer)
    budget = max(_MIN_ARGS_CHARS, max_chars - len(head) - len(tail) - 120)
    body, cut = _escaped_within(question.strip(), budget)
    parts = [head, body]
    if cut:
        parts.append(f"_The question was cut for display: {cut} more characters not shown._")
    if tail:
        parts.append(tail)
    return "\n\n".join(parts)[:max_chars]
