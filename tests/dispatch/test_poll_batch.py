"""A list page's answers are recorded in one ledger transaction (issue 12, throughput).

Before, the poller stored each answer of a page in its own transaction: under SQLite's
``synchronous=FULL`` that is one fsync per answer (0.6 ms each on this machine's disk) on
top of the resume itself.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from hitl_agent.decision import Decision
from hitl_agent.dispatch import Dispatcher
from hitl_agent.gate import CreateTarget, ReviewSpec, ensure_request
from hitl_agent.gate._blocking import BlockingResumer, WaitHub
from hitl_agent.ledger import SqliteLedger
from hitl_agent.models.requests import CreateRequestParams
from hitl_agent.testing import local_hitl

_OLD_BODY = CreateRequestParams.build(
    **ReviewSpec.build("Old request", timeout_seconds=60).create_kwargs("old", None)
).to_body()


class _CountingLedger(SqliteLedger):
    """Counts the decision writes and their transactions."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.single = 0
        self.batches: list[int] = []

    def record_decision(self, request_id: str, decision: dict[str, Any], *, now: float) -> bool:
        self.single += 1
        return super().record_decision(request_id, decision, now=now)

    def record_decisions(self, decisions: Any, *, now: float) -> list[bool]:
        self.batches.append(len(decisions))
        return super().record_decisions(decisions, now=now)


@pytest.fixture
def ledger() -> Iterator[_CountingLedger]:
    with tempfile.TemporaryDirectory() as tmp:
        ledger = _CountingLedger(Path(tmp) / "ledger.db")
        ledger.setup()
        yield ledger
        ledger.close()


def _open_requests(hitl: Any, ledger: SqliteLedger, count: int) -> list[str]:
    """``count`` pending reviews created through the gate's create path."""
    target = CreateTarget(
        ledger=ledger, loop_id=hitl.loop_id, callback_url=None, callback_secret=None,
        clock=time.time,
    )  # fmt: skip
    spec = ReviewSpec.build("Deploy?", timeout_seconds=86_400)
    return [
        str(ensure_request(target, hitl.client, f"k{i}", spec).request_id) for i in range(count)
    ]


def test_a_pages_answers_are_recorded_in_one_transaction(ledger: _CountingLedger) -> None:
    with local_hitl() as hitl:
        ids = _open_requests(hitl, ledger, 60)
        hub = WaitHub(autostart=False)
        dispatcher = Dispatcher(
            ledger=ledger, client=hitl.client, resumer=BlockingResumer(hub), loop_id=hitl.loop_id
        )
        futures: list[Future[Decision]] = [hub.register(dispatcher, rid) for rid in ids]
        for index, rid in enumerate(ids[:50]):  # 50 answered, 10 still pending
            hitl.reviewer.respond(rid, index % 2 == 0)
        delivered = dispatcher.poll_once()
        assert len(delivered) == 50
        assert ledger.batches == [50] and ledger.single == 0
        assert [f.result(0).approved for f in futures[:50]] == [i % 2 == 0 for i in range(50)]
        assert not any(f.done() for f in futures[50:])
        rows = [ledger.get_by_request_id(rid) for rid in ids]
        assert [r.state for r in rows if r] == ["resumed"] * 50 + ["pending"] * 10
        # A later sweep finds the same answers on its page again: nothing is recorded twice.
        hitl.reviewer.respond(ids[50], True)
        assert [d.request_id for d in dispatcher.poll_once()] == [ids[50]]
        assert ledger.single == 1  # one new answer alone: the single-row write
        assert futures[50].result(0).approved


def test_answers_that_left_the_pending_list_are_listed_not_fetched_one_by_one(
    ledger: _CountingLedger,
) -> None:
    """A pending-list pass (the cheapest while the loop holds many newer answered requests:
    1,000 of other callers here) that sees many rows gone (answered meanwhile) leaves them to a
    listing of answers, 100 a call, instead of one GET each (seen in bench_blocking: 2,954
    GETs after answers landed between sweeps). A few gone rows are still fetched alone."""
    from hitl_agent.server import _requests

    with local_hitl() as hitl:
        server = hitl.server
        caller = server.authenticate_key(hitl.api_key)
        ids = _open_requests(hitl, ledger, 150)
        history = [
            server.run(_requests.create_request, caller, hitl.loop_id, _OLD_BODY)["id"]
            for _ in range(1_000)
        ]
        with server.storage.transaction() as conn:  # the loop's other requests, answered
            conn.executemany(
                "UPDATE requests SET status = 'completed', response_data = '\"Yes\"', "
                "response_at = created_at WHERE id = ?",
                [(rid,) for rid in history],
            )
        hub = WaitHub(autostart=False)
        dispatcher = Dispatcher(
            ledger=ledger, client=hitl.client, resumer=BlockingResumer(hub), loop_id=hitl.loop_id
        )
        futures = {rid: hub.register(dispatcher, rid) for rid in ids}
        poller = dispatcher.poller
        assert dispatcher.poll_once() == []  # a full listing: it learns the 1,000 answered
        first = poller.calls
        for rid in ids[:120]:
            hitl.reviewer.respond(rid, True)
        delivered = dispatcher.poll_once()  # the pending list is now the cheapest pass
        delivered += dispatcher.poll_once()
        assert sorted(d.request_id for d in delivered) == sorted(ids[:120])
        assert all(futures[rid].result(0).approved for rid in ids[:120])
        # One pending page, then a listing that carries the answers among the loop's 1,000
        # others (12 pages here). A GET each would be 120 calls on top of the pending page.
        assert poller.calls - first <= 15, poller.calls - first
        # One row answered: fetched alone (one GET is cheaper than any listing).
        hitl.reviewer.respond(ids[120], True)
        before = poller.calls
        delivered = dispatcher.poll_once() + dispatcher.poll_once()
        assert [d.request_id for d in delivered] == [ids[120]]
        assert poller.calls - before <= 4
