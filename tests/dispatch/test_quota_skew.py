"""Issue 7 M5: a client clock ahead of the server changes neither creates nor deadlines.

The local server runs on one FakeClock; the keeper and dispatcher on the same clock plus an
offset. On the old code, 900 s ahead made a failed create + retry post twice (reconcile
stopped at "older than our intent"), and 4,500 s ahead failed a pending review closed on the
first sweep, so the reviewer's later approval was ignored.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from hitl_agent import AsyncHITLClient, HITLClient, RetryPolicy
from hitl_agent._exceptions import APIConnectionError
from hitl_agent.decision import Decision
from hitl_agent.dispatch import Dispatcher
from hitl_agent.gate import CreateTarget, ReviewSpec, aensure_request, ensure_request
from hitl_agent.ledger import ReviewRecord, SqliteLedger
from hitl_agent.testing import FakeClock, LocalHITL, alocal_hitl, local_hitl

SPEC = ReviewSpec.build("Refund $40?", timeout_seconds=3600)


class _Flaky:
    """The local server's TestClient; ``lose`` drops the next create's response after the
    server acted on it, ``down`` answers every call 503 without reaching the server."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.lose = False
        self.down = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def send(self, request: httpx.Request, **kwargs: Any) -> Any:
        if self.down:
            return httpx.Response(503, json={"error": True, "msg": "down"}, request=request)
        response = self.inner.send(request, **kwargs)
        if self.lose and request.method == "POST":
            self.lose = False
            raise httpx.ReadError("connection reset after the server answered", request=request)
        return response


class _Recorder:
    def __init__(self) -> None:
        self.decisions: list[Decision] = []

    def resume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool:
        self.decisions += decisions
        return True

    async def aresume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool:
        return self.resume(record, decisions)

    def finished(self, record: ReviewRecord) -> bool:
        return False

    async def afinished(self, record: ReviewRecord) -> bool:
        return False


class Skewed:
    def __init__(self, hitl: LocalHITL, ledger: SqliteLedger, clock: FakeClock, ahead: float):
        self.hitl = hitl
        self.ledger = ledger
        self.server_clock = clock
        self.flaky = _Flaky(hitl.http)
        self.client = HITLClient(
            hitl.api_key,
            base_url=hitl.base_url,
            http_client=cast(httpx.Client, self.flaky),
            retry=RetryPolicy(max_retries=0),
        )
        self.clock = lambda: clock() + ahead  # ours: ``ahead`` seconds fast
        self.target = CreateTarget(
            ledger=ledger,
            loop_id=hitl.loop_id,
            callback_url=None,
            callback_secret=None,
            clock=self.clock,
        )
        self.recorder = _Recorder()
        self.dispatcher = Dispatcher(
            ledger=ledger,
            client=self.client,
            resumer=self.recorder,
            loop_id=hitl.loop_id,
            clock=self.clock,
        )

    def server_requests(self) -> list[Any]:
        return list(self.hitl.client.requests.iter(loop_id=self.hitl.loop_id))


@pytest.fixture
def make() -> Iterator[Any]:
    with tempfile.TemporaryDirectory() as tmp, local_hitl(clock=FakeClock()) as hitl:
        ledger = SqliteLedger(Path(tmp) / "ledger.db", synchronous="OFF")
        ledger.setup()
        clock = hitl.server.clock
        assert isinstance(clock, FakeClock)
        yield lambda ahead: Skewed(hitl, ledger, clock, ahead)
        ledger.close()


def test_a_failed_create_and_its_retry_make_one_request(make: Any) -> None:
    env: Skewed = make(900.0)
    for i in range(3):  # other requests of the loop, created earlier
        ensure_request(env.target, env.client, f"other-{i}", SPEC)
        env.server_clock.advance(120)
    env.flaky.lose = True
    with pytest.raises(APIConnectionError):
        ensure_request(env.target, env.client, "refund-40", SPEC)
    assert len(env.server_requests()) == 4  # the server did create it
    env.server_clock.advance(30)
    row = ensure_request(env.target, env.client, "refund-40", SPEC)  # the retry reconciles
    assert len(env.server_requests()) == 4
    assert row.state == "pending" and row.request_id == env.server_requests()[0].id


def test_a_pending_review_is_not_failed_closed_by_our_clock(make: Any) -> None:
    env: Skewed = make(3600.0 + 900.0)  # past timeout + grace on our clock from the start
    row = ensure_request(env.target, env.client, "refund-40", SPEC)
    assert row.request_id is not None
    env.dispatcher.poll_once()
    current = env.ledger.get_by_request_id(row.request_id)
    assert current is not None and current.state == "pending"
    env.server_clock.advance(600)
    env.hitl.reviewer.respond(row.request_id, True)  # within the server's hour
    env.dispatcher.poll_once()
    assert [(d.outcome, d.approved) for d in env.recorder.decisions] == [("approved", True)]


def test_fail_closed_waits_for_the_servers_deadline_plus_grace(make: Any) -> None:
    env: Skewed = make(2 * 3600.0)
    row = ensure_request(env.target, env.client, "refund-40", SPEC)
    assert row.request_id is not None
    env.dispatcher.poll_once()  # the API answers: its Date sets the server's clock
    env.flaky.down = True  # then it goes away, Date headers and all
    env.server_clock.advance(3600 + 200)  # past the deadline, inside the grace (server time)
    env.dispatcher.poll_once()
    current = env.ledger.get_by_request_id(row.request_id)
    assert current is not None and current.state == "pending"
    env.server_clock.advance(150)  # now past deadline + grace on the server's clock
    env.dispatcher.poll_once()
    assert [d.outcome for d in env.recorder.decisions] == ["timed_out"]
    assert "failed closed" in (env.recorder.decisions[0].reason or "")


class _AsyncFlaky:
    """:class:`_Flaky` for an ``httpx.AsyncClient``."""

    def __init__(self, inner: httpx.AsyncClient) -> None:
        self.inner = inner
        self.lose = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def send(self, request: httpx.Request, **kwargs: Any) -> Any:
        response = await self.inner.send(request, **kwargs)
        if self.lose and request.method == "POST":
            self.lose = False
            raise httpx.ReadError("connection reset after the server answered", request=request)
        return response


def test_the_async_twin_reconciles_by_the_servers_clock(tmp_path: Path) -> None:
    async def main() -> int:
        clock = FakeClock()
        async with alocal_hitl(clock=clock) as hitl:
            ledger = SqliteLedger(tmp_path / "ledger.db", synchronous="OFF")
            ledger.setup()
            flaky = _AsyncFlaky(hitl.http)
            client = AsyncHITLClient(
                hitl.api_key,
                base_url=hitl.base_url,
                http_client=cast(httpx.AsyncClient, flaky),
                retry=RetryPolicy(max_retries=0),
            )
            target = CreateTarget(
                ledger=ledger,
                loop_id=hitl.loop_id,
                callback_url=None,
                callback_secret=None,
                clock=lambda: clock() + 900.0,
            )
            flaky.lose = True
            with pytest.raises(APIConnectionError):
                await aensure_request(target, client, "refund-40", SPEC)
            clock.advance(30)
            row = await aensure_request(target, client, "refund-40", SPEC)
            assert row.state == "pending"
            created = [r async for r in hitl.client.requests.iter(loop_id=hitl.loop_id)]
            ledger.close()
            return len(created)

    assert asyncio.run(main()) == 1
