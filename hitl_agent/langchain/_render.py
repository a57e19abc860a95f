"""What a reviewer reads: a trusted header, then the agent's words shown as data, never as markup.

The request text of a tool review mixes two sources. The header (which tool, who asks, which
call of the turn) and the footer (what each choice does) are written here; everything else
comes from a model that may have been talked into anything ("Lies-in-the-Loop"). So:

* the product's own words have a place and a style agent text cannot take: the header's
  **bold labels** come first, and every footer line starts with the marker 🔒 (:data:`MARK`).
  Agent text is escaped (no bold), boxed in a code span or block, or quoted, and always under
  a label saying whose words they are; a 🔒 (or a look-alike lock) inside agent text is shown
  as ``⟦U+1F512⟧``, so no question, description or argument can forge a footer line;
* the arguments are JSON inside a fenced code block whose fence is longer than any run of
  backticks in it: nothing inside can close the fence, so a fake ``# APPROVED`` heading, raw
  HTML, a link or an image stays literal text;
* every other untrusted string is escaped: each ASCII punctuation character that markdown
  could read is backslash-escaped, so it renders as itself;
* invisible and reordering characters (see :mod:`hitl_agent._text`) are replaced by visible
  ``⟦U+202E⟧`` markers, so "refund ‮001$" cannot read as something else;
* a tool name that is not plain ASCII, and an argument value with a word mixing scripts
  (``ceo@exаmple.com`` with a Cyrillic ``а``), get a warning naming the odd characters;
* every argument name is always shown. When the arguments do not fit HITL.sh's
  2000-character ``request_text``, each long value is cut on its own (its start and end kept,
  with its length and a short SHA-256), objects and arrays that are cut are summarised
  (keys or items, nesting depth), and :attr:`Rendered.complete` is False: the caller must then
  not offer Approve (the reviewer did not see everything). The header and the footer are
  never cut;
* the gate's correlation key is never part of the text.

Framework-free (no LangChain import) so the tool wrappers and the middleware bridge share it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._text import (
    MAX_REQUEST_TEXT,
    PRODUCT_MARK,
    confusable_words,
    describe_chars,
    reveal_invisible,
)

__all__ = [
    "MARK",
    "MAX_REQUEST_TEXT",
    "Rendered",
    "ToolCallView",
    "code_span",
    "escape_markdown",
    "fenced",
    "neutralise",
    "render_question",
    "render_tool_call",
    "render_tool_call_checked",
    "reveal_invisible",
]

MARK = PRODUCT_MARK
"""Starts every footer line the product writes; never reproduced by agent text."""

_DESCRIPTION_CHARS = 300
_ASKED_BY_CHARS = 200
_TOOL_CHARS = 120
_NAME_CHARS = 80
_MIN_ARGS_CHARS = 200
_MIN_VALUE_CHARS = 48
_ID_CHARS = 100

# Every ASCII punctuation character may be backslash-escaped in CommonMark; escaping them all
# leaves no emphasis, link, image, heading, list, table, HTML or entity to parse.
_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")
_BACKTICKS = re.compile(r"`+")
# The footer's marker and its look-alikes, and the brackets of the cut notes inside the
# arguments block: agent text showing them could pass for the product's words.
_RESERVED = re.compile("[\U0001f512\U0001f510\U0001f50f\U0001f513\u27ea\u27eb]")


def neutralise(text: str) -> str:
    """``text`` with the product's markers (🔒 and look-alikes, ⟪ ⟫) shown as ``⟦U+XXXX⟧``."""
    return _RESERVED.sub(lambda m: f"⟦U+{ord(m.group()):04X}⟧", text)


def _untrusted(text: str) -> str:
    return neutralise(reveal_invisible(text))


def escape_markdown(text: str, *, one_line: bool = False) -> str:
    """``text`` as literal markdown: renders as exactly these characters (invisibles revealed).

    Args:
        text: untrusted text.
        one_line: fold line breaks into spaces (for header fields).
    """
    text = _untrusted(text)
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
    text = _untrusted(" ".join(text.split()))
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * (longest + 1)
    return f"{fence} {text} {fence}"


