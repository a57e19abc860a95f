"""Issue 20 F5: one request per gate, however busy the loop, after an ambiguous create.

A create whose response is lost (the server stored the request, the client saw a reset) keeps
its intent; the next call lists the loop, newest first, to find the request by the key stamped
in its context before it creates anything. The old scan stopped after 300 listed requests:
with 300 newer requests in the loop it missed its own and created a second one. Now it pages
back to the intent's time (by the server's clock), within the call budget when one applies,
and when it cannot tell (budget spent, listing failing) it raises ``AmbiguousCreateError``
instead of creating a duplicate.

The local server runs on a FakeClock; the newer requests are stored through the server itself
(as other agents of the loop would create them), so a thousand cost a fraction of a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import httpx2
import pytest
from create_faults import AsyncFaults, Faults

from hitl_agent import APIConnectionError, AsyncHITLClient, HITLClient, RetryPolicy
from hitl_agent.dispatch import CallBudget
from hitl_agent.gate import (
    AmbiguousCreateError,
    CreateTarget,
    Gatekeeper,
    ReviewSpec,
    aensure_request,
    ensure_request,
)
from hitl_agent.ledger import SqliteLedger
from hitl_agent.server._requests import create_request
from hitl_agent.testing import FakeClock, alocal_hitl, local_hitl

SPEC = ReviewSpec.build("Refund $40 to order 1234?", timeout_seconds=3600)
KEY = "refund-40"
_BODY = {
    "request_text": "another agent's question",
    "response_type": "boolean",
    "default_response": False,
    "timeout_seconds": 3600,
}


def _busy(server: Any, api_key: str, loop_id: str, clock: FakeClock, newer: int) -> None:
    """``newer`` requests of other gates, created after ours (10 ms apart, server time)."""
    caller = server.authenticate_key(api_key)
    for i in range(newer):
        clock.advance(0.01)
        body = {**_BODY, "context": {"hitl_agent": {"key": f"other-{i}"}}}
        server.run(create_request, caller, loop_id, body)


def _ours(requests: list[Any]) -> list[str]:
    """The ids of the requests stamped with our key."""
    return [r.id for r in requests if (r.context or {}).get("hitl_agent", {}).get("key") == KEY]


class _Sync:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def __enter__(self) -> _Sync:
        self.clock = FakeClock()
        self._hitl = local_hitl(clock=self.clock)
        self.hitl = self._hitl.__enter__()
        self.faults = Faults(self.hitl.http)
        self.client = HITLClient(
            self.hitl.api_key,
            base_url=self.hitl.base_url,
            http_client=cast(httpx.Client, self.faults),
            retry=RetryPolicy(max_retries=0),
        )
        self.ledger = SqliteLedger(self.tmp_path / "ledger.db", synchronous="OFF")
        self.ledger.setup()
        return self

    def __exit__(self, *exc: object) -> None:
        self.ledger.close()
        self._hitl.__exit__(None, None, None)

    def target(self, budget: CallBudget | None = None) -> CreateTarget:
        return CreateTarget(
            ledger=self.ledger,
            loop_id=self.hitl.loop_id,
            callback_url=None,
            callback_secret=None,
            clock=self.clock,
            budget=budget,
        )

    def ours(self) -> list[str]:
        return _ours(list(self.hitl.client.requests.iter(loop_id=self.hitl.loop_id)))


@pytest.fixture
def sync_env(tmp_path: Path) -> Iterator[_Sync]:
    with _Sync(tmp_path) as env:
        yield env


def _lose_first_create(env: _Sync, target: CreateTarget) -> str:
    env.faults.lose = True
    with pytest.raises(APIConnectionError):
        ensure_request(target, env.client, KEY, SPEC)
    assert env.ledger.get(KEY).state == "intent"  # type: ignore[union-attr]
    (first,) = env.ours()  # the server did store it
    return first


@pytest.mark.parametrize("newer", [299, 300, 1000])
def test_the_retry_finds_its_request_behind_newer_ones(sync_env: _Sync, newer: int) -> None:
    env = sync_env
    target = env.target()
    first = _lose_first_create(env, target)
    _busy(env.hitl.server, env.hitl.api_key, env.hitl.loop_id, env.clock, newer)
    env.clock.advance(5)
    row = ensure_request(target, env.client, KEY, SPEC)
    assert env.ours() == [first]  # exactly one request for the gate
    assert row.state == "pending" and row.request_id == first
    assert env.faults.calls.count("POST") == 1


def test_a_budget_too_small_to_look_far_enough_creates_nothing(sync_env: _Sync) -> None:
    env = sync_env
    budget = CallBudget(limit=4, clock=env.clock)
    target = env.target(budget)
    first = _lose_first_create(env, target)
    _busy(env.hitl.server, env.hitl.api_key, env.hitl.loop_id, env.clock, 1000)
    with pytest.raises(AmbiguousCreateError, match="budget") as caught:
        ensure_request(target, env.client, KEY, SPEC)
    assert caught.value.key == KEY and caught.value.created is None
    assert caught.value.retry_after is not None and caught.value.retry_after > 0
    assert "Fix:" in str(caught.value)
    assert env.faults.calls.count("POST") == 1 and env.ours() == [first]
    assert env.ledger.get(KEY).state == "intent"  # type: ignore[union-attr]
    assert budget.spent() == 4  # it stopped at the budget
    # Without the budget's limit (the next hour's, say) the same call finds it.
    row = ensure_request(env.target(), env.client, KEY, SPEC)
    assert row.request_id == first and env.ours() == [first]


def test_a_budget_large_enough_is_charged_one_call_a_page(sync_env: _Sync) -> None:
    env = sync_env
    budget = CallBudget(limit=50, clock=env.clock)
    target = env.target(budget)
    first = _lose_first_create(env, target)
    _busy(env.hitl.server, env.hitl.api_key, env.hitl.loop_id, env.clock, 1000)
    row = ensure_request(target, env.client, KEY, SPEC)
    assert row.request_id == first and env.ours() == [first]
    assert budget.spent() == 11  # 1,001 requests, 100 a page


def test_the_listings_retries_are_charged_too(sync_env: _Sync) -> None:
    env = sync_env
    budget = CallBudget(limit=50, clock=env.clock)
    target = env.target(budget)
    first = _lose_first_create(env, target)
    _busy(env.hitl.server, env.hitl.api_key, env.hitl.loop_id, env.clock, 1000)
    retrying = HITLClient(
        env.hitl.api_key,
        base_url=env.hitl.base_url,
        http_client=cast(httpx.Client, env.faults),
        retry=RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.001),
    )
    env.faults.fail_gets = 2  # the first page is sent three times
    row = ensure_request(target, retrying, KEY, SPEC)
    assert row.request_id == first and env.faults.calls.count("GET") == 13
    assert budget.spent() == 13  # every attempt sent, not 11 calls


def test_a_listing_that_fails_creates_nothing(sync_env: _Sync) -> None:
    env = sync_env
    target = env.target()
    first = _lose_first_create(env, target)
    env.faults.down = True
    with pytest.raises(AmbiguousCreateError, match="InternalServerError") as caught:
        ensure_request(target, env.client, KEY, SPEC)
    assert caught.value.created is None and "Fix:" in str(caught.value)
    assert env.faults.calls.count("POST") == 1
    env.faults.down = False
    row = ensure_request(target, env.client, KEY, SPEC)
    assert row.request_id == first and env.ours() == [first]


@pytest.mark.parametrize("newer", [300, 1000])
def test_the_async_twin_finds_its_request_behind_newer_ones(tmp_path: Path, newer: int) -> None:
    async def main() -> tuple[list[str], str | None, int]:
        clock = FakeClock()
        async with alocal_hitl(clock=clock) as hitl:
            ledger = SqliteLedger(tmp_path / "ledger.db", synchronous="OFF")
            ledger.setup()
            faults = AsyncFaults(hitl.http)
            client = AsyncHITLClient(
                hitl.api_key,
                base_url=hitl.base_url,
                http_client=cast(httpx2.AsyncClient, faults),
                retry=RetryPolicy(max_retries=0),
            )
            target = CreateTarget(
                ledger=ledger,
                loop_id=hitl.loop_id,
                callback_url=None,
                callback_secret=None,
                clock=clock,
            )
            faults.lose = True
            with pytest.raises(APIConnectionError):
                await aensure_request(target, client, KEY, SPEC)
            _busy(hitl.server, hitl.api_key, hitl.loop_id, clock, newer)
            clock.advance(5)
            row = await aensure_request(target, client, KEY, SPEC)
            ours = _ours([r async for r in hitl.client.requests.iter(loop_id=hitl.loop_id)])
            ledger.close()
            return ours, row.request_id, faults.calls.count("POST")

    ours, request_id, posts = asyncio.run(main())
    assert len(ours) == 1 and request_id == ours[0] and posts == 1


def test_the_async_twin_stops_at_the_budget(tmp_path: Path) -> None:
    async def main() -> tuple[int, int]:
        clock = FakeClock()
        async with alocal_hitl(clock=clock) as hitl:
            ledger = SqliteLedger(tmp_path / "ledger.db", synchronous="OFF")
            ledger.setup()
            faults = AsyncFaults(hitl.http)
            client = AsyncHITLClient(
                hitl.api_key,
                base_url=hitl.base_url,
                http_client=cast(httpx2.AsyncClient, faults),
                retry=RetryPolicy(max_retries=0),
            )
            budget = CallBudget(limit=4, clock=clock)
            target = CreateTarget(
                ledger=ledger,
                loop_id=hitl.loop_id,
                callback_url=None,
                callback_secret=None,
                clock=clock,
                budget=budget,
            )
            faults.lose = True
            with pytest.raises(APIConnectionError):
                await aensure_request(target, client, KEY, SPEC)
            _busy(hitl.server, hitl.api_key, hitl.loop_id, clock, 1000)
            with pytest.raises(AmbiguousCreateError, match="budget"):
                await aensure_request(target, client, KEY, SPEC)
            ours = _ours([r async for r in hitl.client.requests.iter(loop_id=hitl.loop_id)])
            ledger.close()
            return len(ours), faults.calls.count("POST")

    assert asyncio.run(main()) == (1, 1)


# -- a server that sends no time (no Date, no X-RateLimit-Reset): only the limit bounds -----


def _timeless_server(newer: int) -> tuple[httpx.MockTransport, list[str]]:
    """A MockTransport loop holding ``newer`` other requests; creates fail unclearly."""
    calls: list[str] = []
    others = [
        {"id": f"r{i}", "status": "pending", "context": {"hitl_agent": {"key": f"other-{i}"}}}
        for i in range(newer)
    ]

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if request.method == "POST":
            raise httpx.ReadError("connection reset", request=request)
        offset = int(request.url.params.get("offset", "0"))
        limit = int(request.url.params.get("limit", "50"))
        page = others[offset : offset + limit]
        more = offset + len(page) < len(others)
        data = {
            "requests": page,
            "count": len(page),
            "has_more": more,
            "pagination": {"limit": limit, "offset": offset, "next_offset": offset + len(page)},
        }
        return httpx.Response(200, json={"error": False, "msg": "ok", "data": data})

    return httpx.MockTransport(handle), calls


@pytest.mark.parametrize(("newer", "outcome"), [(300, "cannot tell"), (50, "absent")])
def test_without_a_server_time_the_limit_bounds_the_scan(
    tmp_path: Path, newer: int, outcome: str
) -> None:
    transport, calls = _timeless_server(newer)
    ledger = SqliteLedger(tmp_path / "ledger.db", synchronous="OFF")
    ledger.setup()
    target = CreateTarget(
        ledger=ledger,
        loop_id="loop-1",
        callback_url=None,
        callback_secret=None,
        clock=FakeClock(),
        reconcile_limit=150,
    )
    with httpx.Client(transport=transport) as http:
        client = HITLClient(
            "k", base_url="http://mock/v1", http_client=http, retry=RetryPolicy(max_retries=0)
        )
        with pytest.raises(APIConnectionError):
            ensure_request(target, client, KEY, SPEC)
        assert client.server_date is None  # nothing to stop the scan at
        if outcome == "cannot tell":  # 150 read, more to come: it creates nothing
            with pytest.raises(AmbiguousCreateError, match="no time"):
                ensure_request(target, client, KEY, SPEC)
            assert calls.count("POST") == 1 and calls.count("GET") == 2
        else:  # the whole loop was read without it: creating again is safe
            with pytest.raises(APIConnectionError):
                ensure_request(target, client, KEY, SPEC)
            assert calls.count("POST") == 2
    ledger.close()


def test_a_keepers_reconciliation_is_charged_to_its_budget(sync_env: _Sync) -> None:
    env = sync_env
    budget = CallBudget(limit=4, clock=env.clock)
    keeper = Gatekeeper(
        client=env.client, loop_id=env.hitl.loop_id, ledger=env.ledger, clock=env.clock,
        budget=budget,
    )  # fmt: skip
    assert keeper.create_target.budget is budget
    first = _lose_first_create(env, keeper.create_target)
    _busy(env.hitl.server, env.hitl.api_key, env.hitl.loop_id, env.clock, 1000)
    with pytest.raises(AmbiguousCreateError, match="budget"):
        keeper.review(
            SPEC.request_text, key=KEY, mode="block", timeout_seconds=3600, wait_timeout=0.01
        )
    assert env.ours() == [first] and budget.spent() == 4
