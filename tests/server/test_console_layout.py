"""The reviewer console's layout with hostile content, in a real browser (issue 21, S6).

A queue holding what an agent can send — a 5,000-character argument, a one-line SQL
statement, a long unbroken context value and image URL, long option labels — is shown at
1280×900 and at 390×844 in mobile emulation. At both sizes: the page never scrolls sideways,
every card fits the viewport, and every control (header buttons, Claim, the answer form) is
the element at its own centre, so a tap reaches it. Options show their description and colour,
a failed image says so, and every "If nobody answers in time" line says what happens.

Screenshots go to tests/artifacts/console/; with ``HITL_DOC_SCREENSHOTS=1`` the two views are
also written to docs/img/console-desktop.png and docs/img/console-phone.png (the pictures
docs/console.md shows).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from hitl_agent import HITLClient
from hitl_agent.server import create_app

from .test_console_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, _require_browser

pytestmark = pytest.mark.browser

DOC_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
GATE = {"hitl_agent": {"key": "lg|thread-7|gate:abc|tools|0"}}
LONG_ARG = "A" * 5000
SQL = (
    "SELECT customers.id, customers.email, orders.total FROM customers JOIN orders ON "
    "orders.customer_id=customers.id WHERE orders.total>1000 AND customers.country='NL' "
    "ORDER BY orders.total DESC LIMIT 500;"
).replace(" ", "\u00a0")  # no break opportunity: one line, as a model's SQL often is


@dataclass
class Server:
    base: str
    client: HITLClient
    loop_id: str
    token: str


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    _require_browser()
    app = create_app(tmp_path / "layout.db", scheduler_interval=None)
    boot = app.state.hitl.bootstrap()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    uv = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=uv.run, name="layout-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    client = HITLClient(api_key=boot.api_key, base_url=base + "/v1")
    try:
        yield Server(base, client, boot.loop_id, boot.reviewer_token)
    finally:
        client.close()
        uv.should_exit = True
        thread.join(timeout=10)
        app.state.hitl.close()


def _fenced(body: str) -> str:
    return f"```json\n{body}\n```"


def _create(server: Server, **kwargs: Any) -> str:
    base: dict[str, Any] = {"priority": "medium", "timeout_seconds": 3600}
    base.update(kwargs)
    return server.client.requests.create(server.loop_id, **base).request_id


def _hostile_queue(server: Server) -> dict[str, str]:
    ids: dict[str, str] = {}
    # The 5,000-character argument, as a tool review shows it (cut to fit 2,000 characters).
    ids["long"] = _create(
        server,
        request_text="**Approve tool call:** `send_money`\n\n"
        + _fenced('{\n  "memo": "' + LONG_ARG[:1700] + '"\n}'),
        response_type="boolean",
        response_config={"true_label": "Approve", "false_label": "Reject"},
        default_response=False,
        priority="critical",
        context={**GATE, "memo": LONG_ARG},
    )
    ids["sql"] = _create(
        server,
        request_text="**Approve tool call:** `execute_sql`\n\n"
        + _fenced('{"query": "' + SQL + '"}'),
        response_type="single_select",
        response_config={
            "options": [
                {
                    "value": "approve",
                    "label": "Approve",
                    "description": "Runs the query once, exactly as shown.",
                    "color": "#16a34a",
                },
                {
                    "value": "reject",
                    "label": "Reject",
                    "description": "The query does not run; the agent is told it was rejected.",
                    "color": "#dc2626",
                },
                {"value": "long", "label": "L" * 200},
            ]
        },
        default_response="reject",
        priority="high",
        context=GATE,
    )
    # ask_human's single_select: the default is "Yes" but a timeout tells the agent so.
    ids["ask"] = _create(
        server,
        request_text="**Question from an AI agent:**\n\nShip the release today?",
        response_type="single_select",
        response_config={
            "options": [{"value": "option_1", "label": "Yes"}, {"value": "option_2", "label": "No"}]
        },
        default_response="option_1",
        context=GATE,
    )
    # The reason follow-up: default "" .
    ids["reason"] = _create(
        server,
        request_text="**Say why you reject:** `execute_sql`",
        response_type="text",
        response_config={"max_length": 5000, "placeholder": "Why not? The agent reads this."},
        default_response="",
        context=GATE,
    )
    ids["draft"] = _create(
        server,
        request_text="Check the reply",
        response_type="editable_text",
        response_config={"draft_text": "Dear customer, " + "x" * 600},
        default_response="Dear customer, the refund is on its way.",
        priority="low",
        image_url=server.base + "/no-such-image-" + "p" * 900 + ".png",
        type="image",
    )
    return ids


_OVERFLOW = """() => {
  const doc = document.scrollingElement;
  const cards = [...document.querySelectorAll('li.card')].map(c => {
    const r = c.getBoundingClientRect();
    return {id: c.dataset.requestId, left: r.left, right: r.right, width: r.width};
  });
  return {scrollWidth: doc.scrollWidth, innerWidth: window.innerWidth, cards};
}"""

_HIT = """el => {
  el.scrollIntoView({block: 'center', inline: 'center'});
  const r = el.getBoundingClientRect();
  const x = r.left + r.width / 2, y = r.top + r.height / 2;
  const hit = document.elementFromPoint(x, y);
  const inside = x >= 0 && x <= window.innerWidth;
  return {x, y, inside, hit: !!hit && (hit === el || el.contains(hit))};
}"""


def _layout(page: Any) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(_OVERFLOW)
    return result


def _assert_fits(page: Any, label: str, viewport: int) -> dict[str, Any]:
    measured = _layout(page)
    # A phone widens its layout viewport to fit wide content (and zooms out): innerWidth must
    # still be the device's own width.
    assert measured["innerWidth"] == viewport, (label, measured["innerWidth"], viewport)
    width = measured["innerWidth"]
    assert measured["scrollWidth"] <= width, (label, measured["scrollWidth"], width)
    for card in measured["cards"]:
        assert card["left"] >= 0 and card["right"] <= width + 0.5, (label, card, width)
    return measured


def _assert_clickable(locator: Any, label: str) -> None:
    for index in range(locator.count()):
        control = locator.nth(index)
        if not control.is_visible():
            continue
        hit = control.evaluate(_HIT)
        assert hit["inside"] and hit["hit"], (label, index, hit)


def _shot(page: Any, name: str, *, doc: bool = False) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"layout-{name}.png"))
    if doc and os.environ.get("HITL_DOC_SCREENSHOTS") == "1":
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOC_IMAGES / f"console-{name}.png"))


TIMEOUT_LINES = {
    "long": "If nobody answers in time: it times out and the agent is told nobody answered.",
    "sql": "If nobody answers in time: it times out and the agent is told nobody answered.",
    "ask": "If nobody answers in time: it times out and the agent is told nobody answered.",
    "reason": "If nobody answers in time: it times out and the agent is told nobody answered.",
    "draft": (
        "If nobody answers in time: the request times out; its default answer is "
        "“Dear customer, the refund is on its way.”"
    ),
}


@pytest.mark.parametrize("view", ["desktop", "phone"])
def test_console_fits_and_every_control_is_reachable(server: Server, view: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    ids = _hostile_queue(server)
    options = DESKTOP if view == "desktop" else PHONE
    width = options["viewport"]["width"]  # type: ignore[index]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(**options)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(server.base + "/console/")
            page.fill("#token", server.token)
            page.click("#login-form button[type=submit]")
            cards = page.locator("li.card")
            expect(cards).to_have_count(len(ids))
            page.evaluate("() => window.scrollTo(0, 0)")
            print(view, "before claim", _layout(page))
            _assert_fits(page, view, width)
            _shot(page, view, doc=True)
            _assert_clickable(page.locator("#refresh, #logout"), view + " header")
            _assert_clickable(page.locator("button.claim"), view + " claim")

            def card(name: str) -> Any:
                return page.locator(f'li.card[data-request-id="{ids[name]}"]')

            for name, line in TIMEOUT_LINES.items():
                expect(card(name).locator(".default")).to_have_text(line)

            # Options: description and colour next to the label.
            sql = card("sql")
            expect(sql.locator(".option-description").first).to_have_text(
                "Runs the query once, exactly as shown."
            )
            swatch = sql.locator(".option-swatch").first
            assert swatch.evaluate("el => getComputedStyle(el).backgroundColor") == (
                "rgb(22, 163, 74)"
            )

            # Claim by tapping (phone) or clicking, then every control of the form is reachable.
            for name in ids:
                target = card(name)
                claim = target.locator("button.claim")
                claim.scroll_into_view_if_needed()
                if view == "phone":
                    claim.tap()
                else:
                    claim.click()
                expect(target.locator(".badge.status")).to_have_text("claimed by you")
            _assert_fits(page, view + " claimed", width)
            _assert_clickable(
                page.locator("li.card form button, li.card form textarea, li.card form input"),
                view + " form",
            )
            _assert_clickable(page.locator("button.load-image"), view + " image")

            # A failed image says so instead of showing a broken icon.
            draft = card("draft")
            draft.locator("button.load-image").click()
            expect(draft.locator(".image-error")).to_contain_text("could not be loaded")
            expect(draft.locator("img")).to_have_count(0)
            _assert_fits(page, view + " image failed", width)
            print(view, "after claim", _layout(page))
            sql.scroll_into_view_if_needed()
            sql.evaluate("el => el.scrollIntoView({block: 'start'})")
            _shot(page, view + "-options")
            assert not errors, errors
        finally:
            browser.close()


HIDDEN = ("\u202e", "\u200b", "\u2066", "\u2069", "\U000e0049", "\U000e0067", "\ufe0f", "\u2800")


def test_console_marks_every_invisible_character(server: Server) -> None:
    """Issue 21, S2: context, option labels and descriptions, drafts: nothing hides."""
    from playwright.sync_api import expect, sync_playwright

    smuggled = "Hi Bob, see you tomorrow.\U000e0049\U000e0067"
    _create(
        server,
        request_text="Pick one",
        response_type="single_select",
        response_config={
            "options": [
                {"value": "a", "label": "Appro\u200bve", "description": "runs\u202e now"},
                {"value": "b", "label": "OK\ufe0f \u2800"},
            ]
        },
        default_response="b",
        context={"note": "abc\u202edef", "mail": smuggled},
    )
    draft = "Dear \u2066Bob\u2069, done."
    _create(
        server,
        request_text="Check the reply",
        response_type="editable_text",
        response_config={"draft_text": draft},
        default_response=draft,
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(server.base + "/console/")
            page.fill("#token", server.token)
            page.click("#login-form button[type=submit]")
            expect(page.locator("li.card")).to_have_count(2)
            shown = page.evaluate("() => document.body.innerText")
            for char in HIDDEN:
                assert char not in shown, f"U+{ord(char):04X} shown raw"
            for marked in (
                "abc⟦U+202E⟧def",
                "tomorrow.⟦U+E0049⟧⟦U+E0067⟧",
                "Appro⟦U+200B⟧ve",
                "runs⟦U+202E⟧ now",
                "OK⟦U+FE0F⟧ ⟦U+2800⟧",
                "Dear ⟦U+2066⟧Bob⟦U+2069⟧, done.",
            ):
                assert marked in shown, marked
            # The text box keeps the real draft: it is what gets sent.
            assert page.locator("textarea").last.input_value() == draft
            expect(page.locator(".invisible-warning")).to_have_count(1)
        finally:
            browser.close()
