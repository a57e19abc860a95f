"""API calls per poll sweep at 10 / 100 / 1000 pending reviews, against per-request polling.

Runs against the embedded local server, counting every API call through a counting
transport. Per-request polling (what peers do: one GET per pending request per tick) is the
baseline. Each sweep finds 10 % of the requests answered.

    .venv/bin/python bench/bench_poller.py [N ...]
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path
from typing import Any, cast

import httpx

from hitl_agent import HITLClient
from hitl_agent.dispatch import CallBudget
from hitl_agent.gate import Gatekeeper
from hitl_agent.ledger import SqliteLedger
from hitl_agent.testing import local_hitl


class _Counting:
    """Counts every request sent through the local server's TestClient (HITLClient needs
    only ``send``, ``build_request`` and ``close``)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def send(self, request: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.inner.send(request, **kwargs)


def measure(pending: int, answered_fraction: float = 0.1) -> dict[str, float]:
    """Create ``pending`` reviews, answer a fraction, and count the calls of one sweep."""
    with tempfile.TemporaryDirectory() as tmp, local_hitl() as hitl:
        counting = _Counting(hitl.http)
        http = cast(httpx.Client, counting)
        client = HITLClient(hitl.api_key, base_url=hitl.base_url, http_client=http)
        ledger = SqliteLedger(Path(tmp) / "ledger.db")
        ledger.setup()
        try:
            keeper = Gatekeeper(
                client=client, loop_id=hitl.loop_id, ledger=ledger,
                budget=CallBudget(10**9),
            )  # fmt: skip
            from hitl_agent.gate import ReviewSpec, ensure_request

            ids = []
            for index in range(pending):
                spec = ReviewSpec.build(f"Review {index}?")
                ids.append(ensure_request(keeper._target, client, f"k{index}", spec).request_id)
            answered = ids[: max(1, int(pending * answered_fraction))]
            for request_id in answered:
                hitl.reviewer.respond(request_id, True)
            dispatcher = keeper.dispatcher()
            counting.calls = 0
            dispatcher.poll_once()
            sweep = counting.calls
            counting.calls = 0
            dispatcher.poll_once()  # nothing new: the listing alone
            idle = counting.calls
            counting.calls = 0
            for request_id in ids:  # the baseline: one GET per pending request
                client.requests.get(request_id)
            baseline = counting.calls
        finally:
            ledger.close()
    bound = math.ceil(pending / 100) + len(answered)
    return {"pending": pending, "answered": len(answered), "sweep_calls": sweep, "idle_calls": idle,
            "bound": bound, "baseline_calls": baseline, "ratio": baseline / sweep}  # fmt: skip


def main(sizes: list[int]) -> None:
    print(f"{'pending':>8} {'answered':>9} {'sweep calls':>12} {'bound':>6} "
          f"{'idle sweep':>11} {'per-request':>12} {'ratio':>7}")  # fmt: skip
    for size in sizes:
        row = measure(size)
        print(f"{row['pending']:>8} {row['answered']:>9} {row['sweep_calls']:>12} "
              f"{row['bound']:>6} {row['idle_calls']:>11} {row['baseline_calls']:>12} "
              f"{row['ratio']:>6.1f}x")  # fmt: skip


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [10, 100, 1000])
