"""Callbacks: the documented payload, after commit, at least once, retried, signed, deduplicated."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from hitl_agent.server import SIGNATURE_HEADER, sign, verify

from .conftest import Env, MakeEnv, Receiver

HOOK = "https://receiver.test/hook?token=capability-secret"
FOX = b"The quick brown fox jumps over the lazy dog"


def _answer(env: Env, request_id: str, value: object = "approve") -> None:
    response = env.rev("POST", f"/requests/{request_id}/respond", json={"response_data": value})
    assert response.status_code == 200, response.json()


def test_sign_matches_the_rfc_vector_and_verify_rejects_tampering() -> None:
    expected = "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    assert sign(FOX, "key") == expected
    assert verify(FOX, expected, "key")
    assert not verify(FOX + b".", expected, "key")
    assert not verify(FOX, expected, "other")
    assert not verify(FOX, expected.removeprefix("sha256="), "key")
    assert not verify(FOX, None, "key")
    assert not verify(FOX, expected, "")


def test_completed_callback_has_the_documented_payload_and_waits_for_tick(env: Env) -> None:
    request_id = env.create(callback_url=HOOK)
    env.clock.advance(30)
    _answer(env, request_id)
    assert env.receiver.calls == []  # the API call never waits for delivery
    env.tick()
    assert len(env.receiver.calls) == 1
    call = env.receiver.calls[0]
    assert str(call.url) == HOOK
    assert call.headers["content-type"] == "application/json"
    assert SIGNATURE_HEADER.lower() not in call.headers
    assert json.loads(call.content) == {
        "event": "request.completed",
        "request_id": request_id,
        "loop_id": env.creds.loop_id,
        "status": "completed",
        # HITL.sh's webhooks page (issue 22 W3): OpenClaw's gate reads selected_value.
        "response_data": {"selected_value": "approve", "selected_label": "Approve"},
        "response_by": {
            "user_id": env.creds.reviewer_id,
            "name": "Local Reviewer",
            "email": env.creds.reviewer_email,
        },
        # The Make integration's names.
        "response_by_user": {
            "id": env.creds.reviewer_id,
            "name": "Local Reviewer",
            "email": env.creds.reviewer_email,
        },
        "timestamp": "2026-01-01T00:00:30Z",
        "response_at": "2026-01-01T00:00:30Z",
        "response_time_seconds": 30.0,
        "created_at": "2026-01-01T00:00:00Z",
        # The form and the default: a receiver that trusts a signed body needs them (W6).
        "response_type": "single_select",
        "response_config": {"options": ["Approve", "Reject"]},
        "default_response": "reject",
    }


def test_plain_callbacks_switch_sends_the_plain_value(make_env: MakeEnv) -> None:
    env = make_env(plain_callbacks=True, signing_secret="s3cret")
    request_id = env.create(callback_url=HOOK)
    _answer(env, request_id)
    env.tick()
    [call] = env.receiver.calls
    payload = json.loads(call.content)
    assert payload["response_data"] == "approve"
    assert payload["response_by_user"]["id"] == env.creds.reviewer_id
    assert "_plain_response_data" not in payload
    assert verify(call.content, call.headers[SIGNATURE_HEADER], "s3cret")  # signed as sent


WRAPPED = [
    ("text", {"max_length": 50}, "none", "Looks fine", "Looks fine"),
    ("single_select", {"options": [{"value": "ok", "label": "✅ OK"}, "Reject"]}, "Reject",
     "ok", {"selected_value": "ok", "selected_label": "✅ OK"}),
    ("multi_select", {"options": ["Spam", "Tone"], "max_selections": 2}, ["Spam"],
     ["Spam", "Tone"], {"selected_values": ["Spam", "Tone"], "selected_labels": ["Spam", "Tone"]}),
    ("rating", {"scale_max": 5, "labels": {"4": "Good"}}, 1, 4,
     {"rating": 4, "rating_label": "Good"}),
    ("number", {"max_value": 1000, "prefix": "$"}, 1, 299.99,
     {"number": 299.99, "formatted_value": "$299.99"}),
    ("boolean", {"true_label": "Yes"}, False, True, {"boolean": True, "boolean_label": "Yes"}),
    ("editable_text", {"draft_text": "Hi"}, "Hi", {"revised_text": "Hello", "was_edited": True},
     {"revised_text": "Hello", "was_edited": True}),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "config", "default", "answer", "wrapped"), WRAPPED)
def test_each_type_is_wrapped_as_documented_and_the_client_reads_both_shapes(
    make_env: MakeEnv, kind: str, config: dict[str, object], default: object, answer: object,
    wrapped: object,
) -> None:  # fmt: skip
    from hitl_agent.models import normalize_response_data

    sent: dict[bool, object] = {}
    for plain in (False, True):
        env = make_env(plain_callbacks=plain)
        request_id = env.create(
            callback_url=HOOK, response_type=kind, response_config=config, default_response=default
        )
        _answer(env, request_id, answer)
        env.tick()
        sent[plain] = json.loads(env.receiver.calls[0].content)["response_data"]
    assert sent[False] == wrapped
    assert normalize_response_data(kind, sent[False]) == normalize_response_data(kind, sent[True])


def test_timeout_and_cancel_callbacks_carry_null_answers(env: Env) -> None:
    timed_out = env.create(callback_url=HOOK, timeout_seconds=60)
    cancelled = env.create(callback_url=HOOK)
    env.api("DELETE", f"/api/requests/{cancelled}")
    env.clock.advance(60)
    env.tick()
    payloads = {
        json.loads(c.content)["request_id"]: json.loads(c.content) for c in env.receiver.calls
    }
    assert payloads[timed_out]["event"] == "request.timeout"
    assert payloads[cancelled]["event"] == "request.cancelled"
    for payload in payloads.values():
        assert payload["response_data"] is None
        assert payload["response_by"] is None
        assert payload["response_at"] is None
        assert payload["response_time_seconds"] is None


def test_callback_is_sent_after_the_state_change_is_committed(env: Env) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        request_id = json.loads(request.content)["request_id"]
        # Read through the server (another thread): the lock is free and the row is final.
        with env.server.storage.read() as conn:
            row = conn.execute("SELECT status FROM requests WHERE id = ?", (request_id,)).fetchone()
        seen.append(row["status"])
        return httpx.Response(200)

    env.receiver.hook = handler
    request_id = env.create(callback_url=HOOK)
    _answer(env, request_id)
    env.tick()
    assert seen == ["completed"]


def test_signature_header_verifies_with_the_secret(make_env: MakeEnv) -> None:
    env = make_env(signing_secret="s3cret")
    request_id = env.create(callback_url=HOOK)
    _answer(env, request_id)
    env.tick()
    call = env.receiver.calls[0]
    header = call.headers[SIGNATURE_HEADER]
    assert header.startswith("sha256=")
    assert verify(call.content, header, "s3cret")
    assert not verify(call.content, header, "wrong")
    # webhooks/global.mdx's header too (plain hex), and the dispatcher's receiver accepts both.
    assert call.headers["X-HITL-Signature"] == header.removeprefix("sha256=")
    from hitl_agent.dispatch._receiver import signature_valid

    assert signature_valid(call.content, call.headers.raw, "s3cret")
    assert not signature_valid(call.content, call.headers.raw, "wrong")


def test_fails_twice_then_succeeds_is_delivered_once_after_three_attempts(
    make_env: MakeEnv,
) -> None:
    env = make_env(receiver=Receiver(script=[500, 503]))
    request_id = env.create(callback_url=HOOK)
    _answer(env, request_id)
    for _ in range(6):
        env.tick()
    assert len(env.receiver.calls) == 3
    assert len({c.content for c in env.receiver.calls}) == 1  # the same body each time
    [row] = env.outbox()
    assert (row["state"], row["attempts"]) == ("delivered", 3)


def test_backoff_is_exponential_on_the_clock(make_env: MakeEnv) -> None:
    env = make_env(receiver=Receiver(script=[500, 500, 500]), callback_base_delay=10.0)
    request_id = env.create(callback_url=HOOK)
    _answer(env, request_id)
    attempts_after = []
    for step in (0, 9, 1, 19, 1, 39, 1):
        env.clock.advance(step)
        env.tick()
        attempts_after.append(len(env.receiver.calls))
    assert attempts_after == [1, 1, 2, 2, 3, 3, 4]
    assert env.outbox()[0]["state"] == "delivered"


def test_5xx_forever_gives_up_after_four_attempts_and_leaves_state_alone(
    make_env: MakeEnv, caplog: pytest.LogCaptureFixture
) -> None:
    env = make_env(receiver=Receiver(script=[500] * 10))
    request_id = env.create(callback_url=HOOK)
    _answer(env, request_id)
    with caplog.at_level(logging.INFO):  # every logger, httpx's request lines included
        for _ in range(10):
            env.tick()
    assert len(env.receiver.calls) == 4
    [row] = env.outbox()
    assert (row["state"], row["attempts"], row["last_error"]) == ("failed", 4, "HTTP 500")
    assert env.get(request_id)["status"] == "completed"
    assert "given up after 4 attempts" in caplog.text
    assert "capability-secret" not in caplog.text  # the callback URL never reaches a log
    assert "HTTP Request: POST <callback url>" in caplog.text


def test_connection_errors_are_retried_and_4xx_is_not(make_env: MakeEnv) -> None:
    env = make_env(receiver=Receiver(script=[404]))
    rejected = env.create(callback_url=HOOK)
    _answer(env, rejected)
    for _ in range(3):
        env.tick()
    assert len(env.receiver.calls) == 1
    assert env.outbox()[0]["state"] == "failed"

    failures = [httpx.ConnectError("refused")]

    def flaky(request: httpx.Request) -> httpx.Response:
        if failures:
            raise failures.pop()
        return httpx.Response(204)

    env.receiver.hook = flaky
    retried = env.create(callback_url=HOOK)
    _answer(env, retried)
    env.tick()
    env.tick()
    assert len(env.receiver.calls) == 3
    row = env.outbox()[1]
    assert (row["state"], row["attempts"]) == ("delivered", 2)


def test_one_terminal_event_gives_one_callback_even_with_concurrent_ticks(env: Env) -> None:
    request_id = env.create(callback_url=HOOK)
    _answer(env, request_id)

    async def two_tickers() -> None:
        await asyncio.gather(env.server.tick(), env.server.tick(), env.server.tick())

    assert env.http.portal is not None
    env.http.portal.call(two_tickers)
    for _ in range(3):
        env.tick()
    assert len(env.receiver.calls) == 1
    again = env.api("DELETE", f"/api/requests/{request_id}")
    assert again.status_code == 400
    env.tick()
    assert len(env.receiver.calls) == 1


def test_requests_without_callback_url_queue_nothing(env: Env) -> None:
    request_id = env.create()
    _answer(env, request_id)
    env.tick()
    assert env.outbox() == []
    assert env.receiver.calls == []


def test_background_scheduler_delivers_promptly_after_the_answer(make_env: MakeEnv) -> None:
    env = make_env(scheduler_interval=30.0)
    request_id = env.create(callback_url=HOOK)
    _answer(env, request_id)
    # The answer wakes the scheduler; no need to wait out the 30 s interval.
    for _ in range(200):
        if env.receiver.calls:
            break
        asyncio.run(asyncio.sleep(0.01))
    assert len(env.receiver.calls) == 1


# A slow receiver holds up nobody (issue 8: M3) ------------------------------------------------

SLOW = "https://slow.test/hook"
FAST = "https://fast.test/hook"


class _GatedReceiver(Receiver):
    """``slow.test`` answers only when ``release`` is set (never, unless a test sets it)."""

    def __init__(self) -> None:
        super().__init__()
        self.slow_entered = threading.Event()
        self.release = threading.Event()

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if request.url.host == "slow.test":
            self.slow_entered.set()
            while not self.release.is_set():
                await asyncio.sleep(0.005)
        return httpx.Response(200)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self._handle))


def _until(check: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    # Waits for an outcome; it asserts no timing, only that the outcome comes at all.
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.005)


def _state(env: Env, request_id: str) -> str | None:
    rows = [r for r in env.outbox() if r["request_id"] == request_id]
    return rows[0]["state"] if rows else None


def test_a_slow_receiver_delays_no_other_callback_and_no_timeout_sweep(make_env: MakeEnv) -> None:
    receiver = _GatedReceiver()
    env = make_env(receiver=receiver, scheduler_interval=0.01, callback_timeout=3600)
    slow = env.create(callback_url=SLOW)
    _answer(env, slow)
    _until(receiver.slow_entered.is_set, "the slow delivery started")
    fast = env.create(callback_url=FAST)
    _answer(env, fast)
    _until(lambda: _state(env, fast) == "delivered", "the fast callback delivered")
    expiring = env.create(callback_url=FAST, timeout_seconds=60)
    env.clock.advance(61)
    env.server.wake()
    _until(lambda: _state(env, expiring) == "delivered", "the timeout swept and called back")
    assert env.get(expiring)["status"] == "timeout"
    # All the while the slow one was still in flight, leased, and not sent twice.
    assert _state(env, slow) == "pending"
    assert sum(c.url.host == "slow.test" for c in receiver.calls) == 1
    receiver.release.set()
    _until(lambda: _state(env, slow) == "delivered", "the slow callback delivered")
    assert sum(c.url.host == "slow.test" for c in receiver.calls) == 1


def test_a_delivery_past_its_timeout_is_a_failed_attempt_retried_later(make_env: MakeEnv) -> None:
    receiver = _GatedReceiver()
    env = make_env(receiver=receiver, callback_timeout=0.05)
    slow = env.create(callback_url=SLOW)
    fast = env.create(callback_url=FAST)
    _answer(env, slow)
    _answer(env, fast)
    env.tick()  # waits for the deliveries it started: the slow one ends at its timeout
    rows = {r["request_id"]: r for r in env.outbox()}
    assert (rows[fast]["state"], rows[fast]["attempts"]) == ("delivered", 1)
    assert (rows[slow]["state"], rows[slow]["attempts"]) == ("pending", 1)
    assert rows[slow]["last_error"] == "TimeoutError"
    receiver.release.set()
    env.tick()
    assert _state(env, slow) == "delivered"


# No token in any log line, whatever the URL's spelling (issue 8: M4) ---------------------------

CANARY = "c4n4ry-capability-7f3e"


@pytest.mark.parametrize(
    "url",
    [
        f"HTTP://receiver.test/hook?token={CANARY}",
        f"http://Receiver.TEST/hook?token={CANARY}",
        f"http://receiver.test:80/hook/{CANARY}",
        f"https://receiver.test:443/hook/{CANARY}",
        f"http://receiver.test/hoök/{CANARY}",
        f"http://bücher.test/hook/{CANARY}",
        f"http://receiver.test/hook/%7E{CANARY}",
    ],
)
def test_delivery_logs_never_carry_the_callback_url(
    env: Env, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    request_id = env.create(callback_url=url)
    _answer(env, request_id)
    env.receiver.script = [500]
    env.tick()  # a failed attempt: the retry line is logged too
    env.tick()
    assert [r["state"] for r in env.outbox()] == ["delivered"]
    lines = [record.getMessage() for record in caplog.records]
    assert any("<callback url>" in line for line in lines), lines
    assert not [line for line in lines if CANARY in line]
