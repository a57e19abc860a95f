"""Issue 17 item 4: a blocking wait whose sweeps keep failing persistently fails fast.

Before, the hub logged "blocking-mode sweep failed" on every sweep and the waits sat until
their deadline (tests/bench/test_blocking.py hung 300 s a test when the HTTP stack raised a
TypeError on every call). Now three persistent failures in a row (a rejected key, a server
that is not the HITL API, a ConfigError, a TypeError) fail every wait on that dispatcher
with a PollingError whose ``__cause__`` is the failure; outages, 5xx and 429s are retried
on the schedule as before, and a sweep that gets an answer resets the count. ``review()``
and ``areview()`` share the hub, so they fail alike.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from hitl_harness import Env, Fault, Switch, switched_client

from hitl_agent import (
    APIResponseValidationError,
    AuthenticationError,
    ConfigError,
    Gatekeeper,
    HITLClient,
    PermissionDeniedError,
    PollingError,
)
from hitl_agent.decision import Decision
from hitl_agent.dispatch import CallBudget, Dispatcher
from hitl_agent.gate import ensure_request
from hitl_agent.gate._blocking import BlockingResumer, WaitHub


def _status(code: int, msg: str) -> Fault:
    return lambda request: httpx2.Response(code, json={"error": True, "msg": msg, "data": None})


def _raise(error: BaseException) -> Fault:
    def fault(request: httpx2.Request) -> httpx2.Response:
        raise error

    return fault


def _html(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(200, text="<html>a proxy's login page</html>")


@pytest.fixture
def switch(env: Env) -> Iterator[tuple[Switch, HITLClient]]:
    with switched_client(env) as pair:
        yield pair


def _open_requests(env: Env, count: int, prefix: str = "ff") -> list[str]:
    """``count`` open blocking-mode requests, created through the healthy client."""
    ids = []
    for index in range(count):
        spec = env.keeper.spec(f"Deploy {prefix} {index}?")
        row = ensure_request(env.keeper._target, env.hitl.client, f"{prefix}-{index}", spec)
        assert row.request_id is not None
        ids.append(row.request_id)
    return ids


class Hub:
    """A hub swept by hand on the env's FakeClock, and a blocking dispatcher on ``client``."""

    def __init__(self, env: Env, client: HITLClient) -> None:
        self.clock = env.clock  # one clock: a 429's backoff passes as the sweeps go on
        self.hub = WaitHub(clock=self.clock, autostart=False)
        self.dispatcher = Dispatcher(
            ledger=env.ledger,
            client=client,
            resumer=BlockingResumer(self.hub),
            loop_id=env.hitl.loop_id,
            clock=env.clock,
            budget=CallBudget(limit=10**6, clock=env.clock),
            row_filter=lambda row: row.thread_id is None,
        )

    def sweep(self) -> None:
        """Run the next sweep due."""
        before = self.hub.sweeps
        while self.hub.sweeps == before:
            delay = self.hub.step()
            if delay is None:
                return
            self.clock.advance(max(delay, 0.001))


PERSISTENT: dict[str, tuple[Fault, type[BaseException]]] = {
    "401": (_status(401, "Invalid API key"), AuthenticationError),
    "403": (_status(403, "Forbidden"), PermissionDeniedError),
    "not-the-api": (_html, APIResponseValidationError),
    "type-error": (_raise(TypeError("Timeout() got an httpx.Timeout")), TypeError),
    "config-error": (_raise(ConfigError("http_client", "wrong", "fix it")), ConfigError),
}


@pytest.mark.parametrize("case", sorted(PERSISTENT))
def test_persistent_failures_fail_every_wait_on_the_third_sweep(
    env: Env, switch: tuple[Switch, HITLClient], case: str
) -> None:
    transport, client = switch
    fault, cause = PERSISTENT[case]
    first, second = _open_requests(env, 2)
    rig = Hub(env, client)
    transport.fault = fault

    async def main() -> None:
        sync_wait = rig.hub.register(rig.dispatcher, first)
        async_wait = rig.hub.register_async(rig.dispatcher, second)
        for _ in range(2):
            rig.sweep()
            await asyncio.sleep(0)
            assert not sync_wait.done() and not async_wait.done()
        rig.sweep()
        assert rig.hub.waiting == 0 and rig.hub.step() is None  # nobody left to sweep for
        for future, request_id in ((asyncio.wrap_future(sync_wait), first), (async_wait, second)):
            with pytest.raises(PollingError) as raised:
                await asyncio.wait_for(future, 5)
            error = raised.value
            assert isinstance(error.__cause__, cause)
            assert error.failures == 3 and error.request_id == request_id
            assert request_id in str(error) and type(error.__cause__).__name__ in str(error)

    asyncio.run(main())
    assert isinstance(rig.dispatcher.poll_error, PollingError)
    assert env.ledger.get_by_request_id(first).state == "pending"  # type: ignore[union-attr]


TRANSIENT: dict[str, Fault] = {
    "503": _status(503, "Service Unavailable"),
    "429": _status(429, "Rate limit exceeded"),
    "connect-error": _raise(httpx2.ConnectError("refused")),
    "read-timeout": _raise(httpx2.ReadTimeout("slow")),
}