def _fence(body: str, info: str = "") -> str:
    longest = max((len(run) for run in _BACKTICKS.findall(body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{body}\n{fence}"


def fenced(body: str, info: str = "") -> str:
    """``body`` in a fenced code block whose fence no line of ``body`` can close."""
    return _fence(_untrusted(body), info)


def _middle_cut(text: str, room: int) -> str:
    """``text`` kept to ``room`` characters: its start and end around a ``…``."""
    if len(text) <= room:
        return text
    tail = max(1, (room - 1) // 3)
    return text[: max(1, room - 1 - tail)] + "…" + text[-tail:]


def _homoglyph_note(name: str) -> str:
    odd = [ch for ch in dict.fromkeys(name) if not (ch.isascii() and (ch.isalnum() or ch in "_-."))]
    if not odd:
        return ""
    return (
        "⚠ The tool name has characters other than ASCII letters and digits: "
        f"{describe_chars(odd)}."
    )


def _strings(value: Any) -> list[str]:
    """Every string inside ``value`` (keys too), iteratively (values may nest deep)."""
    found: list[str] = []
    stack = [value]
    while stack and len(found) < 1000:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, Mapping):
            found.extend(str(k) for k in item)
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return found


def _script_notes(args: Mapping[str, Any]) -> list[str]:
    """One warning per argument whose value has a word mixing scripts (UTS #39)."""
    notes: list[str] = []
    for name in sorted(args, key=str):
        words = [w for text in _strings(args[name]) for w in confusable_words(text, 1)]
        if words:
            word, odd = words[0]
            notes.append(
                f"{MARK} ⚠ Argument {code_span(_middle_cut(str(name), _NAME_CHARS))} has a "
                f"word mixing scripts or passing for Latin ({code_span(_middle_cut(word, 40))}): "
                f"{describe_chars(odd, 3)}."
            )
    return notes[:4]


def _depth(value: Any) -> int:
    depth, level = 0, [value]
    while level and depth < 10_000:
        nested = [
            child
            for item in level
            if isinstance(item, (Mapping, list, tuple))
            for child in (item.values() if isinstance(item, Mapping) else item)
        ]
        if not any(isinstance(item, (Mapping, list, tuple)) for item in level):
            break
        depth += 1
        level = nested
    return depth


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=repr)


def _digest(value: Any) -> str:
    raw = value if isinstance(value, str) else _compact(value)
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass(frozen=True)
class _Entry:
    """One argument in the block: its name (JSON) and value (JSON), both made safe."""

    name: str
    value: str
    raw: Any

    def line(self, room: int | None) -> tuple[str, bool]:
        """``  "name": value`` with the value cut to ``room`` (None: whole); cut?"""
        if room is None or len(self.value) <= room:
            return f"  {self.name}: {self.value}", False
        raw = self.raw
        if isinstance(raw, str):
            what = f"{len(raw):,} characters"
        elif isinstance(raw, Mapping):
            what = f"object of {len(raw):,} keys, depth {_depth(raw)}, {len(self.value):,} chars"
        elif isinstance(raw, (list, tuple)):
            what = f"array of {len(raw):,} items, depth {_depth(raw)}, {len(self.value):,} chars"
        else:
            what = f"{len(self.value):,} characters"
        note = f" ⟪cut: {what}, sha256 {_digest(raw)}⟫ "
        keep = max(16, room - len(note))
        tail = keep // 3
        head = self.value[: keep - tail]
        return f"  {self.name}: {head}{note}{self.value[-tail:]}", True


def _entries(args: Mapping[str, Any]) -> list[_Entry]:
    entries = []
    for name in sorted(args, key=str):
        entries.append(_Entry(_short_name(str(name)), _untrusted(_compact(args[name])), args[name]))
    return entries


def _short_name(name: str) -> str:
    """An argument name, JSON-quoted and made safe; kept to about ``_NAME_CHARS`` with its
    start and end, its length and SHA-256 (agent text never holds ⟪, see :func:`neutralise`)."""
    shown = _untrusted(json.dumps(name, ensure_ascii=False))
    if len(shown) <= _NAME_CHARS:
        return shown
    note = f"⟪name cut: {len(name):,} characters, sha256 {_digest(name)}⟫"
    return f"{shown[:24]}{note}{shown[-12:]}"


def _fill(lengths: list[int], room: int) -> list[int | None]:
    """Share ``room`` among values: short ones whole, the long ones an equal part each."""
    rooms: list[int | None] = [None] * len(lengths)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    left, count = room, len(lengths)
    for i in order:
        share = left // count if count else 0
        if lengths[i] <= share:
            left -= lengths[i]
        else:
            rooms[i] = max(_MIN_VALUE_CHARS, share)
            left -= rooms[i] or 0
        count -= 1
    return rooms


def _args_block(args: Mapping[str, Any], budget: int) -> tuple[str, list[str]]:
    """The arguments as JSON within ``budget`` characters, and the names of those cut.

    Whole and pretty-printed when that fits; else one line per argument, each long value
    (or name) cut on its own, so every name shows (and none is pushed out by another).
    """
    pretty = _untrusted(
        json.dumps(args, indent=2, ensure_ascii=False, sort_keys=True, default=repr)
    )
    if len(pretty) <= budget:
        return pretty, []
    entries = _entries(args)
    # Named in the note by their start (a cut name's ⟪…⟫ stays in the block).
    cut: list[str] = [e.name.split("⟪")[0] + "…" for e in entries if "⟪name cut" in e.name]
    # Room for the values: the budget less the braces and each line's name and punctuation.
    overhead = 4 + sum(len(e.name) + 5 for e in entries)
    shown = entries
    if budget - overhead < _MIN_VALUE_CHARS * len(entries):
        # More names than the text can hold with some of their values: as many as fit.
        fit = max(1, (budget - 80) // (_NAME_CHARS // 2 + _MIN_VALUE_CHARS))
        shown = entries[:fit]
        cut += [e.name for e in entries[fit:]]
        overhead = 4 + sum(len(e.name) + 5 for e in shown) + 80
    rooms = _fill([len(e.value) for e in shown], max(0, budget - overhead))
    lines = []
    for entry, room in zip(shown, rooms, strict=True):
        line, was_cut = entry.line(room)
        lines.append(line)
        if was_cut:
            cut.append(entry.name.split("⟪")[0] + ("…" if "⟪" in entry.name else ""))
    body = ",\n".join(lines)
    if len(shown) < len(entries):
        body += f",\n  ⟪{len(entries) - len(shown):,} more arguments not shown⟫"
    return "{\n" + body + "\n}", cut


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
        notes: more untrusted one-line texts, each shown boxed under its (trusted) label,
            e.g. ``("Note from the app (the middleware's description)", text)``.
    """

    tool: str
    args: Mapping[str, Any]
    description: str | None = None
    asked_by: str = "an AI agent"
    tool_call_id: str | None = None
    call_index: int | None = None
    call_count: int | None = None
    notes: Sequence[tuple[str, str]] = field(default=())


@dataclass(frozen=True)
class Rendered:
    """A request text and whether it shows the whole call.

    Attributes:
        text: the request text (at most ``max_chars``).
        complete: every argument name and value, and the tool name, are shown in full
            (invisible characters revealed). When False, Approve must not be offered.
        cut: the (JSON-quoted) names of the arguments whose value or name was cut.
    """

    text: str
    complete: bool
    cut: tuple[str, ...] = ()


def _one_line(text: str, limit: int) -> str:
    return _middle_cut(" ".join(text.split()), limit)


def _header(view: ToolCallView, title: str) -> tuple[list[str], bool]:
    tool_cut = len(view.tool) > _TOOL_CHARS
    lines = [f"**{title}:** {code_span(_middle_cut(view.tool, _TOOL_CHARS))}"]
    note = _homoglyph_note(view.tool)
    if note:
        lines.append(note)
    for label, text in view.notes:
        if text.strip():
            lines.append(f"**{label}:** {code_span(_one_line(text, _DESCRIPTION_CHARS))}")
    if view.description:
        text = _one_line(view.description, _DESCRIPTION_CHARS)
        lines.append(f"**What it does** (the tool's description): {code_span(text)}")
    asked_by = _one_line(view.asked_by, _ASKED_BY_CHARS)
    lines.append(f"**Asked by:** {escape_markdown(asked_by, one_line=True)}")
    call: list[str] = []
    if view.call_index is not None:
        of = f" of {view.call_count}" if view.call_count else ""
        call.append(f"call {view.call_index}{of} in this turn")
    if view.tool_call_id:
        call.append(f"call id {code_span(_middle_cut(view.tool_call_id, _ID_CHARS))}")
    if call:
        lines.append("**Which call:** " + ", ".join(call))
    # Two trailing spaces would be invisible; a backslash is CommonMark's visible hard break.
    return [line + "\\" for line in lines[:-1]] + [lines[-1]], tool_cut


def footer_lines(footer: Sequence[str]) -> str:
    """The product's footer: one paragraph per line, each starting with :data:`MARK`."""
    return "\n\n".join(f"{MARK} {line}" for line in footer if line)


def render_tool_call_checked(
    view: ToolCallView,
    *,
    footer: Sequence[str] = (),
    title: str = "Approve tool call",
    max_chars: int = MAX_REQUEST_TEXT,
) -> Rendered:
    """The request text for a review of one tool call (see the module docstring), and
    whether it shows the whole call.

    Args:
        view: the call.
        footer: trusted lines after the arguments (what each choice does); each gets
            :data:`MARK`.
        title: the header's first words (trusted).
        max_chars: the whole text's limit; only argument values (and overlong names) are
            cut to fit.
    """
    lines, tool_cut = _header(view, title)
    header = "\n".join(lines)
    tail = footer_lines(footer)
    count = len(view.args)
    label = (
        f"**Arguments** (as the agent sent them; shown as data; {count} "
        f"{'argument' if count == 1 else 'arguments'}):"
    )
    warnings = "\\\n".join(_script_notes(view.args))
    frame = len(header) + len(tail) + len(label) + len(warnings) + 40
    budget = max_chars - frame
    for _ in range(5):
        block, cut = _args_block(view.args, max(_MIN_ARGS_CHARS, budget))
        parts = [header, label, _fence(block, "json")]
        if warnings:
            parts.append(warnings)
        if cut:
            names = ", ".join(cut[:6]) + (f" and {len(cut) - 6} more" if len(cut) > 6 else "")
            parts.append(
                f"{MARK} Cut for display (start and end kept; ⟪…⟫ gives the length and "
                f"SHA-256 of each): {code_span(names)}."
            )
        if tail:
            parts.append(tail)
        text = "\n\n".join(parts)
        if len(text) <= max_chars:
            break
        budget -= len(text) - max_chars + 8
    complete = not cut and not tool_cut
    return Rendered(text[:max_chars], complete, tuple(cut))


def render_tool_call(
    view: ToolCallView,
    *,
    footer: Sequence[str] = (),
    title: str = "Approve tool call",
    max_chars: int = MAX_REQUEST_TEXT,
) -> str:
    """The request text for a review of one tool call (:func:`render_tool_call_checked`'s)."""
    return render_tool_call_checked(view, footer=footer, title=title, max_chars=max_chars).text


def _escaped_within(text: str, budget: int) -> tuple[str, int]:
    """``escape_markdown(text)`` cut (before escaping, so no escape is split) to ``budget``."""
    keep = len(text)
    escaped = escape_markdown(text)
    while len(escaped) > budget and keep > 0:
        keep = max(0, min(keep - 1, keep * budget // len(escaped)))
        escaped = escape_markdown(text[:keep])
    return escaped, len(text) - keep


def _quoted(escaped: str) -> str:
    """Escaped text as a blockquote: every line starts with ``>``, so none leaves it."""
    return "\n".join(f"> {line}" for line in escaped.split("\n"))


def render_question(
    question: str,
    *,
    asked_by: str = "an AI agent",
    footer: Sequence[str] = (),
    max_chars: int = MAX_REQUEST_TEXT,
) -> str:
    """The request text for a question an agent asks a human: the question escaped and
    quoted under a label saying whose words they are, the product's lines marked."""
    who = escape_markdown(_one_line(asked_by, _ASKED_BY_CHARS), one_line=True)
    head = f"**Question from {who}** (the agent's own words, quoted):"
    tail = footer_lines(footer)
    budget = max_chars - len(head) - len(tail) - 100
    for _ in range(5):
        body, cut = _escaped_within(question.strip(), max(_MIN_ARGS_CHARS, budget))
        parts = [head, _quoted(body)]
        if cut:
            parts.append(
                f"{MARK} The question was cut for display: {cut} more characters not shown."
            )
        if tail:
            parts.append(tail)
        text = "\n\n".join(parts)
        if len(text) <= max_chars:
            break
        budget -= len(text) - max_chars + 8
    return text[:max_chars]
