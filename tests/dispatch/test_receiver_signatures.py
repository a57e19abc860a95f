"""Issue 22 W6: with a signing secret the receiver verifies callbacks before anything else.

Signed as HITL.sh's docs describe (``X-HITL-Signature-256: sha256=<hex>`` on the webhooks
page, ``X-HITL-Signature`` on ``webhooks/global.mdx``): an HMAC-SHA256 of the raw body,
compared in constant time, and a body ``timestamp`` inside the replay window. Forged, stale,
re-ordered and tampered bodies get 401 and cost no API call.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hitl_harness import SECRET, Env
from starlette.testclient import TestClient

from hitl_agent._tokens import derive_token
from hitl_agent.dispatch import Dispatcher
from hitl_agent.dispatch._receiver import signature_valid, signed_timestamp
from hitl_agent.server import sign

SIGNING = "whsec-local-0123456789abcdef"


def _parked(env: Env) -> tuple[Dispatcher, str, str]:
    from hitl_agent.gate import ReviewSpec, ensure_request

    spec = ReviewSpec.build("Allow?")
    row = ensure_request(env.keeper._target, env.hitl.client, "w6-key", spec)
    assert row.request_id is not None
    dispatcher = env.keeper.dispatcher()
    dispatcher.receiver.signing_secret = SIGNING
    return dispatcher, row.request_id, derive_token(SECRET, "w6-key")


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _body(env: Env, request_id: str, *, skew: float = 0.0) -> bytes:
    payload = {
        "event": "request.completed",
        "request_id": request_id,
        "status": "completed",
        "timestamp": _iso(env.clock() + skew),
    }
    return json.dumps(payload).encode()


def _post(dispatcher: Dispatcher, token: str, raw: bytes, headers: dict[str, str]) -> int:
    with TestClient(dispatcher.asgi_app) as client:
        response = client.post(
            f"/hitl/{token}", content=raw, headers={"content-type": "application/json", **headers}
        )
    return response.status_code


def _decided(env: Env, request_id: str) -> bool:
    row = env.ledger.get_by_request_id(request_id)
    assert row is not None
    return row.decision is not None


@pytest.mark.parametrize(
    "header",
    [
        lambda raw: {"X-HITL-Signature-256": sign(raw, SIGNING)},
        lambda raw: {"X-HITL-Signature": sign(raw, SIGNING).removeprefix("sha256=")},
        lambda raw: {"X-HITL-Signature": sign(raw, SIGNING)},
        lambda raw: {
            "x-hitl-signature-256": sign(raw, SIGNING).upper().replace("SHA256", "sha256")
        },
    ],
)
def test_a_validly_signed_callback_resolves(env: Env, header: Any) -> None:
    dispatcher, request_id, token = _parked(env)
    env.hitl.reviewer.respond(request_id, True)
    raw = _body(env, request_id)
    assert _post(dispatcher, token, raw, header(raw)) == 202
    assert _decided(env, request_id)


def _refused(env: Env, dispatcher: Dispatcher, request_id: str, status: int) -> None:
    assert status == 401
    assert dispatcher.resolver.stats["fetched"] == 0
    assert not _decided(env, request_id)


def test_forged_signatures_are_refused(env: Env) -> None:
    dispatcher, request_id, token = _parked(env)
    env.hitl.reviewer.respond(request_id, True)
    raw = _body(env, request_id)
    for headers in (
        {},
        {"X-HITL-Signature-256": sign(raw, "some-other-secret")},
        {"X-HITL-Signature-256": "sha256="},
        {"X-HITL-Signature-256": "sha256=" + "0" * 64},
        {"X-HITL-Signature-256": "not hex at all"},
    ):
        _refused(env, dispatcher, request_id, _post(dispatcher, token, raw, headers))


@pytest.mark.parametrize("skew", [-301.0, 301.0, -86_400.0])
def test_stale_or_future_bodies_are_refused(env: Env, skew: float) -> None:
    dispatcher, request_id, token = _parked(env)
    env.hitl.reviewer.respond(request_id, True)
    raw = _body(env, request_id, skew=skew)
    status = _post(dispatcher, token, raw, {"X-HITL-Signature-256": sign(raw, SIGNING)})
    _refused(env, dispatcher, request_id, status)


def test_a_replay_after_the_window_is_refused(env: Env) -> None:
    dispatcher, request_id, token = _parked(env)
    raw = _body(env, request_id)
    headers = {"X-HITL-Signature-256": sign(raw, SIGNING)}
    assert _post(dispatcher, token, raw, headers) == 202  # fresh: accepted (still pending)
    env.clock.advance(301)
    env.hitl.reviewer.respond(request_id, True)
    before = dispatcher.resolver.stats["fetched"]
    assert _post(dispatcher, token, raw, headers) == 401
    assert dispatcher.resolver.stats["fetched"] == before


def test_reordered_or_tampered_bodies_do_not_verify(env: Env) -> None:
    dispatcher, request_id, token = _parked(env)
    env.hitl.reviewer.respond(request_id, True)
    raw = _body(env, request_id)
    signature = {"X-HITL-Signature-256": sign(raw, SIGNING)}
    payload = json.loads(raw)
    reordered = json.dumps(dict(reversed(list(payload.items())))).encode()
    spaced = json.dumps(payload, indent=1).encode()
    tampered = json.dumps({**payload, "status": "cancelled"}).encode()
    for body in (reordered, spaced, tampered, raw + b" "):
        assert json.loads(body)["request_id"] == request_id
        _refused(env, dispatcher, request_id, _post(dispatcher, token, body, signature))


def test_a_signed_body_without_a_timestamp_is_refused(env: Env) -> None:
    dispatcher, request_id, token = _parked(env)
    raw = json.dumps({"request_id": request_id, "status": "completed"}).encode()
    status = _post(dispatcher, token, raw, {"X-HITL-Signature-256": sign(raw, SIGNING)})
    _refused(env, dispatcher, request_id, status)


def test_without_a_secret_unsigned_doorbells_still_work(env: Env) -> None:
    dispatcher, request_id, token = _parked(env)
    dispatcher.receiver.signing_secret = None
    env.hitl.reviewer.respond(request_id, True)
    assert _post(dispatcher, token, json.dumps({"request_id": request_id}).encode(), {}) == 202
    assert _decided(env, request_id)


def test_the_local_servers_own_signed_callback_verifies() -> None:
    raw = b'{"request_id":"65f1234567890abcdef12348","timestamp":"2026-01-01T00:00:30Z"}'
    headers = [
        (b"x-hitl-signature-256", sign(raw, SIGNING).encode()),
        (b"x-hitl-signature", sign(raw, SIGNING).removeprefix("sha256=").encode()),
    ]
    assert signature_valid(raw, headers, SIGNING)
    assert not signature_valid(raw, headers, "")
    assert signed_timestamp(json.loads(raw)) == 1_767_225_630.0
    assert signed_timestamp({"data": {"timestamp": 5}}) == 5.0
    assert signed_timestamp({"timestamp": "yesterday"}) is None


# -- the trust path (opt-in): an authenticated, complete body is the decision ------------------


def test_the_local_servers_signed_callback_resumes_without_a_get_when_trusted(env: Env) -> None:
    dispatcher, request_id, _ = _parked(env)
    dispatcher.receiver.trust_signed_bodies = True
    env.plug(dispatcher)
    env.hitl.server.deliverer._secret = SIGNING  # the server signs its callbacks
    env.hitl.reviewer.respond(request_id, True)
    env.tick()
    assert _decided(env, request_id)
    assert dispatcher.receiver.trusted == 1
    assert dispatcher.resolver.stats["fetched"] == 0  # was one GET per callback


def test_trust_is_off_by_default_and_needs_a_secret(env: Env) -> None:
    dispatcher, request_id, _ = _parked(env)
    env.plug(dispatcher)
    env.hitl.server.deliverer._secret = SIGNING
    env.hitl.reviewer.respond(request_id, True)
    env.tick()
    assert _decided(env, request_id)
    assert dispatcher.receiver.trusted == 0
    assert dispatcher.resolver.stats["fetched"] == 1  # the truth GET, as before


def _complete(env: Env, request_id: str, **overrides: Any) -> bytes:
    payload: dict[str, Any] = {
        "event": "request.completed",
        "request_id": request_id,
        "loop_id": env.hitl.loop_id,
        "status": "completed",
        "response_type": "boolean",
        "response_config": {},
        "default_response": False,
        "response_data": {"boolean": True, "boolean_label": "Yes"},
        "timestamp": _iso(env.clock()),
    }
    payload.update(overrides)
    return json.dumps({k: v for k, v in payload.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    "overrides",
    [
        {"response_type": ...},  # HITL.sh's documented payload has no response_type
        {"response_data": None},
        {"status": "pending"},
        {"response_type": "single_select", "response_config": {}, "response_data": "approve"},
        {"status": "timeout", "response_data": None, "default_response": ...},
    ],
)
def test_an_incomplete_signed_body_takes_the_get(env: Env, overrides: dict[str, Any]) -> None:
    dispatcher, request_id, token = _parked(env)
    dispatcher.receiver.trust_signed_bodies = True
    raw = _complete(env, request_id, **overrides)
    assert _post(dispatcher, token, raw, {"X-HITL-Signature-256": sign(raw, SIGNING)}) == 202
    assert dispatcher.receiver.trusted == 0
    assert dispatcher.resolver.stats["fetched"] == 1
    assert not _decided(env, request_id)  # the GET says pending


def test_a_trusted_body_for_another_loop_decides_nothing(env: Env) -> None:
    dispatcher, request_id, token = _parked(env)
    dispatcher.receiver.trust_signed_bodies = True
    raw = _complete(env, request_id, loop_id="65f1234567890abcdef99999")
    assert _post(dispatcher, token, raw, {"X-HITL-Signature-256": sign(raw, SIGNING)}) == 202
    assert not _decided(env, request_id)


def test_unsigned_complete_bodies_are_never_trusted(env: Env) -> None:
    dispatcher, request_id, token = _parked(env)
    dispatcher.receiver.signing_secret = None
    dispatcher.receiver.trust_signed_bodies = True
    assert _post(dispatcher, token, _complete(env, request_id), {}) == 202
    assert dispatcher.receiver.trusted == 0
    assert not _decided(env, request_id)  # the GET says pending


def test_the_keepers_callbacks_config_turns_verification_on(tmp_path: Any) -> None:
    """The signing secret is a setting (CallbackConfig, worker/bridge --signing-secret,
    HITL_SIGNING_SECRET), not only an attribute to patch after construction."""
    from click.testing import CliRunner

    from hitl_agent import CallbackConfig, Gatekeeper
    from hitl_agent.cli import main
    from hitl_agent.testing import local_hitl

    with local_hitl() as hitl:
        keeper = Gatekeeper(
            client=hitl.client,
            loop_id=hitl.loop_id,
            ledger=f"sqlite:///{tmp_path}/l.db",
            callbacks=CallbackConfig(
                "http://127.0.0.1:8010/hitl", "x" * 32, signing_secret=SIGNING
            ),
        )
        with keeper:
            dispatcher = keeper.dispatcher()
            assert dispatcher.receiver.signing_secret == SIGNING
            assert dispatcher.callbacks.signing_secret == SIGNING
            assert SIGNING not in repr(dispatcher.callbacks) + repr(keeper.callbacks)
            with TestClient(dispatcher.asgi_app) as client:
                unsigned = client.post("/hitl/anything", json={"request_id": "r"})
            assert unsigned.status_code == 401
    options = CliRunner().invoke(main, ["worker", "--help"]).output
    assert "--signing-secret" in options and "HITL_SIGNING_SECRET" in options
