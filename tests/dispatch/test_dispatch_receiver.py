"""The webhook receiver: documented shapes accepted, everything else 4xx with no state change."""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from hitl_harness import SECRET, Env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from hitl_agent._tokens import derive_token
from hitl_agent.dispatch import MAX_BODY_BYTES, Dispatcher, extract_request_id


def _parked(env: Env) -> tuple[Dispatcher, str, str]:
    """A blocking-style pending row (no thread) with its request id and valid token."""
    from hitl_agent.gate import ReviewSpec, ensure_request

    spec = ReviewSpec.build("Allow?")
    row = ensure_request(env.keeper._target, env.hitl.client, "fuzz-key", spec)
    assert row.request_id is not None
    return env.keeper.dispatcher(), row.request_id, derive_token(SECRET, "fuzz-key")


@pytest.mark.parametrize(
    "shape",
    [
        lambda rid: {"event": "request.completed", "request_id": rid, "status": "completed"},
        lambda rid: {"event": "request.completed", "data": {"request_id": rid}},
        lambda rid: {"event": "request.completed", "data": {"request": {"id": rid}}},
        lambda rid: {"status": "timeout", "request_id": rid, "response_data": None},
        lambda rid: {"request_id": rid},
    ],
)
def test_documented_shapes_are_accepted_and_resolved_from_get(env: Env, shape: Any) -> None:
    dispatcher, request_id, token = _parked(env)
    env.hitl.reviewer.respond(request_id, True)
    with TestClient(dispatcher.asgi_app) as client:
        response = client.post(f"/hitl/{token}", json=shape(request_id))
    assert response.status_code == 202
    row = env.ledger.get_by_request_id(request_id)
    assert row is not None and row.decision is not None and row.decision["approved"] is True


def test_bad_requests_get_4xx_and_change_nothing(env: Env) -> None:
    dispatcher, request_id, token = _parked(env)
    env.hitl.reviewer.respond(request_id, True)
    body = {"request_id": request_id}
    with TestClient(dispatcher.asgi_app) as client:
        cases = [
            client.post(f"/hitl/{'0' * 64}", json=body).status_code,
            client.post(f"/hitl/{token}", json={"request_id": "unknown"}).status_code,
            client.post(f"/hitl/{token}", content=b"{nope").status_code,
            client.post(f"/hitl/{token}", json=[1, 2]).status_code,
            client.post(f"/hitl/{token}", content=b"x" * (MAX_BODY_BYTES + 1)).status_code,
            client.get(f"/hitl/{token}").status_code,
            client.post("/elsewhere", json=body).status_code,
            client.post(f"/hitl/{token}/extra", json=body).status_code,
        ]
    assert cases == [404, 404, 400, 400, 413, 405, 404, 404]
    row = env.ledger.get_by_request_id(request_id)
    assert row is not None and row.state == "pending"
    assert dispatcher.resolver.stats["fetched"] == 0


def test_extract_request_id() -> None:
    assert extract_request_id({"data": {"request": {"id": "a"}}}) == "a"
    assert extract_request_id({"request_id": 5, "data": {"request_id": "b"}}) == "b"
    assert extract_request_id("x") is None
    assert extract_request_id({"request_id": "x" * 500}) is None


_URL_CHARS = string.ascii_letters + string.digits + "/-_.~%"
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.text(alphabet=_URL_CHARS, max_size=80).map(lambda p: "/" + p.lstrip("/"))
    | st.text(alphabet="0123456789abcdef", max_size=70).map(lambda t: "/hitl/" + t),
    body=st.binary(max_size=200) | _json.map(lambda v: json.dumps(v).encode()),
    with_real_id=st.booleans(),
    method=st.sampled_from(["POST", "POST", "PUT", "GET"]),
)
def test_fuzz_never_500_and_never_changes_state_without_the_token(
    env: Env, path: str, body: bytes, with_real_id: bool, method: str
) -> None:
    if "parked" not in env.extra:
        env.extra["parked"] = _parked(env)
        env.hitl.reviewer.respond(env.extra["parked"][1], True)
    dispatcher, request_id, token = env.extra["parked"]
    if with_real_id:
        body = json.dumps({"request_id": request_id, "status": "completed"}).encode()
    if token in path:
        path = path.replace(token, "")
    with TestClient(dispatcher.asgi_app, raise_server_exceptions=True) as client:
        response = client.request(method, path, content=body)
    assert 400 <= response.status_code < 500
    row = env.ledger.get_by_request_id(request_id)
    assert row is not None and row.state == "pending"
