"""Safe markdown for reviewers: nothing in a request's text can act, load, or hide.

The text a reviewer approves is often narrated by an agent that may be compromised
("Lies-in-the-Loop"), so the rendered HTML must show the real bytes and nothing more:

* raw HTML is escaped and shown as text (markdown-it ``html=False``);
* links are inert: the link text, then the target URL as plain text — never ``<a href>``;
* images are never fetched: ``[image: alt — url]`` as text (no tracking pixel, no exfiltration
  through a query string);
* Trojan-Source characters (bidi overrides/isolates, zero-width and other invisible
  characters, C0/C1 controls) are replaced by a visible marker such as ``⟦U+202E⟧``;
* table alignment becomes a class, not a ``style`` attribute, so the console's strict
  Content-Security-Policy needs no ``'unsafe-inline'``;
* very long text is cut with an explicit note saying how much was cut and its SHA-256, so
  sheer length cannot push the real action off-screen unnoticed.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Sequence
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from ..._text import reveal_invisible as _reveal

__all__ = ["MAX_RENDER_CHARS", "render_markdown", "reveal_invisible"]

#: Longer text is truncated before rendering. HITL.sh caps request_text at 2000 characters,
#: so this only bites on non-conforming input; it also bounds the parser's work.
MAX_RENDER_CHARS = 20_000


def reveal_invisible(text: str) -> str:
    """Replace each invisible or direction-changing character by a visible ``⟦U+XXXX⟧`` marker
    (carriage returns are kept: markdown may arrive with CRLF line ends).

    Args:
        text: Untrusted text.

    Returns:
        The text with every such character made visible; everything else unchanged.
    """
    return _reveal(text, keep_cr=True)


def _link_open(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    href = str(tokens[idx].attrGet("href") or "")
    env.setdefault("_hitl_links", []).append(href)
    return '<span class="md-link">'


def _link_close(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    stack: list[str] = env.get("_hitl_links") or [""]
    href = stack.pop()
    # An autolink's text already is its URL: showing it twice only adds noise.
    if tokens[idx].markup == "autolink":
        return "</span>"
    return f'</span> <span class="md-url">⟨{html.escape(href)}⟩</span>'


def _image(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    alt = self.renderInlineAsText(token.children or [], options, env)
    src = str(token.attrGet("src") or "")
    return f'<span class="md-image">[image: {html.escape(alt)} — {html.escape(src)}]</span>'


def _align_to_class(state: Any) -> None:
    # markdown-it emits style="text-align:…" on table cells; a CSP without 'unsafe-inline'
    # would block it (and log a console error), so carry the alignment as a class instead.
    for token in state.tokens:
        if token.type in ("th_open", "td_open"):
            style = token.attrGet("style")
            if isinstance(style, str) and style.startswith("text-align:"):
                token.attrs.pop("style", None)
                token.attrSet("class", "md-align-" + style.removeprefix("text-align:"))


def _keep_every_url(url: str) -> bool:
    # Links never become active here, so the "dangerous scheme" filter of markdown-it would only
    # hide what the agent wrote; parse every link and show its URL as inert text.
    return True


def _build() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.validateLink = _keep_every_url  # type: ignore[method-assign]
    md.add_render_rule("link_open", _link_open)
    md.add_render_rule("link_close", _link_close)
    md.add_render_rule("image", _image)
    md.core.ruler.push("hitl_align_to_class", _align_to_class)
    return md


_MD = _build()


def render_markdown(text: str) -> str:
    """Render untrusted markdown to HTML that is safe to insert into the reviewer console.

    CommonMark plus GFM tables and strikethrough. No element in the output can run script,
    navigate, or load anything: no ``<a>``, ``<img>``, ``<script>``, ``on*`` or ``style``
    attributes. Invisible and bidi characters are shown as ``⟦U+XXXX⟧`` markers.

    Args:
        text: The request text, as written by the agent or operator (untrusted).

    Returns:
        An HTML fragment.

    Example:
        ``render_markdown("[docs](javascript:x)")`` gives
        ``<p><span class="md-link">docs</span> <span class="md-url">⟨javascript:x⟩</span></p>``.
    """
    if not isinstance(text, str):
        raise TypeError(f"render_markdown expects str text, got {type(text).__name__}")
    note = ""
    if len(text) > MAX_RENDER_CHARS:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        cut = len(text) - MAX_RENDER_CHARS
        text = text[:MAX_RENDER_CHARS]
        note = (
            f'<p class="md-truncated">… {cut} more characters not shown '
            f"(sha256 of the full text: {digest})</p>\n"
        )
    rendered: str = _MD.render(reveal_invisible(text))
    return rendered + note
