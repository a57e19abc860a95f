"""Retry and quota policy through both clients: a create is never sent twice when it may exist."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from hitl_agent import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ConfigError,
    InternalServerError,
    RateLimitError,
    RetryPolicy,
)
from hitl_agent._retry import rate_limit_wait

from . import documented as doc
from .conftest import Harness, respond

pytestmark = pytest.mark.anyio

CREATE: dict[str, Any] = {
    "request_text": "Refund $120 to order 981?",
    "response_type": "single_select",
    "response_config": {"options": ["Approve", "Reject"]},
    "default_response": "reject",
    "timeout_seconds": 600,
}


async def _create(api: Harness) -> Any:
    return await api.call("requests.create", doc.LOOP_ID, **CREATE)


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (httpx.ReadTimeout("read timed out"), APITimeoutError),
        (httpx.WriteTimeout("write timed out"), APITimeoutError),
        (httpx.RemoteProtocolError("Server disconnected without a response."), APIConnectionError),
        (httpx.ReadError("connection reset by peer"), APIConnectionError),
        ((500, doc.SERVER_ERROR, {}), InternalServerError),
        ((503, doc.UNAVAILABLE, {}), InternalServerError),
        ((429, doc.RATE_LIMITED, {"Retry-After": "1"}), RateLimitError),
        ((408, {"error": True, "msg": "Request Timeout"}, {}), APIStatusError),
    ],
    ids=["read-timeout", "write-timeout", "protocol", "reset", "500", "503", "429", "408"],
)
async def test_create_that_may_have_arrived_is_sent_exactly_once(
    failure: Exception | tuple[int, Any, dict[str, str]],
    expected: type[Exception],
    make: Callable[..., Harness],
    sleeps: list[float],
) -> None:
    answer = failure if isinstance(failure, Exception) else respond(
        failure[0], failure[1], headers=failure[2]
    )  # fmt: skip
    api = make(answer, respond(201, doc.REQUEST_CREATED), retry=RetryPolicy(max_retries=5))
    with pytest.raises(expected) as caught:
        await _create(api)
    assert type(caught.value) is expected
    assert len(api.recorder.seen) == 1
    assert sleeps == []


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.PoolTimeout("no free connection"),
    ],
    ids=["connect-error", "connect-timeout", "pool-timeout"],
)
async def test_create_that_never_left_is_retried(
    failure: Exception, make: Callable[..., Harness], sleeps: list[float]
) -> None:
    api = make(failure, failure, respond(201, doc.REQUEST_CREATED))
    created = await _create(api)
    assert created.request_id == doc.REQUEST_ID
    assert len(api.recorder.seen) == 3
    assert len(sleeps) == 2
    # The same body went out each time.
    assert api.recorder.body(0) == api.recorder.body(2)


async def test_create_connect_errors_give_up_after_max_retries(
    make: Callable[..., Harness], sleeps: list[float]
) -> None:
    api = make(httpx.ConnectError("refused"), retry=RetryPolicy(max_retries=2))
    with pytest.raises(APIConnectionError) as caught:
        await _create(api)
    assert not isinstance(caught.value, APITimeoutError)
    assert len(api.recorder.seen) == 3
    assert len(sleeps) == 2


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("peer closed"),
        httpx.ConnectError("refused"),
        (500, doc.SERVER_ERROR),
        (502, "<html>bad gateway</html>"),
        (408, {"error": True, "msg": "Request Timeout"}),
    ],
    ids=["read-timeout", "protocol", "connect", "500", "502", "408"],
)
@pytest.mark.parametrize("call", ["requests.get", "requests.cancel"])
async def test_get_and_delete_are_retried_on_transient_failures(
    failure: Exception | tuple[int, Any],
    call: str,
    make: Callable[..., Harness],
    sleeps: list[float],
) -> None:
    answer = failure if isinstance(failure, Exception) else respond(*failure)
    final = doc.REQUEST_GET_COMPLETED if call == "requests.get" else doc.CANCEL_PENDING
    api = make(answer, respond(200, final))
    result = await api.call(call, doc.REQUEST_ID)
    assert len(api.recorder.seen) == 2
    assert len(sleeps) == 1
    assert result is not None


async def test_backoff_is_exponential_with_jitter_and_capped(
    make: Callable[..., Harness], sleeps: list[float]
) -> None:
    policy = RetryPolicy(max_retries=5, initial_delay=1.0, max_delay=4.0)
    api = make(respond(500, doc.SERVER_ERROR), retry=policy)
    with pytest.raises(InternalServerError):
        await api.call("requests.get", doc.REQUEST_ID)
    assert len(api.recorder.seen) == 6
    ceilings = [1.0, 2.0, 4.0, 4.0, 4.0]
    assert len(sleeps) == 5
    for waited, ceiling in zip(sleeps, ceilings, strict=True):
        assert 0.75 * ceiling <= waited <= ceiling


async def test_non_transient_statuses_are_not_retried(
    make: Callable[..., Harness], sleeps: list[float]
) -> None:
    for status, body in [(400, doc.VALIDATION_FAILED), (401, doc.UNAUTHORIZED),
                         (403, doc.FORBIDDEN), (404, doc.NOT_FOUND)]:  # fmt: skip
        api = make(respond(status, body))
        with pytest.raises(Exception):  # noqa: B017 - the class is checked in test_errors
            await api.call("requests.get", doc.REQUEST_ID)
        assert len(api.recorder.seen) == 1
    assert sleeps == []


async def test_429_on_get_waits_for_the_reset_within_the_cap(
    make: Callable[..., Harness], sleeps: list[float]
) -> None:
    reset = int(time.time()) + 30
    limited = respond(
        429,
        doc.RATE_LIMITED,
        headers={"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0",
                 "X-RateLimit-Reset": str(reset)},
    )  # fmt: skip
    fresh = respond(
        200,
        doc.REQUEST_GET_COMPLETED,
        headers={"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "99",
                 "X-RateLimit-Reset": str(reset + 3600)},
    )  # fmt: skip
    api = make(limited, fresh, retry=RetryPolicy(rate_limit_wait_cap=60))
    request = await api.call("requests.get", doc.REQUEST_ID)
    assert request.status == "completed"
    assert len(api.recorder.seen) == 2
    assert len(sleeps) == 1 and 28 <= sleeps[0] <= 30
    assert api.client.rate_limit is not None and api.client.rate_limit.remaining == 99


async def test_429_beyond_the_cap_raises_at_once_with_the_figures(
    make: Callable[..., Harness], sleeps: list[float]
) -> None:
    reset = int(time.time()) + 3600
    limited = respond(
        429,
        doc.RATE_LIMITED,
        headers={"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0",
                 "X-RateLimit-Reset": str(reset)},
    )  # fmt: skip
    api = make(limited, retry=RetryPolicy(rate_limit_wait_cap=60, max_retries=5))
    with pytest.raises(RateLimitError) as caught:
        await api.call("requests.list")
    err = caught.value
    assert len(api.recorder.seen) == 1 and sleeps == []
    assert (err.usage_count, err.usage_limit, err.remaining) == (100, 100, 0)
    assert err.reset_at == datetime(2024, 3, 15, 11, tzinfo=UTC)  # the body's own figure
    # The quota state is visible on the client too.
    assert api.client.rate_limit is not None
    assert api.client.rate_limit.remaining == 0
    assert api.client.rate_limit.reset_at == datetime.fromtimestamp(reset, tz=UTC)


async def test_429_without_reset_header_backs_off_then_raises(
    make: Callable[..., Harness], sleeps: list[float]
) -> None:
    api = make(respond(429, doc.RATE_LIMITED), retry=RetryPolicy(max_retries=2))
    with pytest.raises(RateLimitError):
        await api.call("requests.get", doc.REQUEST_ID)
    assert len(api.recorder.seen) == 3 and len(sleeps) == 2


def test_rate_limit_wait_reads_reset_then_retry_after() -> None:
    now = datetime.fromtimestamp(1_000_000, tz=UTC)
    assert rate_limit_wait(httpx.Headers({"X-RateLimit-Reset": "1000030"}), now=now) == 30
    assert rate_limit_wait(httpx.Headers({"X-RateLimit-Reset": "999000"}), now=now) == 0
    assert rate_limit_wait(httpx.Headers({"Retry-After": "12"}), now=now) == 12
    assert rate_limit_wait(httpx.Headers({"X-RateLimit-Reset": "soon", "Retry-After": "5"}),
                           now=now) == 5  # fmt: skip
    assert rate_limit_wait(httpx.Headers({"Retry-After": "Wed, 21 Oct 2015"}), now=now) is None
    assert rate_limit_wait(httpx.Headers(), now=now) is None


def test_policy_never_retries_post_after_a_response_or_an_ambiguous_error() -> None:
    policy = RetryPolicy(max_retries=3)
    now = datetime.now(UTC)
    request = httpx.Request("POST", "https://api.hitl.sh/v1/api/loops/x/requests")
    for status in (408, 429, 500, 502, 503, 504):
        response = httpx.Response(status, request=request, headers={"Retry-After": "0"})
        assert policy.delay_after_response("POST", response, 0, now=now) is None
        assert policy.delay_after_response("GET", response, 0, now=now) is not None
    for error in (httpx.ReadTimeout("t"), httpx.WriteTimeout("t"), httpx.ReadError("r"),
                  httpx.RemoteProtocolError("p"), httpx.WriteError("w")):  # fmt: skip
        assert policy.delay_after_error("POST", error, 0) is None
        assert policy.delay_after_error("GET", error, 0) is not None
    for never_sent in (httpx.ConnectError("c"), httpx.ConnectTimeout("c"), httpx.PoolTimeout("p")):
        assert policy.delay_after_error("POST", never_sent, 0) is not None
    # Configuration errors are not transient, whatever the method.
    assert policy.delay_after_error("GET", httpx.UnsupportedProtocol("ftp"), 0) is None
    assert policy.delay_after_error("GET", ValueError("bug"), 0) is None
    assert policy.delay_after_error("GET", httpx.ReadTimeout("t"), 3) is None


@pytest.mark.parametrize(
    "field", ["max_retries", "initial_delay", "max_delay", "rate_limit_wait_cap"]
)
def test_policy_refuses_negative_figures(field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RetryPolicy(**{field: -1})
    assert caught.value.field == field


_FAILURES: dict[str, Callable[[], Any]] = {
    "502": lambda: respond(502, doc.SERVER_ERROR),
    "reset": lambda: httpx.ReadError("connection reset by peer"),
    "429": lambda: respond(429, doc.RATE_LIMITED, headers={"Retry-After": "1"}),
}


@pytest.mark.parametrize("kind", list(_FAILURES))
async def test_a_meter_sees_every_attempt_and_may_refuse_a_retry(
    kind: str, make: Callable[..., Harness], sleeps: list[float]
) -> None:
    """Issue 20 F10: each attempt (retries included) reaches the active AttemptMeter, in both
    clients and on both HTTP stacks; a retry it refuses is not sent (nor waited for)."""
    from hitl_agent._base_client import AttemptMeter

    api = make(_FAILURES[kind](), respond(200, doc.REQUEST_GET_COMPLETED))
    with AttemptMeter() as meter:
        assert (await api.call("requests.get", doc.REQUEST_ID)).status == "completed"
    assert meter.attempts == len(api.recorder.seen) == 2 and meter.refused == 0

    failure = _FAILURES[kind]()
    refusing = make(failure, respond(200, doc.REQUEST_GET_COMPLETED))
    sleeps.clear()
    expected = APIConnectionError if isinstance(failure, Exception) else APIStatusError
    with AttemptMeter(admit_retry=lambda: False) as meter, pytest.raises(expected):
        await refusing.call("requests.get", doc.REQUEST_ID)
    assert meter.attempts == len(refusing.recorder.seen) == 1 and meter.refused == 1
    assert sleeps == []


async def test_a_429_with_only_retry_after_names_its_reset(
    make: Callable[..., Harness], sleeps: list[float]
) -> None:
    """Issue 20 F11: the budget blocks for Retry-After, not its 60 s fallback."""
    date = "Wed, 15 Jan 2025 10:00:00 GMT"
    api = make(respond(429, {"error": True, "msg": "slow down"},
                       headers={"Retry-After": "600", "Date": date}))  # fmt: skip
    with pytest.raises(RateLimitError) as caught:
        await api.call("requests.get", doc.REQUEST_ID)
    assert caught.value.reset_at == datetime(2025, 1, 15, 10, 10, tzinfo=UTC)
    assert len(api.recorder.seen) == 1  # 600 s is beyond the wait cap: raised at once