@pytest.mark.parametrize("case", sorted(TRANSIENT))
def test_transient_failures_keep_the_waits_until_an_answer(
    env: Env, switch: tuple[Switch, HITLClient], case: str
) -> None:
    transport, client = switch
    (request_id,) = _open_requests(env, 1)
    rig = Hub(env, client)
    transport.fault = TRANSIENT[case]
    wait = rig.hub.register(rig.dispatcher, request_id)
    for _ in range(6):
        rig.sweep()
    assert not wait.done() and rig.dispatcher.poll_error is None
    transport.fault = None  # the outage ends; the reviewer has answered meanwhile
    env.hitl.reviewer.respond(request_id, True)
    rig.sweep()
    assert wait.result(timeout=5).approved


def test_an_answered_sweep_resets_the_count(env: Env, switch: tuple[Switch, HITLClient]) -> None:
    transport, client = switch
    (request_id,) = _open_requests(env, 1)
    rig = Hub(env, client)
    wait = rig.hub.register(rig.dispatcher, request_id)
    for fault in (PERSISTENT["401"][0], PERSISTENT["401"][0], None):
        transport.fault = fault
        rig.sweep()
    assert rig.dispatcher.health.failures == 0
    transport.fault = PERSISTENT["401"][0]
    for _ in range(2):
        rig.sweep()
    assert not wait.done()
    rig.sweep()
    with pytest.raises(PollingError):
        wait.result(timeout=5)


def test_a_wait_on_a_failing_dispatcher_fails_on_its_next_failing_sweep(
    env: Env, switch: tuple[Switch, HITLClient]
) -> None:
    transport, client = switch
    first, second = _open_requests(env, 2)
    rig = Hub(env, client)
    transport.fault = PERSISTENT["type-error"][0]
    wait = rig.hub.register(rig.dispatcher, first)
    for _ in range(3):
        rig.sweep()
    assert isinstance(wait.exception(timeout=5), PollingError)
    later = rig.hub.register(rig.dispatcher, second)
    rig.sweep()
    error = later.exception(timeout=5)
    assert isinstance(error, PollingError) and error.failures == 4


# -- the public path: review() and areview() on the process's hub --------------------------


def _keeper(env: Env, client: HITLClient) -> Gatekeeper:
    return Gatekeeper(
        client=client,
        loop_id=env.hitl.loop_id,
        ledger=env.ledger,
        clock=env.clock,
        budget=CallBudget(limit=10**6, clock=env.clock),
        poll_interval=0.02,
    )


def _seed(env: Env, keeper: Gatekeeper, text: str, key: str) -> None:
    ensure_request(keeper._target, env.hitl.client, key, keeper.spec(text))


@pytest.mark.parametrize("case", ["401", "type-error"])
def test_review_and_areview_fail_alike_and_fast(
    env: Env, switch: tuple[Switch, HITLClient], case: str
) -> None:
    """One policy for both: the same error, cause and count, in well under a second of
    sweeps (20 ms apart) instead of the 20 s ``wait_timeout``."""
    transport, client = switch
    sync_keeper, async_keeper = _keeper(env, client), _keeper(env, client)
    _seed(env, sync_keeper, "Refund $1?", "ff-sync")
    _seed(env, async_keeper, "Refund $2?", "ff-async")
    transport.fault = PERSISTENT[case][0]
    errors: dict[str, BaseException] = {}

    started = time.monotonic()
    try:
        sync_keeper.review("Refund $1?", key="ff-sync", mode="block", wait_timeout=20)
    except Exception as exc:
        errors["review"] = exc
    sync_took = time.monotonic() - started

    async def main() -> None:
        try:
            await async_keeper.areview("Refund $2?", key="ff-async", mode="block", wait_timeout=20)
        except Exception as exc:
            errors["areview"] = exc

    started = time.monotonic()
    asyncio.run(main())
    async_took = time.monotonic() - started

    assert sync_took < 10 and async_took < 10, (sync_took, async_took)
    shapes = {
        name: (type(exc), type(exc.__cause__), getattr(exc, "failures", None))
        for name, exc in errors.items()
    }
    assert shapes["review"] == shapes["areview"] == (PollingError, PERSISTENT[case][1], 3)
    for keeper in (sync_keeper, async_keeper):
        assert keeper._blocking.poll_error is not None


def test_threads_blocked_in_review_all_get_the_error(
    env: Env, switch: tuple[Switch, HITLClient]
) -> None:
    transport, client = switch
    keeper = _keeper(env, client)
    for index in range(5):
        _seed(env, keeper, f"Refund ${index}?", f"ff-thread-{index}")
    transport.fault = PERSISTENT["401"][0]
    outcomes: list[Any] = []

    def review(index: int) -> None:
        try:
            outcomes.append(
                keeper.review(f"Refund ${index}?", key=f"ff-thread-{index}", wait_timeout=20)
            )
        except Exception as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=review, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=15)
    assert len(outcomes) == 5
    assert all(isinstance(o, PollingError) and not isinstance(o, Decision) for o in outcomes)
