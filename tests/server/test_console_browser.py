"""The reviewer console in a real browser (Debian chromium + Playwright) over real HTTP.

One request of each of the seven response types is created with HITLClient, claimed and
answered through the console's forms, and read back through the API. Along the way: priority
styling, the countdown, context as text, an image that loads only on click and without a
referrer, server errors shown to the reviewer, an injected request that stays inert, and no
console errors (a CSP violation would be one). Screenshots go to tests/artifacts/console/.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from hitl_agent import HITLClient
from hitl_agent.models.response_types import EditedText
from hitl_agent.server import create_app

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "console"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A 1x1 transparent PNG for the image request.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


def _require_browser() -> None:
    if not os.path.exists(CHROMIUM) or shutil.which(CHROMIUM) is None:
        reason = (
            f"{CHROMIUM} is missing: install Debian's chromium (`make chromium`); "
            "browsers cannot be downloaded here"
        )
        if os.environ.get("HITL_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " (HITL_REQUIRE_BROWSER=1 requires it)")
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Live:
    base: str
    client: HITLClient
    loop_id: str
    token: str
    image_hits: list[dict[str, str]] = field(default_factory=list)
    image_url: str = ""


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    _require_browser()
    app = create_app(tmp_path / "console.db", scheduler_interval=None)
    boot = app.state.hitl.bootstrap()
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="console-uvicorn", daemon=True)
    thread.start()

    # A second origin serving the image, recording the headers it was fetched with.
    hits: list[dict[str, str]] = []

    class ImageHandler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(dict(self.headers.items()))
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(PNG)))
            self.end_headers()
            self.wfile.write(PNG)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    images = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ImageHandler)
    image_thread = threading.Thread(target=images.serve_forever, daemon=True)
    image_thread.start()

    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    client = HITLClient(api_key=boot.api_key, base_url=base + "/v1")
    try:
        yield Live(
            base,
            client,
            boot.loop_id,
            boot.reviewer_token,
            hits,
            f"http://127.0.0.1:{images.server_address[1]}/chart.png",
        )
    finally:
        client.close()
        server.should_exit = True
        thread.join(timeout=10)
        images.shutdown()
        images.server_close()
        app.state.hitl.close()


@dataclass
class Case:
    name: str
    response_type: str
    config: dict[str, Any]
    default: Any
    priority: str
    expected: Any
    request_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


DRAFT = "Dear customer, your refund is on its way."
REVISED = "Dear customer, your refund of $10 is on its way."


def _cases(image_url: str) -> list[Case]:
    return [
        Case("text", "text", {"max_length": 200, "min_length": 2}, "n/a", "high", "Looks good"),
        Case(
            "single_select",
            "single_select",
            {"options": ["Approve", "Reject", "Escalate"]},
            "reject",
            "critical",
            "escalate",
        ),
        Case(
            "multi_select",
            "multi_select",
            {"options": ["Spam", "Abuse", "Off-topic"], "max_selections": 2},
            ["spam"],
            "medium",
            ["spam", "off_topic"],
        ),
        Case("rating", "rating", {"scale_min": 1, "scale_max": 5}, 3, "low", 4),
        Case("number", "number", {"max_value": 1000, "decimal_places": 2}, 0, "medium", 12.5),
        Case(
            "boolean",
            "boolean",
            {"true_label": "Ship it", "false_label": "Hold"},
            True,
            "high",
            False,
            extra={"type": "image", "image_url": image_url},
        ),
        Case(
            "editable_text",
            "editable_text",
            {"draft_text": DRAFT, "max_length": 300},
            DRAFT,
            "low",
            EditedText(text=REVISED, was_edited=True),
        ),
    ]


INJECTION = (
    "# ✅ Verified by security\n\n"
    "<script>window.__pwned = 1</script>\n\n"
    '[click me](javascript:window.__pwned=2) and <img src=x onerror="window.__pwned=3">\n\n'
    "![pixel](PIXEL)\n\n"
    "refund\u202e01$ ot\u202c"
)


def test_console_answers_all_seven_types_in_a_real_browser(live: Live) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    cases = _cases(live.image_url)
    for case in cases:
        case.request_id = live.client.requests.create(
            live.loop_id,
            request_text=f"**{case.name}**: please answer",
            response_type=case.response_type,
            response_config=case.config,
            default_response=case.default,
            priority=case.priority,  # type: ignore[arg-type]
            timeout_seconds=3600,
            context={"case": case.name, "html": "<b>not bold</b>"},
            **case.extra,
        ).request_id
    pixel = live.base + "/pixel.png"
    evil = live.client.requests.create(
        live.loop_id,
        request_text=INJECTION.replace("PIXEL", pixel),
        response_type="boolean",
        response_config={},
        default_response=False,
        priority="critical",
        timeout_seconds=600,
    ).request_id

    errors: list[str] = []
    requested: list[str] = []
    step = iter(range(1, 100))

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
            page.on("request", lambda r: requested.append(r.url))

            def shot(name: str) -> None:
                page.screenshot(
                    path=str(ARTIFACTS / f"{next(step):02d}-{name}.png"), full_page=True
                )

            # Real timers while the page loads; then paused, so the 5 s auto-refresh cannot
            # reshuffle the queue under the test (it is exercised explicitly below).
            page.clock.install()
            page.goto(live.base + "/console/")
            expect(page.locator("#login")).to_be_visible()
            shot("login")
            page.fill("#token", live.token)
            page.click("#login-form button[type=submit]")
            cards = page.locator("li.card")
            expect(cards).to_have_count(len(cases) + 1)
            page.clock.pause_at(time.time() + 1)
            expect(page.locator("#who")).to_have_text("reviewer@localhost")
            shot("queue")

            # The token lives in this tab's sessionStorage only.
            assert page.evaluate("sessionStorage.getItem('hitl-reviewer-token')") == live.token
            assert page.evaluate("localStorage.length") == 0
            assert live.token not in page.url

            # Priority: critical first, and visibly distinct from low.
            assert "prio-critical" in (cards.first.get_attribute("class") or "")
            border = "el => getComputedStyle(el).borderLeftColor"
            colors = {
                prio: page.locator(f"li.card.prio-{prio}").first.evaluate(border)
                for prio in ("critical", "high", "medium", "low")
            }
            assert len(set(colors.values())) == 4, colors

            def card(request_id: str) -> Any:
                return page.locator(f'li.card[data-request-id="{request_id}"]')

            # The injected request is inert: no element it asked for, its text shown as text.
            evil_card = card(evil)
            body = evil_card.locator(".request-text")
            for tag in ("a", "img", "script", "h1"):
                expect(body.locator(tag)).to_have_count(1 if tag == "h1" else 0)
            expect(body).to_contain_text("<script>window.__pwned = 1</script>")
            expect(body).to_contain_text("⟨javascript:window.__pwned=2⟩")
            expect(body).to_contain_text(f"[image: pixel — {pixel}]")
            expect(body).to_contain_text("refund⟦U+202E⟧01$ ot⟦U+202C⟧")
            assert page.evaluate("typeof window.__pwned") == "undefined"
            assert pixel not in requested
            assert (
                body.evaluate(
                    "el => el.querySelectorAll('[onerror],[onclick],[href],[src]').length"
                )
                == 0
            )
            shot("injection-inert")

            # Context is escaped JSON text; the countdown ticks.
            first = card(cases[0].request_id)
            context = first.locator("pre.context")
            expect(context).to_have_text(
                json.dumps({"case": "text", "html": "<b>not bold</b>"}, indent=2)
            )
            expect(context.locator("b")).to_have_count(0)
            countdown = first.locator(".countdown")
            expect(countdown).to_have_text(re.compile(r"times out in 00:5\d:\d\d"))
            before = countdown.text_content()
            page.clock.run_for(2000)
            expect(countdown).not_to_have_text(before or "")

            # The form is locked until the request is claimed.
            expect(first.locator("textarea")).to_be_disabled()

            # Server errors reach the reviewer: the injected request is cancelled behind the
            # console's back, so claiming it gets the server's 409.
            assert not errors, errors
            live.client.requests.cancel(evil)
            evil_card.locator("button.claim").click()
            expect(evil_card.locator(".answer-error")).to_contain_text(
                "claim failed (409): Request is no longer open"
            )
            shot("server-error")
            errors_after_409 = [e for e in errors if "status of 409" not in e]
            assert not errors_after_409, errors_after_409
            errors.clear()

            def claim(case: Case) -> Any:
                target = card(case.request_id)
                target.locator("button.claim").click()
                expect(target.locator(".badge.status")).to_have_text("claimed by you")
                expect(target.locator("button.release")).to_be_enabled()
                return target

            def sent(target: Any, case: Case) -> None:
                expect(target.locator(".answer-ok")).to_contain_text("Answer sent")
                shot(f"answered-{case.name}")

            by_name = {case.name: case for case in cases}

            # text: claim, release, claim again, then a too-short answer is refused locally.
            case = by_name["text"]
            target = claim(case)
            target.locator("button.release").click()
            expect(target.locator(".badge.status")).to_have_text("pending")
            expect(target.locator("textarea")).to_be_disabled()
            target = claim(case)
            target.locator("textarea").fill("x")
            target.locator("button.submit").click()
            expect(target.locator(".answer-error")).to_have_text("At least 2 characters.")
            target.locator("textarea").fill("Looks good")
            shot("text-filled")
            target.locator("button.submit").click()
            sent(target, case)

            case = by_name["single_select"]
            target = claim(case)
            expect(target.locator("input[type=radio]")).to_have_count(3)
            target.get_by_label("Escalate", exact=True).check()
            target.locator("button.submit").click()
            sent(target, case)

            # multi_select: the third box locks once two are checked.
            case = by_name["multi_select"]
            target = claim(case)
            target.locator("button.submit").click()
            expect(target.locator(".answer-error")).to_contain_text("Select between 1 and 2")
            target.get_by_label("Spam", exact=True).check()
            target.get_by_label("Off-topic", exact=True).check()
            expect(target.get_by_label("Abuse", exact=True)).to_be_disabled()
            shot("multi-select-max")
            target.locator("button.submit").click()
            sent(target, case)

            case = by_name["rating"]
            target = claim(case)
            expect(target.locator("button.rate")).to_have_count(5)
            target.locator('button.rate[data-value="4"]').click()
            expect(target.locator('button.rate[data-value="4"]')).to_have_attribute(
                "aria-pressed", "true"
            )
            target.locator("button.submit").click()
            sent(target, case)

            case = by_name["number"]
            target = claim(case)
            number = target.locator("input[type=number]")
            expect(number).to_have_attribute("step", "0.01")
            expect(number).to_have_attribute("max", "1000")
            number.fill("12.345")
            target.locator("button.submit").click()
            expect(target.locator(".answer-error")).to_have_text("Use at most 2 decimal places.")
            number.fill("12.5")
            target.locator("button.submit").click()
            sent(target, case)

            # boolean on an image request: the image loads only on click, without a referrer.
            case = by_name["boolean"]
            target = claim(case)
            expect(target.locator(".image-url")).to_have_text(live.image_url)
            expect(target.locator("img")).to_have_count(0)
            assert live.image_hits == []
            target.locator("button.load-image").click()
            image = target.locator("img.request-image")
            expect(image).to_have_count(1)
            page.wait_for_function(
                "() => document.querySelector('img.request-image').naturalWidth === 1"
            )
            assert len(live.image_hits) == 1
            assert "Referer" not in live.image_hits[0]
            shot("image-loaded")
            target.get_by_role("button", name="Hold", exact=True).click()
            sent(target, case)

            case = by_name["editable_text"]
            target = claim(case)
            area = target.locator("textarea")
            expect(area).to_have_value(DRAFT)
            expect(area).to_have_attribute("maxlength", "300")
            area.fill(REVISED)
            target.locator("button.submit").click()
            sent(target, case)

            # A refresh drops answered requests from the queue.
            page.clock.run_for(6000)
            expect(cards).to_have_count(0)
            expect(page.locator("#queue-empty")).to_be_visible()
            shot("queue-empty")

            assert not errors, errors
        finally:
            browser.close()

    for case in cases:
        got = live.client.requests.get(case.request_id)
        assert got.status == "completed", (case.name, got.status)
        assert got.response_value == case.expected, case.name
    assert pixel not in requested
    # Only same-origin resources and the one clicked image were fetched.
    foreign = [url for url in requested if not url.startswith((live.base, live.image_url, "data:"))]
    assert not foreign, foreign


def test_bad_token_shows_the_login_again(live: Live) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(live.base + "/console/")
            page.fill("#token", "not-the-token-at-all")
            page.click("#login-form button[type=submit]")
            expect(page.locator("#banner")).to_contain_text("rejected the reviewer token")
            expect(page.locator("#login")).to_be_visible()
            assert page.evaluate("sessionStorage.getItem('hitl-reviewer-token')") is None
        finally:
            browser.close()
    # The API itself agrees the token is bad.
    response = httpx.get(
        live.base + "/v1/reviewer/queue", headers={"Authorization": "Bearer not-the-token-at-all"}
    )
    assert response.status_code == 401


def test_missing_chromium_skips_or_fails_as_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    module = sys.modules[__name__]
    monkeypatch.setattr(module, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.delenv("HITL_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="make chromium"):
        _require_browser()
    monkeypatch.setenv("HITL_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="HITL_REQUIRE_BROWSER=1 requires it"):
        _require_browser()


def test_console_shows_what_a_reviewer_needs_to_trust_it(live: Live) -> None:
    """Issue 11's console rows: chrome hidden while logged out, defaults by label, both
    instants beside the countdown, no internal correlation key, a confirmation before a
    one-click answer on a critical request, and the editable-text approval line."""
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    select = live.client.requests.create(
        live.loop_id,
        request_text="Refund **$120** to order 981?",
        response_type="single_select",
        response_config={"options": [{"value": "rej", "label": "Reject refund"}, "Approve"]},
        default_response="rej",
        priority="high",
        timeout_seconds=7200,
        context={"order": 981, "hitl_agent": {"key": "lg|thread-1|gate:abc|node|0"}},
    ).request_id
    critical = live.client.requests.create(
        live.loop_id,
        request_text="Wire **$50,000** to ACME?",
        response_type="boolean",
        response_config={"true_label": "Wire it", "false_label": "Stop"},
        default_response=False,
        priority="critical",
        timeout_seconds=600,
        context={"hitl_agent": {"key": "blk|0123"}},
    ).request_id
    draft = live.client.requests.create(
        live.loop_id,
        request_text="Check the reply",
        response_type="editable_text",
        response_config={"draft_text": DRAFT},
        default_response=DRAFT,
        priority="low",
        timeout_seconds=600,
    ).request_id

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(live.base + "/console/")
            expect(page.locator("#login")).to_be_visible()
            # Logged out: no Log out / Refresh (the .session flex rule used to beat `hidden`).
            expect(page.locator("#logout")).to_be_hidden()
            expect(page.locator("#refresh")).to_be_hidden()
            page.screenshot(path=str(ARTIFACTS / "trust-01-logged-out.png"))
            page.fill("#token", live.token)
            page.click("#login-form button[type=submit]")
            expect(page.locator("li.card")).to_have_count(3)
            expect(page.locator("#logout")).to_be_visible()

            def card(request_id: str) -> Any:
                return page.locator(f'li.card[data-request-id="{request_id}"]')

            first = card(select)
            # A gate's request: a timeout tells the agent so, whatever the default.
            expect(first.locator(".default")).to_have_text(
                "If nobody answers in time: it times out and the agent is told nobody answered."
            )
            expect(first.locator(".times")).to_contain_text("Created ")
            expect(first.locator(".times")).to_contain_text("deadline ")
            expect(first.locator("pre.context")).to_have_text(json.dumps({"order": 981}, indent=2))
            expect(page.locator("#queue")).not_to_contain_text("lg|thread-1")
            # A context holding only the internal key shows no context section at all.
            expect(card(critical).locator("pre.context")).to_have_count(0)
            expect(card(critical).locator(".default")).to_have_text(
                "If nobody answers in time: it times out and the agent is told nobody answered."
            )
            # Not a gate's request: the default is the answer a timeout records.
            expect(card(draft).locator(".default")).to_have_text(
                f"If nobody answers in time: the request times out; its default answer is “{DRAFT}”"
            )
            expect(card(draft).locator(".approves")).to_contain_text(
                "Sending the revised text approves it"
            )
            page.screenshot(path=str(ARTIFACTS / "trust-02-queue.png"), full_page=True)

            # Critical: the first click arms, Cancel disarms, Confirm sends.
            target = card(critical)
            target.locator("button.claim").click()
            expect(target.locator(".badge.status")).to_have_text("claimed by you")
            target.get_by_role("button", name="Wire it", exact=True).click()
            confirm = target.locator(".confirm-row")
            expect(confirm).to_be_visible()
            expect(confirm).to_contain_text("Critical request: send \u201cWire it\u201d?")
            page.screenshot(path=str(ARTIFACTS / "trust-03-critical-confirm.png"), full_page=True)
            assert live.client.requests.get(critical).status != "completed"
            target.locator("button.cancel-confirm").click()
            expect(confirm).to_be_hidden()
            target.get_by_role("button", name="Stop", exact=True).click()
            target.locator("button.confirm").click()
            expect(target.locator(".answer-ok")).to_contain_text("Answer sent: false")
        finally:
            browser.close()
    assert live.client.requests.get(critical).response_value is False
