"""T2: a webhook storm against two dispatcher replicas while a poller also runs.

K threads park at a review gate (the graph of ``crash_agent``: gate, then an action that
commits an effect row when approved). Two dispatcher replicas (each its own Gatekeeper,
ledger connection and checkpointer connection) serve their receivers over real HTTP (uvicorn
threads on loopback ports). A reviewer answers the K requests in a shuffled order (about a
third rejected); after each answer its callback is delivered 1–50× (seeded), to a random
replica, in all three documented body shapes, by a pool of senders, most within 0.3 s and
about 10 % of them 1–2 s late (after the threads finished). A poller sweeps every 50 ms the
whole time.

Asserted: every approved action ran exactly once and every rejected one never; every thread
finished; every callback was answered 2xx. Reported: p50/p99/max callback response time.
Default K=20; ``HITL_STRESS=full``: K=200.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from crash_agent import SECRET, Store, thread_config, unfinished
from rel_support import HITLServer, Stress, open_replica, record_summary, serve_asgi, stop_asgi

from hitl_agent._tokens import derive_token
from hitl_agent.gate import Gatekeeper
from hitl_agent.langgraph import GraphResumer

pytestmark = pytest.mark.slow

SENDERS = 16
POLL_EVERY = 0.05
# The local server has no rate limit; the quota path has its own tests (T10, bench_poller).
BUDGET = 1_000_000


@dataclass
class Replica:
    keeper: Gatekeeper
    graph: Any
    dispatcher: Any
    url: str
    closers: list[Any] = field(default_factory=list)


@contextmanager
def replica(server: HITLServer, store: Store) -> Iterator[Replica]:
    """One dispatcher replica: its own client, ledger, checkpointer and receiver."""
    with ExitStack() as stack:
        keeper, graph = open_replica(stack, server, store, budget=BUDGET, pool=8)
        dispatcher = keeper.dispatcher(GraphResumer(graph))
        uv, thread, port = serve_asgi(dispatcher.asgi_app)
        stack.callback(stop_asgi, uv, thread)
        yield Replica(keeper, graph, dispatcher, f"http://127.0.0.1:{port}/hitl")


def _body(request_id: str, shape: int, status: str) -> dict[str, Any]:
    if shape == 0:
        return {"event": "request.completed", "request_id": request_id, "status": status}
    if shape == 1:
        return {"event": "request.completed", "data": {"request_id": request_id}}
    return {"data": {"request": {"id": request_id, "status": status}}}


@dataclass
class StormResult:
    statuses: Counter[int]
    latencies: list[float]
    unfinished: list[str]
    seconds: float


def storm(
    server: HITLServer,
    replicas: list[Replica],
    gates: list[tuple[str, str, str]],  # (thread_id, request_id, key)
    answers: dict[str, str],
    rng: random.Random,
) -> StormResult:
    order = list(gates)
    rng.shuffle(order)
    schedule: list[tuple[float, int, str, dict[str, Any]]] = []  # (due, seq, url, body)
    answer_at: dict[str, float] = {}
    seq = 0
    for index, (_, request_id, key) in enumerate(order):
        at = index * 0.02
        answer_at[request_id] = at
        token = derive_token(SECRET, key)
        status = "completed"
        for _ in range(rng.randint(1, 50)):
            late = rng.random() < 0.1
            delay = rng.uniform(1.0, 2.0) if late else rng.uniform(0.0, 0.3)
            target = rng.choice(replicas)
            body = _body(request_id, rng.randrange(3), status)
            schedule.append((at + delay, seq, f"{target.url}/{token}", body))
            seq += 1
    heapq.heapify(schedule)
    lock = threading.Lock()
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    stop = threading.Event()
    errors: list[BaseException] = []
    start = time.monotonic()

    def reviewer() -> None:
        for _, request_id, _ in order:
            wait = start + answer_at[request_id] - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            server.reviewer.respond(request_id, answers[request_id])

    def sender(http: httpx.Client) -> None:
        while True:
            with lock:
                if not schedule:
                    return
                due, _, url, body = heapq.heappop(schedule)
            wait = start + due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            sent = time.perf_counter()
            response = http.post(url, json=body)
            took = time.perf_counter() - sent
            with lock:
                statuses[response.status_code] += 1
                latencies.append(took)

    def poller() -> None:
        index = 0
        while not stop.is_set():
            try:
                replicas[index % len(replicas)].dispatcher.poll_once()
            except BaseException as exc:  # surfaced by the test
                errors.append(exc)
                return
            index += 1
            stop.wait(POLL_EVERY)

    def waiting() -> list[str]:
        graph = replicas[0].graph
        return [t for t, _, _ in gates if unfinished(graph.get_state(thread_config(t)))]

    poll_thread = threading.Thread(target=poller, daemon=True)
    poll_thread.start()
    with ExitStack() as stack:
        clients = [
            stack.enter_context(
                httpx.Client(timeout=60, limits=httpx.Limits(max_keepalive_connections=4))
            )
            for _ in range(SENDERS)
        ]
        with ThreadPoolExecutor(SENDERS + 1) as pool:
            futures = [pool.submit(reviewer)] + [pool.submit(sender, c) for c in clients]
            for future in futures:
                future.result()
    deadline = time.monotonic() + 120
    left = waiting()
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = waiting()
    stop.set()
    poll_thread.join(60)
    assert not errors, errors
    return StormResult(statuses, latencies, left, time.monotonic() - start)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def check(
    store: Store, gates: list[tuple[str, str, str]], answers: dict[str, str]
) -> dict[str, int]:
    """Executions per outcome: approved-once, approved-missing, approved-dup, rejected-run."""
    runs = Counter(row[0] for row in store.effects().rows())
    counts: Counter[str] = Counter()
    for thread_id, request_id, _ in gates:
        n = runs.get(thread_id, 0)
        if answers[request_id] == "approve":
            counts["approved_once" if n == 1 else ("approved_missing" if n == 0 else "dup")] += 1
        else:
            counts["rejected_ok" if n == 0 else "rejected_ran"] += 1
    return dict(counts)


def test_webhook_storm_exactly_once(hitl_server: HITLServer, store: Store, stress: Stress) -> None:
    reviews = stress.pick(default=20, full=200)
    rng = random.Random(f"{stress.seed}-storm-{store.backend}")
    with replica(hitl_server, store) as first, replica(hitl_server, store) as second:
        gates = []
        for index in range(reviews):
            thread_id = f"t2-{store.backend}-{index}-{rng.getrandbits(32):08x}"
            first.graph.invoke({"amount": index}, thread_config(thread_id))
            (interrupt,) = first.graph.get_state(thread_config(thread_id)).interrupts
            stamp = interrupt.value["hitl_agent"]
            gates.append((thread_id, stamp["request_id"], stamp["key"]))
        answers = {rid: ("reject" if rng.random() < 0.33 else "approve") for _, rid, _ in gates}
        result = storm(hitl_server, [first, second], gates, answers, rng)
        outcome = check(store, gates, answers)
        by_replica = [r.dispatcher.resolver.stats["resumed"] for r in (first, second)]
        rows = [first.keeper.ledger.get(key) for _, _, key in gates]
        resumed = Counter(row.state if row else "missing" for row in rows)
    callbacks = sum(result.statuses.values())
    summary = {
        "matrix": f"T2 {store.backend}",
        "reviews": reviews,
        "replicas": 2,
        "callbacks": callbacks,
        "statuses": dict(result.statuses),
        **outcome,
        "unfinished": len(result.unfinished),
        "ledger_states": dict(resumed),
        "resumed_by_replica": by_replica,
        "p50_ms": round(percentile(result.latencies, 0.5) * 1000, 1),
        "p99_ms": round(percentile(result.latencies, 0.99) * 1000, 1),
        "max_ms": round(max(result.latencies) * 1000, 1),
        "seconds": round(result.seconds, 1),
    }
    record_summary(summary)
    assert set(result.statuses) == {202}, summary  # every callback answered 2xx
    assert not result.unfinished, summary
    assert outcome.get("approved_once", 0) + outcome.get("rejected_ok", 0) == reviews, summary
    assert resumed == Counter({"resumed": reviews}), summary
    assert percentile(result.latencies, 0.99) < 1.0, summary


def test_storm_checker_flags_planted_harm(tmp_path: Any) -> None:
    """Self-test of the counters: a planted double run, a missing run and a rejected run."""
    from rel_support import open_store

    store = open_store("sqlite", tmp_path / "store")
    effects = store.effects()
    gates = [(f"t{i}", f"r{i}", f"k{i}") for i in range(4)]
    answers = {"r0": "approve", "r1": "approve", "r2": "approve", "r3": "reject"}
    effects.record("t0", "r0", True)
    effects.record("t1", "r1", True)
    effects.record("t1", "r1", True)  # double
    effects.record("t3", "r3", True)  # rejected but ran
    assert check(store, gates, answers) == {
        "approved_once": 1,
        "dup": 1,
        "approved_missing": 1,
        "rejected_ran": 1,
    }
