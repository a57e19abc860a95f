"""Issue 24: two dispatchers (two replicas) on one PostgreSQL ledger scrape the same ledger
figures; the per-process counters add up to the run."""

from __future__ import annotations

import dataclasses
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hitl_harness import Env, refund_graph
from langgraph.checkpoint.memory import InMemorySaver
from obs_support import samples, value

from hitl_agent.gate import Gatekeeper
from hitl_agent.langgraph import GraphResumer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pg_support import PG_URL, require_postgres


@pytest.fixture
def shared(env: Env) -> Iterator[tuple[Env, Gatekeeper, Gatekeeper]]:
    require_postgres()
    import psycopg
    from psycopg import sql

    from hitl_agent.ledger import PostgresLedger

    schema = f"hitl_obs_{uuid.uuid4().hex[:12]}"
    first = PostgresLedger(PG_URL, schema=schema, clock=env.clock)
    first.setup()
    second = PostgresLedger(PG_URL, schema=schema, clock=env.clock)
    common = {"client": env.hitl.client, "loop_id": env.hitl.loop_id, "clock": env.clock,
              "callback_url": "http://app.test/hitl", "callback_secret": "s" * 32}  # fmt: skip
    keepers = (Gatekeeper(ledger=first, **common), Gatekeeper(ledger=second, **common))
    try:
        yield dataclasses.replace(env, keeper=keepers[0]), keepers[0], keepers[1]
    finally:
        first.close()
        second.close()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def test_two_replicas_on_one_postgres_ledger_agree(
    shared: tuple[Env, Gatekeeper, Gatekeeper],
) -> None:
    env, keeper_a, keeper_b = shared
    effects: list[str] = []
    graph = refund_graph(env, InMemorySaver(), effects)
    replica_a = keeper_a.dispatcher(GraphResumer(graph))
    replica_b = keeper_b.dispatcher(GraphResumer(graph))
    for amount, thread in enumerate(("x1", "x2", "x3", "x4"), start=1):
        graph.invoke({"amount": amount}, {"configurable": {"thread_id": thread}})
    rows = {r.thread_id: r.request_id for r in keeper_a.ledger.list_rows()}
    env.forwarder.target = replica_a.health_app  # callbacks reach replica A
    env.clock.advance(60)
    env.hitl.reviewer.respond(str(rows["x1"]), "approve")
    env.hitl.reviewer.respond(str(rows["x2"]), "reject")
    env.tick()
    env.forwarder.target = None  # replica B's sweep finds the next answer
    env.hitl.reviewer.respond(str(rows["x3"]), "approve")
    env.tick()
    assert len(replica_b.poll_once()) == 1
    assert sorted(effects) == ["refund 1", "refund 3"]

    scraped = [samples(replica.metrics.render()) for replica in (replica_a, replica_b)]
    for found in scraped:
        assert value(found, "hitl_reviews_pending", priority="medium") == 1
        assert value(found, "hitl_decisions_total", outcome="approved") == 2
        assert value(found, "hitl_decisions_total", outcome="rejected") == 1
        assert value(found, "hitl_review_wait_seconds_count") == 3
        assert value(found, "hitl_review_wait_seconds_sum") == 180
    ledger_names = ("hitl_reviews_pending", "hitl_decisions_total", "hitl_review_wait_seconds")
    same = [{k: v for k, v in found.items() if k[0].startswith(ledger_names)} for found in scraped]
    assert same[0] == same[1]
    # Per process: A resumed two by webhook, B one by its sweep; summed they are the run.
    webhook = [value(f, "hitl_resumes_total", source="webhook") for f in scraped]
    poll = [value(f, "hitl_resumes_total", source="poll") for f in scraped]
    assert webhook == [2, 0] and poll == [0, 1]
