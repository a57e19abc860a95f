"""Request text as a terminal or a spreadsheet should show it: the markdown read, not printed.

The gate writes request text as markdown and escapes every punctuation character of what the
agent said (``customer\\'s card\\.``), so that the console shows the agent's words literally.
A terminal (``hitl-agent review``, ``requests list/get``) or a CSV export is no markdown
viewer: printed as it is, the escapes are noise. :func:`markdown_to_plain` parses the text
exactly as the console does (CommonMark, GFM tables and strikethrough, raw HTML as text) and
writes what the console would show as plain text: escapes resolved, emphasis markers dropped,
code blocks kept line for line, links as ``text ⟨url⟩``, images as ``[image: alt — url]``
(never fetched), list items and quotes with their markers. Invisible and direction-changing
characters are then made visible with :func:`hitl_agent._text.reveal_invisible`, so nothing
the agent wrote can act on a terminal or hide in a cell.

markdown-it-py ships with rich, which the CLI needs anyway; it is imported on first use, and
without it the backslash escapes alone are resolved.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._text import reveal_invisible

if TYPE_CHECKING:
    from markdown_it.token import Token

__all__ = ["markdown_to_plain"]

_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_HARD_BREAK = re.compile(r"\\\n")


@functools.cache
def _parser() -> Any:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    # Like the console (hitl_agent.server.console): every link is parsed and shown, whatever
    # its scheme, so the reader sees what the agent tried.
    md.validateLink = lambda url: True  # type: ignore[method-assign]
    return md


#: Longer text is not parsed (the parser's work stays bounded); it is shown unparsed.
MAX_PARSE_CHARS = 100_000


def _inline(children: Sequence[Token]) -> str:
    out: list[str] = []
    links: list[str] = []
    for token in children:
        kind = token.type
        if kind in ("text", "html_inline", "code_inline"):
            out.append(token.content)
        elif kind in ("softbreak", "hardbreak"):
            out.append("\n")
        elif kind == "link_open":
            links.append(str(token.attrGet("href") or ""))
        elif kind == "link_close":
            href = links.pop() if links else ""
            if token.markup != "autolink":
                out.append(f" ⟨{href}⟩")
        elif kind == "image":
            alt = _inline(token.children or [])
            out.append(f"[image: {alt} — {token.attrGet('src') or ''}]")
        # strong/em/s open and close markers carry no text
    return "".join(out)


def _blocks(tokens: Sequence[Token]) -> list[tuple[str, bool]]:
    """One string per block (paragraph, heading, code block, list item, table, ...), each with
    whether it follows the one before on the next line (items of a tight list)."""
    blocks: list[tuple[str, bool]] = []
    tight = False
    fresh = False  # the next block opens a list: a blank line before it
    prefix: list[str] = []  # the markers of the open lists and quotes, outermost first
    counters: list[int | None] = []  # per open list: the next number, or None (bullets)
    first_line_marker: str | None = None
    table_row: list[str] | None = None
    rows: list[str] = []

    def emit(text: str) -> None:
        nonlocal first_line_marker, fresh
        lead = "".join(prefix)
        lines = text.split("\n")
        if first_line_marker is not None:
            head = lead[: -len(first_line_marker)] + first_line_marker if lead else ""
            first_line_marker = None
        else:
            head = lead
        text = "\n".join([head + lines[0], *(lead + line for line in lines[1:])])
        blocks.append((text, tight and not fresh and bool(blocks)))
        fresh = False

    for token in tokens:
        kind = token.type
        if kind == "paragraph_open":
            tight = token.hidden
        elif kind in ("heading_open", "fence", "code_block", "html_block", "hr", "table_open"):
            tight = False
        if kind == "bullet_list_open":
            counters.append(None)
            fresh = True
        elif kind == "ordered_list_open":
            fresh = True
            start = token.attrGet("start")
            counters.append(int(start) if isinstance(start, int | str) else 1)
        elif kind in ("bullet_list_close", "ordered_list_close"):
            counters.pop()
        elif kind == "list_item_open":
            number = counters[-1] if counters else None
            marker = "- " if number is None else f"{number}. "
            if counters and number is not None:
                counters[-1] = number + 1
            prefix.append(" " * len(marker))
            first_line_marker = marker
        elif kind == "list_item_close":
            prefix.pop()
        elif kind == "blockquote_open":
            prefix.append("> ")
        elif kind == "blockquote_close":
            prefix.pop()
        elif kind in ("fence", "code_block", "html_block"):
            emit(token.content.rstrip("\n"))
        elif kind == "hr":
            emit("---")
        elif kind == "tr_open":
            table_row = []
        elif kind == "tr_close":
            rows.append(" | ".join(table_row or []))
            table_row = None
        elif kind == "table_close":
            emit("\n".join(rows))
            rows = []
        elif kind == "inline":
            text = _inline(token.children or [])
            if table_row is not None:
                table_row.append(text)
            else:
                emit(text)
    return blocks


def markdown_to_plain(text: str) -> str:
    """``text`` (markdown) as plain text, invisible characters shown as ``⟦U+XXXX⟧``.

    Args:
        text: request text as stored (untrusted).

    Returns:
        What the console shows, as plain text; one blank line between blocks.

    Example:
        ``markdown_to_plain("**Asked by:** customer\\\\'s card\\\\.")`` is
        ``"Asked by: customer's card."``.
    """
    if len(text) > MAX_PARSE_CHARS:
        return reveal_invisible(text)
    try:
        parser = _parser()
    except ImportError:  # rich's dependency, hidden: resolve the gate's escapes at least
        return reveal_invisible(_ESCAPE.sub(r"\1", _HARD_BREAK.sub("\n", text)))
    out: list[str] = []
    for block, follows in _blocks(parser.parse(text)):
        if out:
            out.append("\n" if follows else "\n\n")
        out.append(block)
    return reveal_invisible("".join(out))
