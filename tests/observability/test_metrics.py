"""Issue 24 item 1: ``GET /metrics`` after a scripted run (two approvals and a rejection
resumed by callbacks, a timeout, an approval resumed by a poll sweep), read back with
prometheus_client's parser (or the minimal reader when it is not installed)."""

from __future__ import annotations

from typing import Any

import pytest
from hitl_harness import Env, refund_graph
from langgraph.checkpoint.memory import InMemorySaver
from obs_support import samples, value
from starlette.testclient import TestClient

from hitl_agent.dispatch import Dispatcher
from hitl_agent.langgraph import GraphResumer
from hitl_agent.observability import CONTENT_TYPE, OUTCOMES


def _rid(env: Env, thread_id: str) -> str:
    row = next(r for r in env.ledger.list_rows() if r.thread_id == thread_id)
    assert row.request_id is not None
    return row.request_id


def _scrape(dispatcher: Dispatcher) -> dict[Any, float]:
    dispatcher.metrics._cached = None  # the cache is real seconds: read the ledger now
    with TestClient(dispatcher.health_app) as client:
        response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE
    return samples(response.text)


def scripted_run(env: Env) -> tuple[Dispatcher, list[str]]:
    """Five reviews: a1, a2 approved and r1 rejected through callbacks (30 s, 30 s, 90 s),
    p1 approved while callbacks are down and resumed by a poll sweep (120 s), t1 timed out
    (3600 s, its timeout's callback resumes it)."""
    effects: list[str] = []
    graph = refund_graph(env, InMemorySaver(), effects)
    dispatcher = env.keeper.dispatcher(GraphResumer(graph))
    for amount, thread in enumerate(("a1", "a2", "r1", "p1", "t1"), start=1):
        graph.invoke({"amount": amount}, {"configurable": {"thread_id": thread}})
    pending = _scrape(dispatcher)
    assert value(pending, "hitl_reviews_pending", priority="medium") == 5
    env.forwarder.target = dispatcher.health_app  # callbacks reach the served app
    env.clock.advance(30)
    env.hitl.reviewer.respond(_rid(env, "a1"), "approve")
    env.hitl.reviewer.respond(_rid(env, "a2"), "approve")
    env.tick()
    env.clock.advance(60)
    env.hitl.reviewer.respond(_rid(env, "r1"), "reject")
    env.tick()
    env.forwarder.target = None  # callbacks fail (503): only a sweep finds the next answer
    env.clock.advance(30)
    env.hitl.reviewer.respond(_rid(env, "p1"), "approve")
    env.tick()
    assert [d.request_id for d in dispatcher.poll_once()] == [_rid(env, "p1")]
    env.forwarder.target = dispatcher.health_app
    env.clock.advance(3600)
    env.tick()  # t1 times out; its callback resumes it
    return dispatcher, effects


def test_metrics_after_a_scripted_run(env: Env) -> None:
    dispatcher, effects = scripted_run(env)
    assert sorted(effects) == ["refund 1", "refund 2", "refund 4"]
    found = _scrape(dispatcher)
    assert value(found, "hitl_reviews_pending", priority="medium") == 0
    outcomes = {o: value(found, "hitl_decisions_total", outcome=o) for o in OUTCOMES}
    assert outcomes == {
        "approved": 3, "rejected": 1, "edited": 0, "answered": 0, "timed_out": 1, "cancelled": 0,
    }  # fmt: skip
    assert value(found, "hitl_resumes_total", source="webhook") == 4
    assert value(found, "hitl_resumes_total", source="poll") == 1
    assert value(found, "hitl_resumes_total", source="recovery") == 0
    assert value(found, "hitl_resume_failures_total") == 0
    # Waits: 30, 30, 90, 120 s and the timeout's 3720 s.
    assert value(found, "hitl_review_wait_seconds_count") == 5
    assert value(found, "hitl_review_wait_seconds_sum") == 30 + 30 + 90 + 120 + 3720
    assert value(found, "hitl_review_wait_seconds_bucket", le="30.0") == 2
    assert value(found, "hitl_review_wait_seconds_bucket", le="120.0") == 4
    assert value(found, "hitl_review_wait_seconds_bucket", le="3600.0") == 4
    assert value(found, "hitl_review_wait_seconds_bucket", le="+Inf") == 5
    assert value(found, "hitl_rows_stuck", problem="decided, not resumed") == 0
    assert value(found, "hitl_metrics_ledger_up") == 1
    # The poll sweep's listing (and the webhooks' GETs) were charged to the budget.
    calls = value(found, "hitl_api_calls_total")
    assert calls == dispatcher.budget.charged and calls >= 5
    assert value(found, "hitl_quota_remaining") >= 0


