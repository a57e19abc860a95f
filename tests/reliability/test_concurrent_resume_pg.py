"""T3 on PostgreSQL: N simultaneous resolves of one decided review → one winner, action once.

Each trial parks one thread (PostgresLedger + PostgresSaver in a fresh schema), the reviewer
approves, and N racers meet at a barrier and resolve it at once, each through its own
dispatcher replica (its own ledger pool, checkpointer connection and GraphResumer), by the
three entry paths in turn: a manual ``resolve``, a ``poll_once`` sweep, and the callback
posted to the replica's receiver. Asserted per trial: exactly one racer delivered, the effect
row exists once, the thread finished, the ledger row is ``resumed``.

The baseline (canary) races N bare ``GraphResumer.resume`` calls, i.e. without the ledger's
claim: the harness must see the action run more than once.

Default: 10 trials per N ∈ {2, 3, 8}; ``HITL_STRESS=full``: 1000 trials per N.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from crash_agent import SECRET, Store, thread_config, unfinished
from rel_support import HITLServer, Stress, open_replica, open_store, record_summary

from hitl_agent._tokens import derive_token
from hitl_agent.decision import Decision
from hitl_agent.gate import Gatekeeper
from hitl_agent.langgraph import GraphResumer

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

PATHS = ("resolve", "poll", "webhook")


@dataclass
class Racer:
    keeper: Gatekeeper
    graph: Any
    dispatcher: Any
    resumer: GraphResumer


@contextmanager
def racers(server: HITLServer, store: Store, count: int) -> Iterator[list[Racer]]:
    with ExitStack() as stack:
        made = []
        for _ in range(count):
            keeper, graph = open_replica(stack, server, store, budget=1_000_000, pool=2)
            resumer = GraphResumer(graph)
            made.append(Racer(keeper, graph, keeper.dispatcher(resumer), resumer))
        yield made


def _ring(racer: Racer, request_id: str, key: str) -> list[Decision]:
    """The webhook path: the callback through the replica's receiver (resolve runs inside)."""
    before = racer.dispatcher.resolver.stats["resumed"]

    async def post() -> int:
        transport = httpx.ASGITransport(app=racer.dispatcher.asgi_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as http:
            body = {"event": "request.completed", "request_id": request_id}
            response = await http.post(f"/hitl/{derive_token(SECRET, key)}", json=body)
            return response.status_code

    assert asyncio.run(post()) == 202
    won = racer.dispatcher.resolver.stats["resumed"] - before
    return [Decision(request_id=request_id, status="completed", outcome="approved")] * won


def park(server: HITLServer, racer: Racer, thread_id: str) -> tuple[str, str]:
    racer.graph.invoke({"amount": 1}, thread_config(thread_id))
    (interrupt,) = racer.graph.get_state(thread_config(thread_id)).interrupts
    stamp = interrupt.value["hitl_agent"]
    server.reviewer.respond(stamp["request_id"], "approve")
    return stamp["request_id"], stamp["key"]


def race(
    server: HITLServer, store: Store, group: list[Racer], thread_id: str, rng: random.Random
) -> dict[str, Any]:
    request_id, key = park(server, group[0], thread_id)
    barrier = threading.Barrier(len(group))
    delivered: list[int] = [0] * len(group)
    errors: list[BaseException] = []
    offset = rng.randrange(len(PATHS))

    def run(index: int) -> None:
        racer = group[index]
        path = PATHS[(index + offset) % len(PATHS)]
        try:
            barrier.wait(30)
            if path == "resolve":
                got = racer.dispatcher.resolve(request_id)
            elif path == "poll":
                got = racer.dispatcher.poll_once()
            else:
                got = _ring(racer, request_id, key)
            delivered[index] = len(got)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(group))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    row = group[0].keeper.ledger.get(key)
    return {
        "winners": sum(1 for d in delivered if d),
        "executions": len(store.effects().rows(thread_id)),
        "finished": not unfinished(group[0].graph.get_state(thread_config(thread_id))),
        "state": row.state if row else "missing",
    }


@pytest.fixture
def pg_store(tmp_path: Any) -> Iterator[Store]:
    store = open_store("postgres", tmp_path)
    try:
        yield store
    finally:
        store.drop()


@pytest.mark.parametrize("n", [2, 3, 8])
def test_concurrent_resume_single_winner(
    hitl_server: HITLServer, pg_store: Store, stress: Stress, n: int
) -> None:
    trials = stress.pick(default=10, full=1000)
    rng = random.Random(f"{stress.seed}-t3-{n}")
    bad = []
    tally: Counter[str] = Counter()
    started = time.monotonic()
    with racers(hitl_server, pg_store, n) as group:
        for trial in range(trials):
            result = race(hitl_server, pg_store, group, f"t3-{n}-{trial}", rng)
            ok = result == {"winners": 1, "executions": 1, "finished": True, "state": "resumed"}
            tally["ok" if ok else "bad"] += 1
            tally["double_executions"] += max(0, result["executions"] - 1)
            tally["no_winner"] += result["winners"] == 0
            tally["several_winners"] += result["winners"] > 1
            if not ok:
                bad.append((trial, result))
    record_summary(
        {
            "matrix": f"T3 postgres N={n}",
            "trials": trials,
            **tally,
            "seconds": round(time.monotonic() - started, 1),
        }
    )
    assert not bad, bad


def test_baseline_without_claim_double_executes(
    hitl_server: HITLServer, pg_store: Store, stress: Stress
) -> None:
    """Canary: the same race on bare GraphResumer.resume (no ledger claim) runs twice."""
    trials = stress.pick(default=5, full=20)
    doubled = 0
    with racers(hitl_server, pg_store, 2) as group:
        for trial in range(trials):
            thread_id = f"t3-baseline-{trial}"
            request_id, key = park(hitl_server, group[0], thread_id)
            group[0].dispatcher.resolver.record(
                group[0].keeper.ledger.get(key),  # type: ignore[arg-type]
                hitl_server.client.requests.get(request_id),
            )
            row = group[0].keeper.ledger.get(key)
            assert row is not None and row.decision is not None
            decisions = [Decision.model_validate(row.decision)]
            barrier = threading.Barrier(2)

            def bare(
                racer: Racer, row: Any = row, decisions: Any = decisions, barrier: Any = barrier
            ) -> None:
                barrier.wait(30)
                racer.resumer.resume(row, decisions)

            threads = [threading.Thread(target=bare, args=(r,)) for r in group]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            doubled += len(pg_store.effects().rows(thread_id)) > 1
    record_summary({"matrix": "T3 baseline without claim (postgres, N=2)", "trials": trials,
                    "double_executions": doubled})  # fmt: skip
    assert doubled >= 1, "the harness never saw the unguarded race double-execute"
