"""Issue 20 F10/F11: the call budget is charged for every HTTP attempt, and honours Retry-After.

The client retries a GET or a list up to twice on a 5xx or a dropped connection; HITL.sh
counts each attempt against the key's quota, so the budget must too. Here the requests that
reach the transport are counted and compared with what the budget charged, under injected
faults (50 % of requests fail), through ``poll_once`` and ``apoll_once``, and through both
clients directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx2
import pytest
from hitl_harness import Env, refund_graph
from langgraph.checkpoint.memory import InMemorySaver

import hitl_agent._client
from hitl_agent import (
    AsyncHITLClient,
    HITLClient,
    InternalServerError,
    RateLimitError,
    RetryPolicy,
)
from hitl_agent._base_client import AttemptMeter
from hitl_agent.dispatch import CallBudget
from hitl_agent.langgraph import GraphResumer
from hitl_agent.testing import FakeClock


@pytest.fixture(autouse=True)
def _instant_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_async_sleep(seconds: float) -> None:
        return None

    monkeypatch.setattr(hitl_agent._client, "_sleep", lambda seconds: None)
    monkeypatch.setattr(hitl_agent._client, "_async_sleep", no_async_sleep)


class Flaky(httpx2.BaseTransport):
    """Forwards to the local server; fails a share of the requests (a 502 or a reset)."""

    def __init__(self, inner: httpx2.BaseTransport, share: float, seed: int) -> None:
        self.inner = inner
        self.share = share
        self.random = random.Random(seed)
        self.sent = 0

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        self.sent += 1
        if self.random.random() < self.share:
            if self.random.random() < 0.5:
                raise httpx2.ReadError("connection reset by peer", request=request)
            return httpx2.Response(502, text="Bad Gateway", request=request)
        return self.inner.handle_request(request)


@contextlib.contextmanager
def _flaky_client(env: Env, share: float, seed: int) -> Iterator[tuple[Flaky, HITLClient]]:
    transport = Flaky(env.hitl.http._transport, share, seed)
    with (
        httpx2.Client(transport=transport, base_url="http://testserver") as http,
        HITLClient(env.hitl.api_key, base_url=env.hitl.base_url, http_client=http) as client,
    ):
        yield transport, client


def _run_sweeps(env: Env, mode: str, seed: int) -> tuple[int, int, int]:
    """Three reviews, two answered; sweeps at 50 % faults until both are delivered.
    Returns (requests sent, calls charged, decisions delivered)."""
    graph = refund_graph(env, InMemorySaver(), [])
    for thread in ("a", "b", "c"):
        graph.invoke({"amount": 5}, {"configurable": {"thread_id": thread}})
    ids = [str(r.id) for r in env.requests()]
    for request_id in ids[:2]:
        env.hitl.reviewer.respond(request_id, "approve")
    budget = CallBudget(clock=env.clock)
    delivered = 0
    with _flaky_client(env, 0.5, seed) as (transport, client):
        dispatcher = env.keeper.dispatcher(GraphResumer(graph))
        dispatcher.resolver.client = client
        dispatcher.resolver.budget = budget
        for _ in range(10):
            env.clock.advance(60)
            if mode == "sync":
                delivered += len(dispatcher.poll_once())
            else:
                delivered += len(asyncio.run(dispatcher.apoll_once()))
        return transport.sent, budget.spent(), delivered


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_attempt_of_a_sweep_is_charged_at_50_percent_faults(
    env: Env, mode: str, seed: int
) -> None:
    sent, charged, delivered = _run_sweeps(env, mode, seed)
    assert delivered == 2  # the faults delay the answers, never lose them
    assert sent > 10  # the sweeps did retry (ten sweeps, some calls failing)
    assert charged == sent, f"{sent} requests sent, {charged} charged"


def _always(status: int, **headers: str) -> httpx2.MockTransport:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, json={"error": True, "msg": "down"}, headers=headers)

    return httpx2.MockTransport(handler)


def _request_doc() -> dict[str, Any]:
    return {
        "error": False,
        "msg": "ok",
        "data": {"request": {"id": "r1", "loop_id": "l1", "status": "pending"}},
    }


def _one_failure_then_ok(sent: list[str]) -> httpx2.MockTransport:
    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request.url.path)
        if len(sent) % 2:
            return httpx2.Response(503, json={"error": True, "msg": "down"})
        return httpx2.Response(200, json=_request_doc())

    return httpx2.MockTransport(handler)


def test_a_meter_counts_each_attempt_sync_and_async() -> None:
    sent: list[str] = []
    with (
        HITLClient(
            "k",
            base_url="http://mock/v1",
            http_client=httpx2.Client(transport=_one_failure_then_ok(sent)),
        ) as client,
        AttemptMeter() as meter,
    ):
        assert client.requests.get("r1").status == "pending"
    assert meter.attempts == len(sent) == 2

    async def run() -> AttemptMeter:
        async with httpx2.AsyncClient(transport=_one_failure_then_ok(sent)) as http:
            client = AsyncHITLClient("k", base_url="http://mock/v1", http_client=http)
            with AttemptMeter() as meter:
                assert (await client.requests.get("r1")).status == "pending"
            return meter

    sent.clear()
    assert asyncio.run(run()).attempts == len(sent) == 2
    # Without a meter the client works as before (nothing counts, nothing refuses).
    sent.clear()
    with HITLClient(
        "k",
        base_url="http://mock/v1",
        http_client=httpx2.Client(transport=_one_failure_then_ok(sent)),
    ) as client:
        assert client.requests.get("r1").status == "pending"
    assert len(sent) == 2


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_retry_the_budget_cannot_pay_for_is_not_sent(mode: str) -> None:
    clock = FakeClock()
    budget = CallBudget(2, clock=clock)
    transport = _always(502)
    sent: list[int] = []

    def counting(request: httpx2.Request) -> httpx2.Response:
        sent.append(1)
        return transport.handle_request(request)

    assert budget.try_spend(1)  # the first attempt
    meter = budget.meter()
    with pytest.raises(InternalServerError):
        if mode == "sync":
            client = HITLClient(
                "k",
                base_url="http://mock/v1",
                http_client=httpx2.Client(transport=httpx2.MockTransport(counting)),
                retry=RetryPolicy(max_retries=5),
            )
            with meter:
                client.requests.get("r1")
        else:

            async def run() -> None:
                async with httpx2.AsyncClient(transport=httpx2.MockTransport(counting)) as http:
                    client = AsyncHITLClient(
                        "k", base_url="http://mock/v1", http_client=http,
                        retry=RetryPolicy(max_retries=5),
                    )  # fmt: skip
                    with meter:
                        await client.requests.get("r1")

            asyncio.run(run())
    # The budget of 2 paid for the first attempt and one retry; the next was not sent.
    assert len(sent) == meter.attempts == budget.spent() == 2
    assert meter.refused == 1


def _limited_429(retry_after: str, now: float) -> httpx2.MockTransport:
    date = format_datetime(datetime.fromtimestamp(now, tz=UTC), usegmt=True)

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            429,
            json={"error": True, "msg": "Rate limit exceeded"},
            headers={"Retry-After": retry_after, "Date": date},
        )

    return httpx2.MockTransport(handler)


def test_a_429_with_only_retry_after_blocks_the_budget_that_long(env: Env) -> None:
    graph = refund_graph(env, InMemorySaver(), [])
    graph.invoke({"amount": 5}, {"configurable": {"thread_id": "t"}})
    budget = CallBudget(clock=env.clock)
    dispatcher = env.keeper.dispatcher(GraphResumer(graph))
    dispatcher.resolver.budget = budget
    dispatcher.resolver.client = HITLClient(
        "k",
        base_url=env.hitl.base_url,
        http_client=httpx2.Client(transport=_limited_429("600", env.clock())),
    )  # 600 s is beyond the client's 60 s wait cap: the 429 reaches the poller
    assert dispatcher.poll_once() == []
    assert dispatcher.resolver.stats["rate_limited"] == 1
    assert 599 <= budget.seconds_until(1) <= 600  # not the 60 s fallback
    env.clock.advance(120)
    assert budget.remaining() == 0  # still blocked
    env.clock.advance(481)
    assert budget.remaining() > 0


def test_retry_after_as_an_http_date_names_the_reset() -> None:
    now = 1_800_000_000.0
    when = format_datetime(datetime.fromtimestamp(now + 300, tz=UTC), usegmt=True)
    client = HITLClient(
        "k", base_url="http://mock/v1", http_client=httpx2.Client(transport=_limited_429(when, now))
    )
    with pytest.raises(RateLimitError) as caught:
        client.requests.get("r1")
    assert caught.value.reset_at == datetime.fromtimestamp(now + 300, tz=UTC)
    seconds = HITLClient(
        "k",
        base_url="http://mock/v1",
        http_client=httpx2.Client(transport=_limited_429("900", now)),
    )
    with pytest.raises(RateLimitError) as caught:
        seconds.requests.get("r1")
    assert caught.value.reset_at == datetime.fromtimestamp(now + 900, tz=UTC)
