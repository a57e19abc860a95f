"""What the reviewer API gives a reviewer (issue 21, S6 and S7).

No callback capability token in anything a reviewer's token can read (queue, one request,
claim, release, respond), and a ``timeout_note`` per request that says what a timeout does:
a gate's request tells the agent nobody answered, whatever its stored default.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from hitl_agent._capability import REDACTED, redact_callback_url, redact_record
from hitl_agent.server.console import timeout_note

from .conftest import Env

TOKEN = "9f" * 32  # a gate's token: 64 hex characters, the last path segment
HOOK = f"https://receiver.test/hitl/{TOKEN}"
GATE = {"hitl_agent": {"key": "lg|t-1|gate:abc|tools|0"}}


def _all_text(env: Env, request_id: str) -> list[str]:
    bodies = [
        env.rev("GET", "/queue").text,
        env.rev("GET", f"/requests/{request_id}").text,
        env.rev("POST", f"/requests/{request_id}/claim").text,
        env.rev("POST", f"/requests/{request_id}/release").text,
        env.rev("POST", f"/requests/{request_id}/respond", json={"response_data": "reject"}).text,
    ]
    return bodies


def test_no_reviewer_response_carries_the_callback_token(env: Env) -> None:
    request_id = env.create(callback_url=HOOK, context=GATE)
    bodies = _all_text(env, request_id)
    for body in bodies:
        assert TOKEN not in body
    item = json.loads(bodies[1])["data"]["request"]
    assert item["callback_url"] == f"https://receiver.test/hitl/{REDACTED}"
    # The dispatcher's side (the API key holder) still gets the URL it set.
    assert env.get(request_id)["callback_url"] == HOOK


def test_a_query_capability_is_redacted_too(env: Env) -> None:
    request_id = env.create(callback_url="https://receiver.test/hook?token=capability-secret")
    for body in _all_text(env, request_id):
        assert "capability-secret" not in body


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (HOOK, "https://receiver.test/hitl/<redacted>"),
        (f"http://127.0.0.1:8000/{TOKEN}", "http://127.0.0.1:8000/<redacted>"),
        (
            "https://u:pw@h.test/cb/?k=s#f",
            "https://<redacted>@h.test/<redacted>?<redacted>#<redacted>",
        ),
        ("not a url", "<redacted>"),
        (None, None),
    ],
)
def test_redact_callback_url(url: Any, shown: Any) -> None:
    assert redact_callback_url(url) == shown
    if url is not None:
        assert redact_record({"id": "x", "callback_url": url}) == {"id": "x", "callback_url": shown}


GATE_LINE = "If nobody answers in time: it times out and the agent is told nobody answered."


@pytest.mark.parametrize(
    ("request_fields", "line"),
    [
        # ask_human's select: "Yes" is the stored default, but the agent is told "timed out".
        (
            {
                "response_type": "single_select",
                "response_config": {"options": [{"value": "option_1", "label": "Yes"}]},
                "default_response": "option_1",
                "context": GATE,
            },
            GATE_LINE,
        ),
        # The reason follow-up: default "" is no answer at all.
        ({"response_type": "text", "default_response": "", "context": GATE}, GATE_LINE),
        (
            {
                "response_type": "boolean",
                "default_response": True,
                "context": GATE,
                "response_config": {"true_label": "Ship it"},
            },
            GATE_LINE + " The default (Ship it) counts only if the app turned on "
            "approve_on_timeout.",
        ),
        (
            {
                "response_type": "single_select",
                "default_response": "approve",
                "context": GATE,
                "response_config": {"options": ["Approve", "Reject"]},
            },
            GATE_LINE + " The default (Approve) counts only if the app turned on "
            "approve_on_timeout.",
        ),
        # A request of the plain API: the default is the answer a timeout records.
        (
            {
                "response_type": "single_select",
                "default_response": "reject",
                "response_config": {"options": ["Approve", "Reject"]},
            },
            "If nobody answers in time: the request times out; its default answer is Reject",
        ),
        (
            {
                "response_type": "editable_text",
                "default_response": {"revised_text": "Hello \u202eworld", "was_edited": False},
            },
            "If nobody answers in time: the request times out; its default answer is "
            "“Hello ⟦U+202E⟧world”",
        ),
        (
            {"response_type": "text", "default_response": ""},
            "If nobody answers in time: the request times out; its default answer is an empty text",
        ),
        (
            {"response_type": "text", "default_response": None},
            "If nobody answers in time: the request times out, with no default answer.",
        ),
    ],
)
def test_timeout_note_says_what_happens(request_fields: dict[str, Any], line: str) -> None:
    assert timeout_note(request_fields) == line


def test_the_queue_carries_the_timeout_note(env: Env) -> None:
    env.create(
        response_type="single_select",
        response_config={"options": [{"value": "option_1", "label": "Yes"}]},
        default_response="option_1",
        context=GATE,
    )
    [item] = env.rev("GET", "/queue").json()["data"]["requests"]
    assert item["timeout_note"] == GATE_LINE
