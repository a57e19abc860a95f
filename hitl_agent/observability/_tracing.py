"""OpenTelemetry spans of the human wait, across the suspension (docs/observability.md).

A gate that creates a request stores the current span context (W3C ``traceparent``: the
tool's ``execute_tool`` span when the agent is instrumented) in the ledger row's payload.
Whoever resumes the thread later, in any process, reads it back and emits, in that trace:

* ``hitl.review``: from the request's creation to its decision (both times from the ledger
  row), with ``gen_ai.tool.name``, ``gen_ai.tool.call.id``, ``hitl.request_id``,
  ``hitl.outcome`` and ``hitl.priority``; one per delivered decision;
* ``hitl.resume``: the resume itself, with ``hitl.resume.source`` (webhook, poll, recovery,
  manual); the resumed graph's own spans are its children.

Attributes carry names, ids and outcomes only: never the question, an argument value, a
reason, a callback token or a URL. Needs ``opentelemetry-api`` (the ``otel`` extra); without
it nothing is stored or emitted, and the gate and dispatcher run as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .._keys import parse_bridge_key, parse_gate_key
from ._metrics import current_resume_source

if TYPE_CHECKING:
    from ..decision import Decision
    from ..ledger import Ledger, ReviewRecord

__all__ = [
    "TRACER_NAME",
    "TRACE_PAYLOAD_KEY",
    "TracingResumer",
    "capture_trace_context",
    "tracing_available",
]

TRACER_NAME = "hitl_agent"
#: Where a row's payload keeps the creating span's context (``{"traceparent": ...}``).
TRACE_PAYLOAD_KEY = "otel"


def _otel(module: str) -> Any:
    # Imported by name: the extra may be absent, and mypy checks this module either way.
    return importlib.import_module(f"opentelemetry.{module}")


def _propagator() -> Any:
    return _otel("trace.propagation.tracecontext").TraceContextTextMapPropagator()


@functools.cache
def tracing_available() -> bool:
    """Whether ``opentelemetry-api`` is installed (spans are emitted only then)."""
    return importlib.util.find_spec("opentelemetry") is not None and (
        importlib.util.find_spec("opentelemetry.trace") is not None
    )


def capture_trace_context() -> dict[str, Any]:
    """The payload entry that links a new row to the current span: ``{"otel": {"traceparent":
    ...}}``, or ``{}`` without OpenTelemetry or a valid current span."""
    if not tracing_available():
        return {}
    if not _otel("trace").get_current_span().get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    _propagator().inject(carrier)
    kept = {k: v for k, v in carrier.items() if k in ("traceparent", "tracestate")}
    return {TRACE_PAYLOAD_KEY: kept} if kept else {}


def _parent(record: ReviewRecord) -> Any:
    """The OpenTelemetry context stored with ``record`` (None: a new trace)."""
    stored = (record.payload or {}).get(TRACE_PAYLOAD_KEY)
    if not isinstance(stored, dict) or not isinstance(stored.get("traceparent"), str):
        return None
    carrier = {k: v for k, v in stored.items() if isinstance(v, str)}
    return _propagator().extract(carrier)


def _tool_call_id(record: ReviewRecord) -> str | None:
    graph = parse_gate_key(
        record.key, thread_id=record.thread_id, checkpoint_ns=record.checkpoint_ns
    )
    if graph is not None:
        return graph.tool_call_id
    bridged = parse_bridge_key(record.key)
    return bridged.tool_call_id or None if bridged is not None else None


def review_attributes(record: ReviewRecord, outcome: str | None) -> dict[str, Any]:
    """The ``hitl.review`` span's attributes: ids, names and the outcome, nothing else."""
    payload = record.payload or {}
    attributes: dict[str, Any] = {"hitl.request_id": record.request_id or ""}
    if outcome:
        attributes["hitl.outcome"] = outcome
    if isinstance(payload.get("priority"), str):
        attributes["hitl.priority"] = payload["priority"]
    if isinstance(payload.get("gated_tool"), str):
        attributes["gen_ai.tool.name"] = payload["gated_tool"]
    call_id = _tool_call_id(record)
    if call_id:
        attributes["gen_ai.tool.call.id"] = call_id
    if record.thread_id:
        attributes["hitl.thread_id"] = record.thread_id
    return attributes


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


class TracingResumer:
    """Wraps the dispatcher's resumer: a ``hitl.resume`` span around each resume, and a
    ``hitl.review`` span per decision it delivered (see the module docstring).

    Args:
        inner: the resumer that delivers (a GraphResumer, the bridge's, ...).
        ledger: reads the sibling rows of a task resumed together.
        tracer_provider: an OpenTelemetry ``TracerProvider`` (default: the global one).
    """

    def __init__(self, inner: Any, ledger: Ledger, tracer_provider: Any = None) -> None:
        self.inner = inner
        self.ledger = ledger
        self.tracer = _otel("trace").get_tracer(TRACER_NAME, tracer_provider=tracer_provider)

    def __repr__(self) -> str:
        return f"TracingResumer({self.inner!r})"

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    @contextlib.contextmanager
    def _resume_span(self, record: ReviewRecord, decisions: Sequence[Decision]) -> Iterator[Any]:
        trace = _otel("trace")
        attributes: dict[str, Any] = {
            "hitl.resume.source": current_resume_source(),
            "hitl.request_id": record.request_id or "",
            "hitl.decisions": len(decisions),
        }
        if record.thread_id:
            attributes["hitl.thread_id"] = record.thread_id
        with self.tracer.start_as_current_span(
            "hitl.resume",
            context=_parent(record),
            attributes=attributes,
            # The SDK's defaults would record the exception's message (it may hold an
            # argument value): the status below names its type only.
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except Exception as exc:
                # The type only: a message may carry an argument value.
                span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
                raise

    def _reviews(self, record: ReviewRecord, decisions: Sequence[Decision]) -> None:
        for decision in decisions:
            row = record
            if decision.request_id and decision.request_id != record.request_id:
                row = self.ledger.get_by_request_id(decision.request_id) or record
            end = row.decided_at if row.decided_at is not None else row.updated_at
            span = self.tracer.start_span(
                "hitl.review",
                context=_parent(row),
                start_time=_ns(row.created_at),
                attributes=review_attributes(row, decision.outcome),
            )
            span.end(end_time=_ns(max(end, row.created_at)))

    def resume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool:
        with self._resume_span(record, decisions) as span:
            delivered = bool(self.inner.resume(record, decisions))
            span.set_attribute("hitl.delivered", delivered)
        if delivered:
            self._reviews(record, decisions)
        return delivered

    async def aresume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool:
        with self._resume_span(record, decisions) as span:
            delivered = bool(await self.inner.aresume(record, decisions))
            span.set_attribute("hitl.delivered", delivered)
        if delivered:
            # The sibling rows are read from the ledger: never on the event loop.
            await asyncio.to_thread(self._reviews, record, decisions)
        return delivered

    def finished(self, record: ReviewRecord) -> bool:
        return bool(self.inner.finished(record))

    async def afinished(self, record: ReviewRecord) -> bool:
        return bool(await self.inner.afinished(record))

    def proceed(self, record: ReviewRecord) -> bool:
        proceed = getattr(self.inner, "proceed", None)
        return bool(proceed(record)) if proceed is not None else False

    async def aproceed(self, record: ReviewRecord) -> bool:
        aproceed = getattr(self.inner, "aproceed", None)
        return bool(await aproceed(record)) if aproceed is not None else False
