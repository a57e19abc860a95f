"""Poll sweeps under the quota: calls per sweep, and a 3-hour simulation at 100 calls/hour.

``measure_steps``: API calls of one sweep at N pending with 1 % answered, then with 50 % of
the rest answered, against per-request polling (what peers do: one GET per pending request
per tick), on the embedded local server. ``run(quick)`` gives the rows ``bench/run.py``
shows: N ∈ {10, 100, 1,000} (and 10,000 in the full run), each against its bound
ceil(pending/100) + ceil(answered/100), and the simulation at 1,000 (and 10,000) pending.

``simulate``: N reviews pending on the local server with its rate limit on (100/h, 429s past
it), reviewers answering at random (seeded) times, the dispatcher sweeping on its own
schedule (``Dispatcher.next_interval``) on a FakeClock for 3 simulated hours. Reports calls,
429s, decisions found and detection latency (answer → recorded in the ledger).

    .venv/bin/python bench/bench_poller.py [N ...]            # calls per sweep
    .venv/bin/python bench/bench_poller.py --simulate [N ...]  # the 3-hour simulation
    .venv/bin/python bench/bench_poller.py --quick | --full   # the rows bench/run.py shows
"""

from __future__ import annotations

import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import httpx
from _harness import INFO, Result, Target, single
from _seeding import DirectCreates, answer_all

from hitl_agent import HITLClient, RetryPolicy
from hitl_agent.decision import Decision
from hitl_agent.dispatch import CallBudget, Dispatcher
from hitl_agent.gate import CreateTarget, Gatekeeper, ReviewSpec, ensure_request
from hitl_agent.ledger import ReviewRecord, SqliteLedger
from hitl_agent.testing import FakeClock, local_hitl


class _Counting:
    """Counts every request sent through the local server's TestClient (HITLClient needs
    only ``send``, ``build_request`` and ``close``)."""

    def __init__(self, inner: Any, clock: Any = None) -> None:
        self.inner = inner
        self.calls = 0
        self.statuses: dict[int, int] = {}
        self.clock = clock
        self.times: list[float] = []  # when each call was sent (on ``clock``, if given)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def send(self, request: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.clock is not None:
            self.times.append(self.clock())
        response = self.inner.send(request, **kwargs)
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        return response


_SENT_BASELINE = 1_000


def measure(pending: int, answered_fraction: float = 0.1) -> dict[str, float]:
    """Create ``pending`` reviews, answer a fraction, and count the calls of one sweep."""
    return measure_steps(pending, [answered_fraction])[0]


def measure_steps(pending: int, fractions: Sequence[float]) -> list[dict[str, float]]:
    """Create ``pending`` reviews once; then, for each fraction in turn, answer that fraction
    of the reviews still open and count the calls of one sweep (the sweep resolves what it
    found, so each step starts from the rows the previous ones left open). Per step: the
    sweep's calls, an idle sweep's (nothing new: the listing alone), the per-request
    baseline (one GET per open review) and the bound ceil(open/100) + ceil(answered/100)."""
    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp, local_hitl() as hitl:
        counting = _Counting(hitl.http)
        http = cast(httpx.Client, counting)
        client = HITLClient(hitl.api_key, base_url=hitl.base_url, http_client=http)
        ledger = SqliteLedger(Path(tmp) / "ledger.db", synchronous="OFF")
        ledger.setup()
        try:
            keeper = Gatekeeper(
                client=client, loop_id=hitl.loop_id, ledger=ledger,
                budget=CallBudget(10**9),
            )  # fmt: skip
            creates = DirectCreates(hitl)  # seeding is not what is counted
            ids = []
            for index in range(pending):
                spec = ReviewSpec.build(f"Review {index}?")
                row = ensure_request(keeper._target, creates, f"k{index}", spec)  # type: ignore[arg-type]
                ids.append(row.request_id)
            dispatcher = keeper.dispatcher()
            for fraction in fractions:
                rows_open = ledger.list_open(limit=pending + 10)
                still_open = {r.request_id for r in rows_open if r.state == "pending"}
                open_ids = [rid for rid in ids if rid in still_open]
                answered = open_ids[: max(1, int(len(open_ids) * fraction))]
                answer_all(hitl, [str(rid) for rid in answered])
                counting.calls = 0
                dispatcher.poll_once()
                sweep = counting.calls
                counting.calls = 0
                dispatcher.poll_once()  # nothing new: the listing alone
                idle = counting.calls
                # The baseline: one GET per pending request. Sent (and counted) up to 1,000;
                # past that the count is the same by construction and sending 20,000 GETs
                # would take most of the run.
                counting.calls = 0
                for request_id in open_ids[:_SENT_BASELINE]:
                    client.requests.get(str(request_id))
                baseline = counting.calls + max(0, len(open_ids) - _SENT_BASELINE)
                bound = math.ceil(len(open_ids) / 100) + math.ceil(len(answered) / 100)
                rows.append({
                    "pending": len(open_ids), "answered": len(answered), "sweep_calls": sweep,
                    "idle_calls": idle, "bound": bound, "baseline_calls": baseline,
                    "ratio": baseline / max(1, sweep),
                })  # fmt: skip
        finally:
            ledger.close()
    return rows


