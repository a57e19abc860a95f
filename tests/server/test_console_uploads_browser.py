"""Issue 22 W7 in a real browser: an uploaded document attached to a ``type: "file"``
request shows in the console as its name, type and URL, with a link that opens it only on
request (new tab, no referrer, no opener); an uploaded image on an image request loads only on
the reviewer's click, from the local server."""

from __future__ import annotations

import pytest

from .test_console_browser import CHROMIUM, CHROMIUM_ARGS, Live, live  # noqa: F401

pytestmark = pytest.mark.browser

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010804000000b51c0c02"
    "0000000b4944415478da63646000000006000230 81d02f0000000049454e44ae426082".replace(" ", "")
)


def test_the_console_shows_uploads_on_demand(live: Live) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    doc = live.client.uploads.document(b"%PDF-1.4\n%%EOF\n", filename="deal.pdf")
    img = live.client.uploads.image(PNG_1PX, filename="pixel.png")
    for kind, fields in (
        ("file", {"file_url": doc.url, "file_type": doc.file_type, "file_name": doc.file_name}),
        ("image", {"image_url": img.url}),
    ):
        live.client.requests.create(
            live.loop_id, request_text=f"Check the {kind}", type=kind, response_type="boolean",
            response_config={}, default_response=False, timeout_seconds=600, **fields,
        )  # fmt: skip
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(live.base + "/console/")
            page.fill("#token", live.token)
            page.click("#login-form button[type=submit]")
            link = page.locator("a.open-document")
            expect(link).to_have_count(1)
            expect(link).to_have_attribute("href", doc.url)
            expect(link).to_have_attribute("rel", "noopener noreferrer")
            expect(page.locator(".document .image-url")).to_contain_text(
                "deal.pdf (application/pdf)"
            )
            load = page.locator("button.load-image")
            expect(load).to_have_count(1)
            load.click()
            expect(page.locator("img.request-image")).to_have_attribute("src", img.url)
        finally:
            browser.close()
    assert errors == []
