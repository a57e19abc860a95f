"""Every error class, sync and async: status mapping, envelope fields, wrapped transport errors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

import hitl_agent
from hitl_agent import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    HITLError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RetryPolicy,
)
from hitl_agent._http import HTTP_ERRORS

from . import documented as doc
from .conftest import TEST_KEY, Harness, respond

pytestmark = pytest.mark.anyio

NO_RETRY = RetryPolicy(max_retries=0)


@pytest.mark.parametrize(
    ("status", "body", "cls", "msg", "data"),
    [
        (400, doc.VALIDATION_FAILED, BadRequestError, "Validation failed",
         "timeout_seconds is required for time-sensitive requests"),
        (401, doc.UNAUTHORIZED, AuthenticationError, "Invalid authorization token", None),
        (403, doc.FORBIDDEN, PermissionDeniedError, "Only loop creators can create requests",
         None),
        (404, doc.NOT_FOUND, NotFoundError, "Request not found", None),
        (409, doc.CONFLICT, ConflictError, "Turn already resolved", None),
        (429, doc.RATE_LIMITED, RateLimitError, "API key request limit exceeded",
         doc.RATE_LIMITED["data"]),
        (500, doc.SERVER_ERROR, InternalServerError, "Internal server error", None),
        (503, doc.UNAVAILABLE, InternalServerError, "Service temporarily unavailable", None),
        (422, {"error": True, "msg": "Unprocessable"}, APIStatusError, "Unprocessable", None),
    ],
)  # fmt: skip
async def test_status_maps_to_its_class(
    status: int,
    body: dict[str, object],
    cls: type[APIStatusError],
    msg: str,
    data: object,
    make: Callable[..., Harness],
) -> None:
    api = make(respond(status, body), retry=NO_RETRY)
    with pytest.raises(cls) as caught:
        await api.call("requests.get", doc.REQUEST_ID)
    err = caught.value
    assert type(err) is cls
    assert (err.status_code, err.msg, err.data) == (status, msg, data)
    assert msg in str(err) and str(status) in str(err)
    if isinstance(data, str):
        assert data in str(err)  # string ``data`` says what failed: show it
    assert err.response.status_code == status
    assert err.request is not None and err.request.url.path.endswith(doc.REQUEST_ID)
    assert isinstance(err, APIError) and isinstance(err, HITLError)


async def test_rate_limit_error_carries_the_documented_figures(
    make: Callable[..., Harness],
) -> None:
    api = make(respond(429, doc.RATE_LIMITED), retry=NO_RETRY)
    with pytest.raises(RateLimitError) as caught:
        await api.call("requests.get", doc.REQUEST_ID)
    err = caught.value
    assert (err.usage_count, err.usage_limit, err.remaining) == (100, 100, 0)
    assert err.reset_at == datetime(2024, 3, 15, 11, tzinfo=UTC)


async def test_rate_limit_error_falls_back_to_headers(make: Callable[..., Harness]) -> None:
    # The introduction's copy of the 429 body has no reset_at; the headers have it.
    headers = {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0",
               "X-RateLimit-Reset": "1710500400"}  # fmt: skip
    body = {"error": True, "msg": "API rate limit exceeded"}
    api = make(respond(429, body, headers=headers), retry=NO_RETRY)
    with pytest.raises(RateLimitError) as caught:
        await api.call("loops.list")
    err = caught.value
    assert (err.usage_count, err.usage_limit, err.remaining) == (None, 100, 0)
    assert err.reset_at == datetime.fromtimestamp(1710500400, tz=UTC)


async def test_error_true_in_a_2xx_body_raises(make: Callable[..., Harness]) -> None:
    api = make(respond(200, {"error": True, "msg": "No active members found in the loop"}))
    with pytest.raises(APIStatusError, match="No active members found") as caught:
        await api.call("loops.list")
    assert caught.value.status_code == 200


async def test_non_json_error_page_is_a_status_error(make: Callable[..., Harness]) -> None:
    api = make(respond(502, "<html>Bad Gateway</html>"), retry=NO_RETRY)
    with pytest.raises(InternalServerError, match="Bad Gateway") as caught:
        await api.call("loops.list")
    assert (caught.value.status_code, caught.value.data) == (502, None)


@pytest.mark.parametrize(
    ("call", "body"),
    [
        ("requests.get", "not json"),
        ("requests.get", ["a", "list"]),
        ("requests.list", {"error": False, "msg": "ok", "data": {"requests": "nope"}}),
        ("requests.get", {"error": False, "msg": "ok", "data": {"request": {"status": "x"}}}),
    ],
    ids=["text", "list", "bad-field", "no-id"],
)
async def test_malformed_success_is_a_response_validation_error(
    call: str, body: object, make: Callable[..., Harness]
) -> None:
    api = make(respond(200, body))
    with pytest.raises(APIResponseValidationError) as caught:
        await api.call(call, *(["x"] if call == "requests.get" else []))
    assert caught.value.status_code == 200
    assert "HTTP 200" in str(caught.value)


@pytest.mark.parametrize(
    ("raised", "cls"),
    [
        (httpx.ConnectError("connection refused"), APIConnectionError),
        (httpx.ReadError("connection reset"), APIConnectionError),
        (httpx.RemoteProtocolError("peer closed connection"), APIConnectionError),
        (httpx.ConnectTimeout("connect timed out"), APITimeoutError),
        (httpx.ReadTimeout("read timed out"), APITimeoutError),
        (httpx.PoolTimeout("pool timed out"), APITimeoutError),
        (httpx.UnsupportedProtocol("ftp is not supported"), APIConnectionError),
        (httpx.DecodingError("bad gzip"), APIConnectionError),
    ],
)
async def test_transport_errors_never_escape_raw(
    raised: Exception, cls: type[APIConnectionError], make: Callable[..., Harness]
) -> None:
    api = make(raised, retry=NO_RETRY)
    with pytest.raises(cls) as caught:
        await api.call("loops.get", doc.LOOP_ID)
    err = caught.value
    assert type(err) is cls
    assert not isinstance(err, HTTP_ERRORS)
    assert getattr(err.__cause__, "translated_from", err.__cause__) is raised
    assert err.request is not None and err.request.method == "GET"
    assert f"/v1/api/loops/{doc.LOOP_ID}" in str(err)


async def test_create_timeout_says_the_request_may_exist(make: Callable[..., Harness]) -> None:
    api = make(httpx.ReadTimeout("read timed out"))
    with pytest.raises(APITimeoutError, match="may have been created"):
        await api.call(
            "requests.create",
            doc.LOOP_ID,
            request_text="x",
            response_type="boolean",
            default_response=False,
            timeout_seconds=60,
        )


def test_every_error_class_is_exported_from_the_root() -> None:
    for name in [
        "HITLError", "APIError", "APIStatusError", "BadRequestError", "AuthenticationError",
        "PermissionDeniedError", "NotFoundError", "ConflictError", "RateLimitError",
        "InternalServerError", "APIConnectionError", "APITimeoutError",
        "APIResponseValidationError", "ConfigError", "ResponseShapeError",
    ]:  # fmt: skip
        cls = getattr(hitl_agent, name)
        assert issubclass(cls, HITLError), name
        assert name in hitl_agent.__all__


async def test_error_messages_and_reprs_hold_no_key(make: Callable[..., Harness]) -> None:
    errors: list[BaseException] = []
    for answer in [respond(401, doc.UNAUTHORIZED), httpx.ConnectError(f"boom {TEST_KEY}")]:
        api = make(answer, retry=NO_RETRY)
        with pytest.raises(APIError) as caught:
            await api.call("test")
        errors.append(caught.value)
    for err in errors:
        assert TEST_KEY not in str(err)
        assert TEST_KEY not in repr(err)
        assert "***" in str(err) or isinstance(err, AuthenticationError)