class _Forward:
    """The app the local server's callbacks reach: the dispatcher's receiver, once set."""

    def __init__(self) -> None:
        self.target: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.target is None or scope["type"] != "http":
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await self.target(scope, receive, send)


class _Recorder:
    """A resumer that notes when each decision reached it (the detection time)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.found: dict[str, float] = {}

    def resume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool:
        for decision in decisions:
            self.found.setdefault(decision.request_id, self.clock())
        return True

    async def aresume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool:
        return self.resume(record, decisions)

    def finished(self, record: ReviewRecord) -> bool:
        return False

    async def afinished(self, record: ReviewRecord) -> bool:
        return False


def simulate(
    pending: int,
    *,
    decisions: int | None = None,
    hours: float = 3.0,
    rate_limit: int = 100,
    seed: int = 7,
    callbacks: bool = False,
    poll_interval: float | None = None,
) -> dict[str, Any]:
    """``pending`` open reviews, ``decisions`` answered at random times, ``hours`` on a
    FakeClock against the local server at ``rate_limit`` calls/hour. With ``callbacks`` the
    server POSTs each answer's callback into the dispatcher's receiver (whose GET is charged
    to the same budget). ``poll_interval`` fixes the sweep interval instead of the derived
    schedule (the budget still refuses what would exceed it)."""
    answers = decisions if decisions is not None else max(3, pending * 3 // 100)
    rng = random.Random(seed)
    clock = FakeClock()
    forward = _Forward()
    callback_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=forward))
    with (
        tempfile.TemporaryDirectory() as tmp,
        local_hitl(clock=clock, callback_client=callback_client) as hitl,
    ):
        ledger = SqliteLedger(Path(tmp) / "ledger.db", synchronous="OFF")
        ledger.setup()
        try:
            # Setup with the quota off: N creates would take N/100 hours otherwise.
            target = CreateTarget(
                ledger=ledger, loop_id=hitl.loop_id,
                callback_url="http://app.test/hitl" if callbacks else None,
                callback_secret="bench-callback-secret-0123456789abcdef" if callbacks else None,
                clock=clock,
            )  # fmt: skip
            spec = ReviewSpec.build("Refund?", timeout_seconds=86_400)
            creates = DirectCreates(hitl)  # seeding is not what is counted
            ids = [
                str(ensure_request(target, creates, f"k{i}", spec).request_id)  # type: ignore[arg-type]
                for i in range(pending)
            ]
            hitl.server.rate_limit = rate_limit
            counting = _Counting(hitl.http, clock)
            client = HITLClient(
                hitl.api_key, base_url=hitl.base_url, http_client=cast(httpx.Client, counting),
                retry=RetryPolicy(max_retries=0),
            )  # fmt: skip
            recorder = _Recorder(clock)
            extra: dict[str, Any] = {"webhooks": True} if callbacks else {}
            if poll_interval is not None:
                extra["poll_interval"] = poll_interval  # a user's fixed interval
            dispatcher = Dispatcher(
                ledger=ledger, client=client, resumer=recorder, loop_id=hitl.loop_id,
                clock=clock, callback_path="/hitl", **extra,
            )  # fmt: skip
            forward.target = dispatcher.asgi_app
            # The product's own schedule (its fixed poll_interval on code that has none).
            interval = getattr(dispatcher, "next_interval", lambda: dispatcher.poll_interval)
            start = clock()
            end = start + hours * 3600
            events = sorted(
                (start + rng.uniform(0, 0.8 * hours * 3600), rid, rng.random() < 0.5)
                for rid in rng.sample(ids, answers)
            )
            answered: dict[str, float] = {}
            next_sweep = start
            sweeps = 0
            wall = time.perf_counter()
            while True:
                due = min(next_sweep, events[0][0] if events else math.inf)
                if due > end:
                    break
                clock.advance(max(0.0, due - clock()))
                while events and events[0][0] <= clock():
                    _, rid, approve = events.pop(0)
                    hitl.reviewer.respond(rid, approve)
                    answered[rid] = clock()
                    if callbacks:
                        hitl.tick_sync()  # the server delivers the callback
                if clock() >= next_sweep:
                    dispatcher.poll_once()
                    sweeps += 1
                    next_sweep = clock() + float(interval())
            wall = time.perf_counter() - wall
        finally:
            ledger.close()
            portal = hitl.http.portal
            assert portal is not None
            portal.call(callback_client.aclose)
    latencies = sorted(
        recorder.found[rid] - answered[rid] for rid in answered if rid in recorder.found
    )
    return {
        "pending": pending,
        "decisions": len(answered),
        "found": len(latencies),
        "calls": counting.calls,
        "rate_limited": counting.statuses.get(429, 0),
        "sweeps": sweeps,
        "latency_p50": statistics.median(latencies) if latencies else math.inf,
        "latency_max": max(latencies) if latencies else math.inf,
        "calls_per_hour": counting.calls / hours,
        "busiest_hour": _busiest_window(counting.times, 3600.0),
        "wall_seconds": wall,
    }


def _busiest_window(times: Sequence[float], width: float) -> int:
    """The most calls sent in any window of ``width`` seconds (sliding, not clock hours)."""
    ordered = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(ordered):
        while ordered[first] <= at - width:
            first += 1
        most = max(most, last - first + 1)
    return most


def main_simulate(sizes: list[int], callbacks: bool = False) -> None:
    print(f"{'callbacks':>9} {'pending':>8} {'decisions':>9} {'found':>6} {'calls':>6} {'429s':>5} "
          f"{'sweeps':>7} {'p50 s':>7} {'max s':>7} {'wall s':>7}")  # fmt: skip
    for size in sizes:
        row = simulate(size, callbacks=callbacks)
        print(f"{callbacks!s:>9} {row['pending']:>8} {row['decisions']:>9} {row['found']:>6} "
              f"{row['calls']:>6} {row['rate_limited']:>5} {row['sweeps']:>7} "
              f"{row['latency_p50']:>7.0f} {row['latency_max']:>7.0f} "
              f"{row['wall_seconds']:>7.1f}")  # fmt: skip


def main(sizes: list[int]) -> None:
    print(f"{'pending':>8} {'answered':>9} {'sweep calls':>12} {'bound':>6} "
          f"{'idle sweep':>11} {'per-request':>12} {'ratio':>7}")  # fmt: skip
    for size in sizes:
        row = measure(size)
        print(f"{row['pending']:>8} {row['answered']:>9} {row['sweep_calls']:>12} "
              f"{row['bound']:>6} {row['idle_calls']:>11} {row['baseline_calls']:>12} "
              f"{row['ratio']:>6.1f}x")  # fmt: skip


def _sweep_rows(pending: int) -> list[Result]:
    rows = []
    for label, step in zip(("1 %", "50 %"), measure_steps(pending, [0.01, 0.5]), strict=True):
        row = Result(
            f"API calls per sweep, {pending:,} pending, {label} answered", "calls",
            Target("ours<=", step["bound"]), baseline_name="one GET per pending request",
            note=f"{step['pending']:,} pending, {step['answered']:,} answered; target "
            f"ceil(pending/100) + ceil(answered/100); idle sweep {step['idle_calls']}",
        )  # fmt: skip
        row.ours_runs.append(step["sweep_calls"])
        row.baseline_runs.append(step["baseline_calls"])
        rows.append(row)
    return rows


def _simulation_rows(pending: int) -> list[Result]:
    sim = simulate(pending)
    where = f"{pending:,} pending, 3 h at 100 calls/h"
    found = 100.0 * sim["found"] / sim["decisions"] if sim["decisions"] else 0.0
    detection = Target("ours<=", 600) if pending <= 1000 else INFO
    note = f"{sim['calls']} calls, {sim['sweeps']} sweeps, {sim['wall_seconds']:.1f} s wall"
    return [
        single(f"quota simulation: calls in the busiest hour, {where}", "calls",
               Target("ours<=", 100), [sim["busiest_hour"]], note=note),
        single(f"quota simulation: 429 responses, {where}", "429s", Target("ours<=", 0),
               [sim["rate_limited"]]),
        single(f"quota simulation: decisions found, {where}", "%", Target("ours>=", 100),
               [found], note=f"{sim['found']} of {sim['decisions']}"),
        single(f"quota simulation: worst answer→detection, {where}", "s", detection,
               [sim["latency_max"]], note=f"p50 {sim['latency_p50']:.0f} s"),
    ]  # fmt: skip


def run(quick: bool) -> list[Result]:
    """Calls are counts, not timings: one run each (the same on every run)."""
    rows: list[Result] = []
    # quick: N ≤ 100 and the simulation at 150 pending (creating and answering 1,000 through
    # the local server takes most of the quick budget on 2 cores); the targets' N = 1,000
    # rows are in the full run.
    for pending in (10, 100) if quick else (10, 100, 1000, 10_000):
        rows += _sweep_rows(pending)
    for pending in (150,) if quick else (1000, 10_000):
        rows += _simulation_rows(pending)
    return rows


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] in (["--quick"], ["--full"]):
        from _harness import print_table

        print_table(run(args[0] == "--quick"))
    elif args[:1] == ["--simulate"]:
        callbacks = "--callbacks" in args
        sizes = [int(arg) for arg in args[1:] if arg != "--callbacks"]
        main_simulate(sizes or [100, 150, 1000, 10_000], callbacks=callbacks)
    else:
        main([int(arg) for arg in args] or [10, 100, 1000])
