"""Against a peer: API calls per minute per pending approval while an agent waits (issue 12,
item 7), humanlayer 0.7.9's ``require_approval`` beside our blocking ``keeper.review()``.

* **HumanLayer** (the optional ``bench`` extra: ``pip install -e '.[bench]'``): its
  ``require_approval`` creates a function call, then GETs it after every ``sleep(3)`` until it
  is answered. It runs against a local stub of its API (``/humanlayer/v1/function_calls``) on
  loopback, with its own ``sleep=`` hook replaced by one that only adds up the seconds it was
  asked to sleep, so a virtual minute of waiting takes milliseconds. The stub answers each
  call after 20 GETs and counts every request: calls ÷ virtual minutes waited ÷ pending.
* **Ours**: ``keeper.review(mode="block")`` in P threads against the local HITL server on
  loopback, every API call counted by an httpx event hook. The waits run for real with
  ``poll_interval`` shortened to ``INTERVAL``; the calls counted in the waiting window are
  scaled to the default ``poll_interval`` of 60 s (calls per sweep stay the same, sweeps per
  minute follow the interval), so both sides are compared at their defaults.
"""

from __future__ import annotations

import itertools
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from _harness import INFO, Result, print_table, skipped
from _loopback import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hitl_agent import HITLClient, RetryPolicy
from hitl_agent.dispatch import CallBudget
from hitl_agent.gate import Gatekeeper
from hitl_agent.ledger import SqliteLedger
from hitl_agent.server import create_app
from hitl_agent.testing import ScriptedReviewer

ANSWER_AFTER = 20  # GETs before the stub approves: one virtual minute at HumanLayer's 3 s
DEFAULT_INTERVAL = 60.0  # Gatekeeper's default poll_interval
INTERVAL = 0.25  # the shortened interval the real waits run with


class HumanLayerStub:
    """The two endpoints ``require_approval`` uses, counting every request."""

    def __init__(self) -> None:
        self.calls: dict[str, dict[str, Any]] = {}
        self.gets: dict[str, int] = {}
        self.requests = 0
        self.lock = threading.Lock()

    def app(self) -> Starlette:
        async def create(request: Request) -> JSONResponse:
            body = await request.json()
            with self.lock:
                self.requests += 1
                self.calls[body["call_id"]] = body
                self.gets[body["call_id"]] = 0
            return JSONResponse(body)

        async def get(request: Request) -> JSONResponse:
            call_id = request.path_params["call_id"]
            with self.lock:
                self.requests += 1
                self.gets[call_id] += 1
                call = dict(self.calls[call_id])
                if self.gets[call_id] >= ANSWER_AFTER:
                    call["status"] = {"approved": True, "comment": "ok"}
            return JSONResponse(call)

        return Starlette(
            routes=[
                Route("/humanlayer/v1/function_calls", create, methods=["POST"]),
                Route("/humanlayer/v1/function_calls/{call_id}", get, methods=["GET"]),
            ]
        )


def humanlayer_rate(pending: int) -> float:
    """HumanLayer's API calls per minute per pending approval."""
    from humanlayer import HumanLayer

    stub = HumanLayerStub()
    served = serve(stub.app(), lifespan="off")
    slept: dict[int, float] = {}
    try:

        def fake_sleep(seconds: float) -> None:
            ident = threading.get_ident()
            slept[ident] = slept.get(ident, 0.0) + seconds

        hl = HumanLayer(
            api_key="bench-key", api_base_url=f"{served.url}/humanlayer/v1", sleep=fake_sleep
        )

        @hl.require_approval()
        def refund(order: int) -> str:
            return f"refunded {order}"

        results: list[str] = []
        threads = [
            threading.Thread(target=lambda i=i: results.append(refund(order=i)))
            for i in range(pending)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        served.stop()
    assert sorted(results) == sorted(f"refunded {i}" for i in range(pending)), results
    minutes = sum(slept.values()) / 60  # virtual minutes waited, all approvals together
    return stub.requests / minutes


def ours_rate(pending: int, window: float) -> float:
    """Our API calls per minute per pending approval, at the default poll interval."""
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Path(tmp) / "hitl.db", scheduler_interval=None)
        creds = app.state.hitl.bootstrap()
        served = serve(app)
        calls = itertools.count()
        counted = [0]

        def count(request: httpx.Request) -> None:
            counted[0] = next(calls) + 1

        base_url = f"{served.url}/v1"
        http = httpx.Client(timeout=60, event_hooks={"request": [count]})
        side = httpx.Client(timeout=60)  # the reviewer's calls are not the agent's quota
        client = HITLClient(
            creds.api_key, base_url=base_url, http_client=http, retry=RetryPolicy(max_retries=0)
        )
        reviewer = ScriptedReviewer(side, creds.reviewer_token, base_url)
        ledger = SqliteLedger(Path(tmp) / "ledger.db")
        ledger.setup()
        keeper = Gatekeeper(
            client=client, loop_id=creds.loop_id, ledger=ledger,
            poll_interval=INTERVAL, budget=CallBudget(limit=10**9),
        )  # fmt: skip
        decisions: list[Any] = []
        threads = [
            threading.Thread(
                target=lambda i=i: decisions.append(
                    keeper.review(f"Refund order {i}?", mode="block", wait_timeout=60)
                )
            )
            for i in range(pending)
        ]
        try:
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 60
            while len(reviewer.queue()) < pending:
                if time.monotonic() > deadline:
                    raise TimeoutError("the reviews were never created")
                time.sleep(0.02)
            time.sleep(INTERVAL)  # creates done; the waits are in their steady state
            before = counted[0]
            time.sleep(window)
            during = counted[0] - before
            for item in reviewer.queue():
                reviewer.respond(item.get("request_id") or item["id"], True)
            for thread in threads:
                thread.join(60)
        finally:
            keeper.close()
            ledger.close()
            http.close()
            side.close()
            served.stop()
            app.state.hitl.close()
    assert len(decisions) == pending and all(d.approved for d in decisions)
    per_minute_real = during / (window / 60) / pending
    return per_minute_real * INTERVAL / DEFAULT_INTERVAL


def run(quick: bool) -> list[Result]:
    runs, window = (1, 1.0) if quick else (3, 2.0)
    rows = []
    try:
        import humanlayer  # noqa: F401
    except ImportError as exc:
        reason = f"humanlayer==0.7.9 is not installed (pip install -e '.[bench]'): {exc}"
    else:
        reason = ""
    for pending in (1, 10):
        name = f"API calls/min per pending approval, {pending} pending, blocking wait"
        if reason:
            rows.append(skipped(name, "calls/min", INFO, reason))
            continue
        row = Result(
            name, "calls/min", INFO, baseline_name="humanlayer 0.7.9 require_approval",
            note="ours at poll_interval=60 s, HumanLayer at its fixed 3 s",
        )  # fmt: skip
        for _ in range(runs):
            row.ours_runs.append(ours_rate(pending, window))
            row.baseline_runs.append(humanlayer_rate(pending))
        rows.append(row)
    return rows


if __name__ == "__main__":
    print_table(run("--quick" in sys.argv))
