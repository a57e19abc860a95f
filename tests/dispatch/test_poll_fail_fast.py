"""Issue 17 item 4 for the dispatcher's own poll loop (``run_poller``, no in-process waiters).

Persistent sweep failures (see ``hitl_agent._poll_health``) are logged once at ERROR when
the third in a row makes ``dispatcher.poll_error`` a PollingError, back off (doubling, up to
5 minutes) instead of repeating every interval, and clear on the first sweep that gets an
answer again. Transient ones keep the schedule, and never set ``poll_error``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import httpx2
import pytest
from hitl_harness import Env, Fault, Switch, switched_client

from hitl_agent import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    PollingError,
    RateLimitError,
    ResponseShapeError,
)
from hitl_agent._poll_health import MAX_BACKOFF, PollHealth, is_transient
from hitl_agent.dispatch import CallBudget, Dispatcher
from hitl_agent.gate import ensure_request
from hitl_agent.gate._blocking import BlockingResumer, WaitHub


def _status(code: int) -> Fault:
    return lambda request: httpx2.Response(code, json={"error": True, "msg": "no", "data": None})


def _type_error(request: httpx2.Request) -> httpx2.Response:
    raise TypeError("the HTTP stack is broken")


@pytest.fixture
def rig(env: Env) -> Iterator[tuple[Switch, Dispatcher]]:
    """A dispatcher over a switchable client, with one open request to poll for."""
    spec = env.keeper.spec("Deploy?")
    ensure_request(env.keeper._target, env.hitl.client, "pff-1", spec)
    with switched_client(env) as (transport, client):
        dispatcher = Dispatcher(
            ledger=env.ledger,
            client=client,
            resumer=BlockingResumer(WaitHub(autostart=False)),
            loop_id=env.hitl.loop_id,
            clock=env.clock,
            budget=CallBudget(limit=10**6, clock=env.clock),
        )
        yield transport, dispatcher


async def _run_for(dispatcher: Dispatcher, seconds: float, interval: float) -> None:
    task = asyncio.create_task(dispatcher.run_poller(interval=interval))
    await asyncio.sleep(seconds)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def _records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "hitl_agent.dispatch" and r.levelno == level]


@pytest.mark.parametrize("fault", ["401", "type-error"])
def test_a_persistent_failure_is_logged_once_backs_off_and_is_surfaced(
    rig: tuple[Switch, Dispatcher], caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    transport, dispatcher = rig
    transport.fault = _status(401) if fault == "401" else _type_error
    caplog.set_level(logging.DEBUG, logger="hitl_agent.dispatch")
    asyncio.run(_run_for(dispatcher, 0.6, interval=0.002))

    error = dispatcher.poll_error
    assert isinstance(error, PollingError) and error.request_id is None
    cause = AuthenticationError if fault == "401" else TypeError
    assert isinstance(error.__cause__, cause) and error.failures >= 3
    # Backing off (2, 4, 8, ... ms) makes ~8 sweeps in 0.6 s where every 2 ms made ~300.
    assert 3 <= transport.calls <= 12, transport.calls
    errors = _records(caplog, logging.ERROR)
    assert len(errors) == 1 and type(error.__cause__).__name__ in errors[0].getMessage()
    if fault == "type-error":  # raised: its traceback once, the rest of the run at DEBUG
        failed = [r for r in caplog.records if r.getMessage() == "poll sweep failed"]
        assert [r.levelno for r in failed][:2] == [logging.WARNING, logging.DEBUG]
        assert failed[0].exc_info is not None

    transport.fault = None  # the key is fixed: the next sweep clears it
    caplog.clear()
    asyncio.run(dispatcher.apoll_once())
    assert dispatcher.poll_error is None and dispatcher.health.failures == 0
    assert any("again" in r.getMessage() for r in _records(caplog, logging.WARNING))


@pytest.mark.parametrize("code", [429, 503])
def test_a_transient_failure_keeps_the_schedule(
    rig: tuple[Switch, Dispatcher], caplog: pytest.LogCaptureFixture, code: int
) -> None:
    transport, dispatcher = rig
    transport.fault = _status(code)
    asyncio.run(_run_for(dispatcher, 0.3, interval=0.002))
    assert dispatcher.poll_error is None and dispatcher.health.failures == 0
    assert not _records(caplog, logging.ERROR)


def test_poll_once_records_too_and_still_raises(rig: tuple[Switch, Dispatcher]) -> None:
    """A cron job calling poll_once sees the TypeError itself, and poll_error after three."""
    transport, dispatcher = rig
    transport.fault = _type_error
    for sweep in range(1, 4):
        assert dispatcher.poll_error is None
        with pytest.raises(TypeError):
            dispatcher.poll_once()
        assert dispatcher.health.failures == sweep
    assert isinstance(dispatcher.poll_error, PollingError)


# -- the policy ------------------------------------------------------------------------------


def _response(code: int) -> httpx2.Response:
    return httpx2.Response(code, request=httpx2.Request("GET", "http://x/v1"))


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (APIConnectionError(), True),
        (APITimeoutError(), True),
        (InternalServerError("down", response=_response(503)), True),
        (RateLimitError("quota", response=_response(429)), True),
        # One request's trouble: the poller's fail-closed rule covers it.
        (BadRequestError("bad", response=_response(400)), True),
        (NotFoundError("gone", response=_response(404)), True),
        (ConflictError("state", response=_response(409)), True),
        (AuthenticationError("key", response=_response(401)), False),
        (PermissionDeniedError("loop", response=_response(403)), False),
        (APIResponseValidationError("html", response=_response(200)), False),
        (ConfigError("field", "bad", "fix"), False),
        (ResponseShapeError("shape"), False),
        (TypeError("bug"), False),
        (AttributeError("bug"), False),
    ],
)
def test_what_a_retry_can_fix(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


def test_the_count_moves_only_on_evidence() -> None:
    health = PollHealth()
    key = AuthenticationError("key", response=_response(401))
    health.record(key, answered=False)
    health.record(APIConnectionError(), answered=False)  # an outage: no evidence either way
    health.record(None, answered=False)  # no call made
    assert health.failures == 1 and health.cause is key and health.error is None
    health.record(key, answered=True)  # the listing answered, one GET got a 403/401
    assert health.failures == 0 and health.cause is None
    for _ in range(3):
        health.record(TypeError("bug"), answered=False)
    error = health.error
    assert health.failing and isinstance(error, PollingError)
    assert isinstance(error.__cause__, TypeError) and "3 times in a row" in str(error)


def test_the_backoff_doubles_up_to_its_cap() -> None:
    health = PollHealth()
    assert health.backoff(2.0) == 2.0
    gaps = []
    for _ in range(12):
        health.record(TypeError("bug"), answered=False)
        gaps.append(health.backoff(2.0))
    assert gaps[:3] == [4.0, 8.0, 16.0] and gaps[-1] == MAX_BACKOFF
    assert health.backoff(MAX_BACKOFF * 2) == MAX_BACKOFF * 2  # never shorter than asked
