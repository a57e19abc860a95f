"""Issue 24 item 2: the spans of the human wait, read with the OpenTelemetry SDK's in-memory
exporter. The tool's span is current when the gate creates the request; the row keeps its
context; the resume (another process in production) emits ``hitl.review`` (created ->
decided) and ``hitl.resume`` in the same trace. Skipped without ``opentelemetry-sdk``."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hitl_harness import Env, refund_graph
from langgraph.checkpoint.memory import InMemorySaver

from hitl_agent.gate import ARGS_HASH_KEY, GATED_TOOL_KEY, Gatekeeper, args_hash
from hitl_agent.langgraph import GraphResumer

sdk_trace = pytest.importorskip(
    "opentelemetry.sdk.trace", reason="opentelemetry-sdk is not installed"
)
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

from hitl_agent.observability._tracing import TRACER_NAME, TracingResumer  # noqa: E402

SECRET_ARG = "4111-1111-1111-1111"


@pytest.fixture
def spans() -> Iterator[tuple[Any, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def _run(env: Env, provider: Any, dispatcher_of: Any = None) -> tuple[Any, str]:
    """The tool span ``execute_tool refund`` is current while the gate asks; the review is
    approved 90 s later and resumed by a poll sweep."""
    review = {
        "tool_call_id": "call_42",
        "priority": "high",
        "context": {
            ARGS_HASH_KEY: args_hash("refund", {"card": SECRET_ARG}),
            GATED_TOOL_KEY: "refund",
        },
    }
    graph = refund_graph(env, InMemorySaver(), [], **review)
    tool_tracer = provider.get_tracer("agent")
    with tool_tracer.start_as_current_span(
        "execute_tool refund",
        attributes={"gen_ai.tool.name": "refund", "gen_ai.tool.call.id": "call_42"},
    ) as tool_span:
        graph.invoke({"amount": 7}, {"configurable": {"thread_id": "t1"}})
    (row,) = env.ledger.list_rows()
    assert row.request_id is not None
    env.clock.advance(90)
    env.hitl.reviewer.respond(row.request_id, "approve")
    dispatcher = (dispatcher_of or env.keeper).dispatcher(GraphResumer(graph))
    assert isinstance(dispatcher.resolver.resumer, TracingResumer)
    dispatcher.resolver.resumer.tracer = provider.get_tracer(TRACER_NAME)
    assert len(dispatcher.poll_once()) == 1
    return tool_span, row.request_id


def test_review_and_resume_spans_join_the_tools_trace(
    env: Env, spans: tuple[Any, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    tool_span, request_id = _run(env, provider)
    by_name = {span.name: span for span in exporter.get_finished_spans()}
    review, resume = by_name["hitl.review"], by_name["hitl.resume"]
    trace_id = tool_span.get_span_context().trace_id
    assert review.context.trace_id == resume.context.trace_id == trace_id
    assert (
        review.parent is not None and review.parent.span_id == tool_span.get_span_context().span_id
    )
    assert dict(review.attributes) == {
        "hitl.request_id": request_id,
        "hitl.outcome": "approved",
        "hitl.priority": "high",
        "gen_ai.tool.name": "refund",
        "gen_ai.tool.call.id": "call_42",
        "hitl.thread_id": "t1",
    }
    # The human wait, to the nanosecond of the ledger's times: 90 s.
    assert review.end_time - review.start_time == 90 * 1_000_000_000
    assert resume.attributes["hitl.resume.source"] == "poll"
    assert resume.attributes["hitl.delivered"] is True
    everything = json.dumps([dict(s.attributes) for s in exporter.get_finished_spans()])
    assert SECRET_ARG not in everything and "Refund" not in everything


def test_a_failed_resume_is_an_error_span_and_no_review_span(
    env: Env, spans: tuple[Any, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    graph = refund_graph(env, InMemorySaver(), [])
    graph.invoke({"amount": 7}, {"configurable": {"thread_id": "t2"}})
    (row,) = env.ledger.list_rows()
    env.hitl.reviewer.respond(str(row.request_id), "approve")
    dispatcher = env.keeper.dispatcher(GraphResumer(graph))
    resumer = dispatcher.resolver.resumer
    resumer.tracer = provider.get_tracer(TRACER_NAME)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"card {SECRET_ARG} declined")

    resumer.inner.resume = broken
    dispatcher.poll_once()
    (span,) = exporter.get_finished_spans()
    assert span.name == "hitl.resume"
    assert span.status.status_code.name == "ERROR"
    assert SECRET_ARG not in (span.status.description or "")
    assert SECRET_ARG not in json.dumps([e.attributes for e in span.events], default=str)


def test_two_replicas_on_postgres_one_trace(
    env: Env, spans: tuple[Any, InMemorySpanExporter]
) -> None:
    """The row is created through replica A's ledger and resumed by replica B's dispatcher on
    its own connection: the span context travelled in the PostgreSQL row."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from pg_support import PG_URL, require_postgres

    require_postgres()
    import dataclasses

    import psycopg
    from psycopg import sql

    from hitl_agent.ledger import PostgresLedger

    schema = f"hitl_otel_{uuid.uuid4().hex[:12]}"
    first = PostgresLedger(PG_URL, schema=schema, clock=env.clock)
    first.setup()
    second = PostgresLedger(PG_URL, schema=schema, clock=env.clock)
    common = {"client": env.hitl.client, "loop_id": env.hitl.loop_id, "clock": env.clock}
    try:
        creator = Gatekeeper(ledger=first, **common)
        resumer = Gatekeeper(ledger=second, **common)
        provider, exporter = spans
        pg_env = dataclasses.replace(env, keeper=creator, ledger=first)
        tool_span, _ = _run(pg_env, provider, dispatcher_of=resumer)
        review = next(s for s in exporter.get_finished_spans() if s.name == "hitl.review")
        assert review.context.trace_id == tool_span.get_span_context().trace_id
    finally:
        first.close()
        second.close()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def test_the_async_resume_reads_sibling_rows_off_the_event_loop(
    tmp_path: Path, spans: tuple[Any, InMemorySpanExporter]
) -> None:
    """Two decisions of one task resumed together: the second row is read from the ledger
    for its span, in a worker thread (a read on the loop stalls every other resume)."""
    import asyncio
    import threading

    from hitl_agent.decision import Decision
    from hitl_agent.ledger import SqliteLedger

    provider, exporter = spans
    ledger = SqliteLedger(tmp_path / "l.db")
    ledger.setup()
    for key, rid in (("k1", "r1"), ("k2", "r2")):
        ledger.record_intent(key, now=100.0)
        ledger.mark_created(key, rid, now=100.0)
        ledger.record_decision(rid, {"outcome": "approved"}, now=160.0)
    on_loop: list[str] = []
    read = ledger.get_by_request_id

    def watched(request_id: str) -> Any:
        if threading.current_thread() is threading.main_thread():
            on_loop.append(request_id)
        return read(request_id)

    ledger.get_by_request_id = watched  # type: ignore[method-assign]

    class Inner:
        async def aresume(self, record: Any, decisions: Any) -> bool:
            return True

    resumer = TracingResumer(Inner(), ledger, tracer_provider=provider)
    record = read("r1")
    decisions = [
        Decision(request_id=r, status="completed", outcome="approved") for r in ("r1", "r2")
    ]
    assert asyncio.run(resumer.aresume(record, decisions)) is True
    assert on_loop == []
    reviews = [s for s in exporter.get_finished_spans() if s.name == "hitl.review"]
    assert sorted(s.attributes["hitl.request_id"] for s in reviews) == ["r1", "r2"]
    ledger.close()
