"""Issue 7 W2: a schedule derived from the budget, which learns the server's own limit.

On the old code blocking ``keeper.review()`` returned up to 60 s after the answer (a fixed
60 s sweep), even against the local server, which has no quota at all.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from hitl_agent import HITLClient, RetryPolicy
from hitl_agent.decision import Decision
from hitl_agent.dispatch import CallBudget, Dispatcher
from hitl_agent.gate import CreateTarget, Gatekeeper, ReviewSpec, ensure_request
from hitl_agent.ledger import SqliteLedger
from hitl_agent.testing import FakeClock, ScriptedReviewer, local_hitl


@pytest.fixture
def ledger() -> Iterator[SqliteLedger]:
    with tempfile.TemporaryDirectory() as tmp:
        ledger = SqliteLedger(Path(tmp) / "ledger.db", synchronous="OFF")
        ledger.setup()
        yield ledger
        ledger.close()


def test_a_blocking_review_returns_within_2s_of_the_answer(ledger: SqliteLedger) -> None:
    with local_hitl() as hitl:  # the local server, real time, every default
        keeper = Gatekeeper(client=hitl.client, loop_id=hitl.loop_id, ledger=ledger)
        reviewer: ScriptedReviewer = hitl.reviewer
        results: list[tuple[float, Decision]] = []

        def ask() -> None:
            decision = keeper.review("Ship the release?", wait_timeout=20)
            results.append((time.monotonic(), decision))

        waiter = threading.Thread(target=ask)
        waiter.start()
        while not reviewer.queue():
            time.sleep(0.02)
        time.sleep(2.5)  # well into the wait: past any first sweep
        answered = time.monotonic()
        reviewer.respond(reviewer.queue()[0]["id"], True)
        waiter.join(25)
        assert results, "review() did not return"
        returned, decision = results[0]
        print(f"\nW2 answer -> review() returned after {returned - answered:.2f}s")
        assert decision.approved is True
        assert returned - answered <= 2.0


def test_the_budget_follows_the_servers_limit() -> None:
    with local_hitl(rate_limit=100) as metered, local_hitl() as unmetered:
        learned = CallBudget()
        assert learned.limit == 90  # before the server said anything
        metered.client.loops.list()
        learned.observe(metered.client)
        assert learned.limit == 90  # 100 less 10 % headroom
        unmetered.client.loops.list()
        learned.observe(unmetered.client)
        assert learned.limit == 90_000  # "no quota": 100,000 less 10 %
        explicit = CallBudget(50)
        explicit.observe(unmetered.client)
        assert explicit.limit == 50  # what the user passed is kept


class _Counting:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.times: list[float] = []
        self.rate_limited = 0
        self.clock: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def send(self, request: httpx.Request, **kwargs: Any) -> Any:
        self.times.append(self.clock())
        response = self.inner.send(request, **kwargs)
        self.rate_limited += response.status_code == 429
        return response


@pytest.mark.parametrize("webhooks", [False, True])
def test_sweeps_are_fast_early_and_never_above_the_budget(
    ledger: SqliteLedger, webhooks: bool
) -> None:
    clock = FakeClock()
    with local_hitl(clock=clock, rate_limit=100) as hitl:
        target = CreateTarget(
            ledger=ledger,
            loop_id=hitl.loop_id,
            callback_url=None,
            callback_secret=None,
            clock=clock,
        )
        spec = ReviewSpec.build("Refund?", timeout_seconds=86_400)
        for i in range(5):
            ensure_request(target, hitl.client, f"s{i}", spec)
        counting = _Counting(hitl.http)
        counting.clock = clock
        client = HITLClient(
            hitl.api_key,
            base_url=hitl.base_url,
            http_client=cast(httpx.Client, counting),
            retry=RetryPolicy(max_retries=0),
        )
        dispatcher = Dispatcher(
            ledger=ledger, client=client, resumer=_Nowhere(), loop_id=hitl.loop_id, clock=clock,
            webhooks=webhooks,
        )  # fmt: skip
        start = clock()
        while clock() - start < 3 * 3600:
            dispatcher.poll_once()
            clock.advance(dispatcher.next_interval())
    first_minute = sum(1 for t in counting.times if t - start < 60)
    worst_hour = max(sum(1 for t in counting.times if h <= t < h + 3600) for h in counting.times)
    print(f"\nW2 webhooks={webhooks}: first minute {first_minute} calls, worst hour {worst_hour}")
    assert counting.rate_limited == 0 and worst_hour <= 90
    if webhooks:
        assert first_minute == 1  # callbacks carry the news: no early burst of listings
        assert worst_hour <= 45  # half the budget stays for the doorbells' GETs
    else:
        assert first_minute >= 5  # a fresh budget sweeps fast


class _Nowhere:
    def resume(self, record: Any, decisions: Any) -> bool:
        return False

    async def aresume(self, record: Any, decisions: Any) -> bool:
        return False

    def finished(self, record: Any) -> bool:
        return False

    async def afinished(self, record: Any) -> bool:
        return False