def test_stuck_rows_are_what_ledger_problems_lists(env: Env) -> None:
    from hitl_agent.ledger._problems import find_problems

    graph = refund_graph(env, InMemorySaver(), [])
    dispatcher = env.keeper.dispatcher(GraphResumer(graph))
    graph.invoke({"amount": 5}, {"configurable": {"thread_id": "s1"}})
    rid = _rid(env, "s1")
    env.hitl.reviewer.respond(rid, "approve")
    row = env.ledger.get_by_request_id(rid)
    assert row is not None
    assert dispatcher.resolver.record(row, env.hitl.client.requests.get(rid))  # nobody resumes
    env.clock.advance(3601)
    found = _scrape(dispatcher)
    assert value(found, "hitl_rows_stuck", problem="decided, not resumed") == 1
    listed = find_problems(env.ledger, now=env.clock(), stale=3600)
    assert [p["problem"] for p in listed] == ["decided, not resumed"]
    # The recovery step delivers it: counted under its source, and no longer stuck.
    assert len(dispatcher.recover_once()) == 1
    found = _scrape(dispatcher)
    assert value(found, "hitl_resumes_total", source="recovery") == 1
    assert value(found, "hitl_rows_stuck", problem="decided, not resumed") == 0


def test_pending_by_priority_and_a_resume_that_fails(env: Env) -> None:
    graph = refund_graph(env, InMemorySaver(), [], priority="high")
    dispatcher = env.keeper.dispatcher(GraphResumer(graph))
    graph.invoke({"amount": 5}, {"configurable": {"thread_id": "h1"}})
    found = _scrape(dispatcher)
    assert value(found, "hitl_reviews_pending", priority="high") == 1
    assert value(found, "hitl_reviews_pending", priority="medium") == 0

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("checkpointer down")

    dispatcher.resolver.resumer.resume = broken  # type: ignore[method-assign]
    env.hitl.reviewer.respond(_rid(env, "h1"), "approve")
    dispatcher.poll_once()
    found = _scrape(dispatcher)
    assert value(found, "hitl_resume_failures_total") == 1
    assert value(found, "hitl_resumes_total", source="poll") == 0


def test_a_ledger_that_does_not_answer_still_gives_a_scrape(env: Env) -> None:
    dispatcher = env.keeper.dispatcher(GraphResumer(refund_graph(env, InMemorySaver(), [])))

    def down(**kwargs: Any) -> Any:
        raise RuntimeError("connection to postgresql://u:hunter2@db failed")

    dispatcher.metrics.ledger.list_rows = down  # type: ignore[method-assign]
    dispatcher.metrics._cached = None
    text = dispatcher.metrics.render()
    assert "hunter2" not in text
    found = samples(text)
    assert value(found, "hitl_metrics_ledger_up") == 0


def test_scrapes_within_the_cache_read_the_ledger_once(env: Env) -> None:
    dispatcher = env.keeper.dispatcher(GraphResumer(refund_graph(env, InMemorySaver(), [])))
    reads: list[int] = []
    real = env.ledger.list_rows

    def counting(**kwargs: Any) -> Any:
        reads.append(1)
        return real(**kwargs)

    dispatcher.metrics.ledger.list_rows = counting  # type: ignore[method-assign]
    for _ in range(3):
        dispatcher.metrics.render()
    assert len(reads) == 1
    dispatcher.metrics.cache_seconds = 0
    dispatcher.metrics.render()
    assert len(reads) == 2


def test_metrics_answers_get_only_and_passes_other_paths_through(env: Env) -> None:
    dispatcher = env.keeper.dispatcher(GraphResumer(refund_graph(env, InMemorySaver(), [])))
    with TestClient(dispatcher.health_app) as client:
        assert client.post("/metrics").status_code == 405
        assert client.get("/metrics").status_code == 200
    # Without metrics given, /metrics is the receiver's (a 404 there), as before.
    from hitl_agent.dispatch._health import HealthRoutes

    with TestClient(HealthRoutes(dispatcher.receiver, dispatcher.readiness)) as client:
        assert client.get("/metrics").status_code == 404


def test_the_collector_gives_prometheus_client_the_same_samples(env: Env) -> None:
    """``collector()`` in your own registry (needs prometheus_client: skipped without it)."""
    client = pytest.importorskip("prometheus_client")
    dispatcher, _ = scripted_run(env)
    dispatcher.metrics.cache_seconds = 0
    registry = client.CollectorRegistry()
    registry.register(dispatcher.metrics.collector())
    theirs = samples(client.generate_latest(registry).decode())
    ours = samples(dispatcher.metrics.render())
    volatile = "hitl_metrics_ledger_read_seconds"
    assert {k: v for k, v in theirs.items() if k[0] != volatile} == {
        k: v for k, v in ours.items() if k[0] != volatile
    }
    assert value(theirs, "hitl_decisions_total", outcome="approved") == 3
