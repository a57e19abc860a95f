"""Bad input on every endpoint: a clear 4xx naming the field and the fix, and nothing stored."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Env, request_body

LOOP = "{loop}"
REQ = "{request}"


def _case(
    method: str, path: str, msg: str, needle: str | None, status: int = 400, **kw: Any
) -> Any:
    return pytest.param(method, path, kw, status, msg, needle, id=f"{method} {path} {needle}")


API_CASES = [
    # POST /loops
    _case("POST", "/api/loops", "Invalid request body", "not valid JSON", content=b"{name:"),
    _case("POST", "/api/loops", "Invalid request body", "empty", content=b""),
    _case("POST", "/api/loops", "Invalid request body", "JSON object", json=["x"]),
    _case("POST", "/api/loops", "Validation failed", "name: required", json={"icon": "eye"}),
    _case("POST", "/api/loops", "Validation failed", "name", json={"name": 5}),
    _case("POST", "/api/loops", "Validation failed", "name", json={"name": "x" * 101}),
    _case("POST", "/api/loops", "Validation failed", "colour: unknown field",
          json={"name": "L", "colour": "red"}),
    # PUT /loops/{id}
    _case("PUT", f"/api/loops/{LOOP}", "Invalid request body", "not valid JSON", content=b"nope"),
    _case("PUT", f"/api/loops/{LOOP}", "At least one field must be provided for update",
          "at least one", json={}),
    _case("PUT", f"/api/loops/{LOOP}", "Validation failed", "description",
          json={"description": "d" * 501}),
    _case("PUT", "/api/loops/xyz", "Invalid loop ID format", "24-character", json={"name": "n"}),
    # POST /loops/{id}/requests
    _case("POST", f"/api/loops/{LOOP}/requests", "Invalid request body", "not valid JSON",
          content=b'{"request_text": '),
    _case("POST", f"/api/loops/{LOOP}/requests", "Invalid request body", "NaN",
          content=b'{"request_text": NaN}'),
    _case("POST", f"/api/loops/{LOOP}/requests", "Invalid request body", "JSON object", json=[1]),
    _case("POST", f"/api/loops/{LOOP}/requests", "Validation failed", "request_text",
          json=request_body(request_text="")),
    _case("POST", f"/api/loops/{LOOP}/requests", "Validation failed", "request_text",
          json=request_body(request_text=7)),
    _case("POST", f"/api/loops/{LOOP}/requests", "Validation failed", "priority",
          json=request_body(priority="urgent")),
    _case("POST", f"/api/loops/{LOOP}/requests",
          "timeout_seconds is required for time-sensitive requests", "timeout_seconds",
          json=request_body(timeout_seconds=None)),
    _case("POST", f"/api/loops/{LOOP}/requests", "Validation failed", "timeout_seconds",
          json=request_body(timeout_seconds=10)),
    _case("POST", f"/api/loops/{LOOP}/requests", "Invalid response configuration",
          "response_config.options", json=request_body(response_config={})),
    _case("POST", f"/api/loops/{LOOP}/requests", "Invalid response configuration",
          "response_type", json=request_body(response_type="emoji")),
    _case("POST", f"/api/loops/{LOOP}/requests", "Validation failed", "default_response",
          json=request_body(default_response="maybe")),
    _case("POST", f"/api/loops/{LOOP}/requests", "Validation failed", "callback_url",
          json=request_body(callback_url="ftp://x")),
    _case("POST", f"/api/loops/{LOOP}/requests", "Validation failed", "default_response",
          json=request_body(default_response="Maybe")),
    _case("POST", f"/api/loops/{LOOP}/requests", "Validation failed", "image_url",
          json=request_body(type="image")),
    _case("POST", "/api/loops/123/requests", "Invalid loop ID format", "loop_id",
          json=request_body()),
    _case("POST", "/api/loops/0123456789abcdef01234567/requests", "Loop not found", None,
          status=404, json=request_body()),
    # GET /requests
    _case("GET", "/api/requests", "Invalid status filter value", "status must be one of",
          params={"status": "done"}),
    _case("GET", "/api/requests", "Invalid priority filter value", "priority",
          params={"priority": "p0"}),
    _case("GET", "/api/requests", "Invalid pagination parameters", "limit",
          params={"limit": 0}),
    _case("GET", "/api/requests", "Invalid pagination parameters", "limit",
          params={"limit": 101}),
    _case("GET", "/api/requests", "Invalid pagination parameters", "offset",
          params={"offset": -1}),
    _case("GET", "/api/requests", "Invalid pagination parameters", "limit",
          params={"limit": "ten"}),
    _case("GET", "/api/requests", "Invalid sort value", "sort", params={"sort": "newest"}),
    _case("GET", "/api/requests", "Invalid loop ID format", "loop_id", params={"loop_id": "x"}),
    # GET / DELETE /requests/{id}
    _case("GET", "/api/requests/nope", "Invalid request ID format", "request_id"),
    _case("DELETE", "/api/requests/nope", "Invalid request ID format", "request_id"),
    _case("GET", "/api/requests/0123456789abcdef01234567", "Request not found", None, status=404),
    # POST /requests/{id}/feedback
    _case("POST", f"/api/requests/{REQ}/feedback", "Invalid request body", "not valid JSON",
          content=b"{"),
    _case("POST", f"/api/requests/{REQ}/feedback", "Invalid request body", "feedback: required",
          json={"rating": 5}),
    _case("POST", f"/api/requests/{REQ}/feedback", "Invalid request body", "note: unknown field",
          json={"feedback": {"rating": 5}, "note": "x"}),
    _case("POST", f"/api/requests/{REQ}/feedback", "Rating values must be between 1 and 5",
          "feedback.rating", json={"feedback": {"rating": 9}}),
    _case("POST", f"/api/requests/{REQ}/feedback",
          "Comment exceeds maximum length of 1000 characters", "feedback.comment",
          json={"feedback": {"comment": "c" * 1001}}),
    _case("POST", f"/api/requests/{REQ}/feedback", "Validation failed", "feedback",
          json={"feedback": {}}),
    # Members
    _case("GET", "/api/loops/bad/members", "Invalid loop ID format", "loop_id"),
    _case("DELETE", f"/api/loops/{LOOP}/members/0123456789abcdef01234567",
          "Member not found in this loop", None, status=404),
    _case("DELETE", f"/api/loops/{LOOP}/members/{{owner}}", "Loop creator cannot be removed",
          "creator"),
    _case("DELETE", "/api/loops/0123456789abcdef01234567", "Loop not found", None, status=404),
]  # fmt: skip

REVIEWER_CASES = [
    _case("POST", f"/requests/{REQ}/respond", "Invalid request body", "not valid JSON",
          content=b"{response_data: 1}"),
    _case("POST", f"/requests/{REQ}/respond", "Invalid request body", "response_data: required",
          json={"answer": "approve"}),
    _case("POST", f"/requests/{REQ}/respond", "Invalid request body", "note: unknown field",
          json={"response_data": "approve", "note": 1}),
    _case("POST", f"/requests/{REQ}/respond", "Invalid response", "response_data",
          json={"response_data": ["approve"]}),
    _case("POST", "/requests/bad-id/respond", "Invalid request ID format", "request_id",
          json={"response_data": "approve"}),
    _case("POST", "/requests/bad-id/claim", "Invalid request ID format", "request_id"),
    _case("POST", "/requests/0123456789abcdef01234567/claim", "Request not found", None,
          status=404),
    _case("GET", "/queue", "Invalid pagination parameters", "limit", params={"limit": 500}),
]  # fmt: skip


def _setup(env: Env) -> dict[str, str]:
    completed = env.create()
    owner = env.api("GET", f"/api/loops/{env.creds.loop_id}").json()["data"]["loop"]["creator_id"]
    return {"loop": env.creds.loop_id, "request": completed, "owner": owner}


@pytest.mark.parametrize(("method", "path", "kw", "status", "msg", "needle"), API_CASES)
def test_api_rejects_bad_input_clearly_and_stores_nothing(
    env: Env, method: str, path: str, kw: dict[str, Any], status: int, msg: str, needle: str | None
) -> None:
    ids = _setup(env)
    if "feedback" in path:
        env.rev("POST", f"/requests/{ids['request']}/respond", json={"response_data": "approve"})
    before = env.counts()
    before_request = env.get(ids["request"])
    response = env.api(method, path.format(**ids), **kw)
    body = response.json()
    assert (response.status_code, body["error"], body["msg"]) == (status, True, msg), body
    if needle is not None:
        assert isinstance(body["data"], str) and needle in body["data"], body
    assert env.counts() == before
    assert env.get(ids["request"]) == before_request


@pytest.mark.parametrize(("method", "path", "kw", "status", "msg", "needle"), REVIEWER_CASES)
def test_reviewer_api_rejects_bad_input_clearly_and_stores_nothing(
    env: Env, method: str, path: str, kw: dict[str, Any], status: int, msg: str, needle: str | None
) -> None:
    ids = _setup(env)
    before = env.counts()
    before_request = env.get(ids["request"])
    response = env.rev(method, path.format(**ids), **kw)
    body = response.json()
    assert (response.status_code, body["error"], body["msg"]) == (status, True, msg), body
    if needle is not None:
        assert isinstance(body["data"], str) and needle in body["data"], body
    assert env.counts() == before
    assert env.get(ids["request"]) == before_request


def test_unknown_route_and_method_get_the_envelope(env: Env) -> None:
    missing = env.api("GET", "/api/nothing")
    assert (missing.status_code, missing.json()) == (404, {"error": True, "msg": "Not found"})
    wrong = env.api("PATCH", "/api/requests")
    assert wrong.status_code == 405
    assert wrong.json()["error"] is True
