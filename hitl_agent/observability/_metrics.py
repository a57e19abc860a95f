"""Prometheus metrics of the human waits, read from the ledger and the budget at scrape time.

Most figures are *ledger* figures: a scrape reads the review rows (pending by priority, the
decisions by outcome, created → decided waits) and the rows that need a person (the same
reading as ``hitl-agent ledger problems``). Every replica on a shared ledger reports the same
values, so a dashboard takes ``max`` of them, never ``sum``. A short cache (``cache_seconds``)
keeps several scrapers from reading the ledger once each.

A few figures only the process knows (resumes by source, failed resumes, the API calls its
budget charged): those are per-replica counters, summed across replicas.

The text exposition (format 0.0.4) is written here, with no dependency; with
``prometheus_client`` installed, :meth:`LedgerMetrics.collector` registers the same families
in your own registry instead.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ..ledger._problems import PROBLEM_KINDS, find_problems

if TYPE_CHECKING:
    from ..ledger import Ledger

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_BUCKETS",
    "OUTCOMES",
    "RESUME_SOURCES",
    "LedgerMetrics",
    "MetricsSnapshot",
    "ResumeStats",
    "current_resume_source",
    "resume_source",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: The label values of ``hitl_decisions_total{outcome}`` (``hitl_agent.decision.Outcome``).
OUTCOMES: tuple[str, ...] = ("approved", "rejected", "edited", "answered", "timed_out", "cancelled")
#: The label values of ``hitl_resumes_total{source}``: a callback, a poll sweep, the
#: ledger-only recovery step, or a manual ``dispatcher.resolve()``.
RESUME_SOURCES: tuple[str, ...] = ("webhook", "poll", "recovery", "manual")
#: Seconds a human takes: a minute to a day (HITL.sh's deadlines run up to days).
DEFAULT_BUCKETS: tuple[float, ...] = (
    10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400, 259200,
)  # fmt: skip
_PRIORITIES = ("low", "medium", "high", "critical")
_PAGE = 1000

# Who is resuming in this context. The receiver's resumes run under the default: every other
# caller of the dispatcher's resolver (poll sweep, recovery step, manual resolve) sets its own.
_SOURCE: ContextVar[str] = ContextVar("hitl_agent_resume_source", default="webhook")

F = TypeVar("F", bound=Callable[..., Any])


def current_resume_source() -> str:
    """The resume source of the running code (``webhook`` unless a caller set another)."""
    return _SOURCE.get()


@contextmanager
def _source(name: str) -> Iterator[None]:
    token = _SOURCE.set(name)
    try:
        yield
    finally:
        _SOURCE.reset(token)


def resume_source(name: str) -> Callable[[F], F]:
    """Decorate a function (sync or async): resumes it causes count under source ``name``."""

    def wrap(func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def arun(*args: Any, **kwargs: Any) -> Any:
                with _source(name):
                    return await func(*args, **kwargs)

            return arun  # type: ignore[return-value]

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with _source(name):
                return func(*args, **kwargs)

        return run  # type: ignore[return-value]

    return wrap


class ResumeStats(Counter[str]):
    """The resolver's ``stats`` counter that also counts resumes and failed resumes by the
    source of the running code (:func:`resume_source`).

    The dispatcher swaps it in for its resolver's plain ``Counter``: the resolver keeps
    counting ``stats["resumed"] += n`` as before and the metrics see each increment, with no
    hook in the resolver itself.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.by_source: Counter[str] = Counter()
        self.failures = 0
        self._lock = threading.Lock()

    def __setitem__(self, key: str, value: int) -> None:
        before = self.get(key, 0)
        super().__setitem__(key, value)
        delta = value - before
        if delta <= 0:
            return
        if key in ("resumed", "proceeded"):
            with self._lock:
                self.by_source[_SOURCE.get()] += delta
        elif key == "resume_failed":
            with self._lock:
                self.failures += delta


@dataclass
class MetricsSnapshot:
    """The ledger's figures at one scrape (see :meth:`LedgerMetrics.snapshot`)."""

    pending: Counter[str] = field(default_factory=Counter)
    decisions: Counter[str] = field(default_factory=Counter)
    wait_buckets: list[int] = field(default_factory=list)
    wait_count: int = 0
    wait_sum: float = 0.0
    stuck: Counter[str] = field(default_factory=Counter)
    rows: int = 0
    read_seconds: float = 0.0
    error: str | None = None


class LedgerMetrics:
    """The metrics of one dispatcher (``dispatcher.metrics``), rendered for ``GET /metrics``.

    Args:
        ledger: the ledger read at scrape time.
        budget: the dispatcher's :class:`~hitl_agent.dispatch.CallBudget` (calls charged,
            calls left), if any.
        client: the HITL client whose last ``X-RateLimit-Remaining`` is the quota left.
        stats: the resolver's :class:`ResumeStats` (resumes by source, failed resumes).
        clock: epoch seconds (the dispatcher's; a FakeClock in tests).
        cache_seconds: a scrape within this many seconds (``time.monotonic``) of the last
            ledger read reuses it.
        stale: seconds after which a decided or intent row counts as stuck (as ``hitl-agent
            ledger problems --stale``).
        buckets: the upper bounds (seconds) of ``hitl_review_wait_seconds``.
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        budget: Any = None,
        client: Any = None,
        stats: ResumeStats | None = None,
        clock: Callable[[], float] = time.time,
        cache_seconds: float = 10.0,
        stale: float = 3600.0,
        buckets: tuple[float, ...] = DEFAULT_BUCKETS,
    ) -> None:
        self.ledger = ledger
        self.budget = budget
        self.client = client
        self.stats = stats if stats is not None else ResumeStats()
        self.clock = clock
        self.cache_seconds = cache_seconds
        self.stale = stale
        self.buckets = tuple(sorted(buckets))
        self._cached: tuple[float, MetricsSnapshot] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LedgerMetrics(cache_seconds={self.cache_seconds}, stale={self.stale})"

    # -- reading ---------------------------------------------------------------------------

    def snapshot(self) -> MetricsSnapshot:
        """The ledger's figures, read now or at most ``cache_seconds`` ago. A ledger that
        does not answer gives an empty snapshot whose ``error`` says why (the scrape still
        answers, with ``hitl_metrics_ledger_up 0``)."""
        with self._lock:
            cached = self._cached
            if cached is not None and time.monotonic() - cached[0] < self.cache_seconds:
                return cached[1]
            snap = self._read()
            self._cached = (time.monotonic(), snap)
            return snap

    def _read(self) -> MetricsSnapshot:
        started = time.monotonic()
        snap = MetricsSnapshot(wait_buckets=[0] * len(self.buckets))
        try:
            self._scan_rows(snap)
            now = self.clock()
            for problem in find_problems(self.ledger, now=now, stale=self.stale):
                snap.stuck[problem["problem"]] += 1
        except Exception as exc:  # the scrape answers; readiness says the store is out
            failed = MetricsSnapshot(wait_buckets=[0] * len(self.buckets))
            # The type alone: a driver's message may carry a connection URL.
            failed.error = type(exc).__name__
            return failed
        snap.read_seconds = time.monotonic() - started
        return snap

    def _scan_rows(self, snap: MetricsSnapshot) -> None:
        after: tuple[float, str] | None = None
        while True:
            page = self.ledger.list_rows(limit=_PAGE, after=after)
            for row in page:
                snap.rows += 1
                if row.state == "pending":
                    priority = (row.payload or {}).get("priority") or "medium"
                    snap.pending[str(priority)] += 1
                outcome = (row.decision or {}).get("outcome")
                if row.decision is not None and isinstance(outcome, str):
                    snap.decisions[outcome] += 1
                    if row.decided_at is not None and row.created_at:
                        self._observe_wait(snap, max(0.0, row.decided_at - row.created_at))
            if len(page) < _PAGE:
                return
            after = (page[-1].created_at, page[-1].key)

    def _observe_wait(self, snap: MetricsSnapshot, seconds: float) -> None:
        snap.wait_count += 1
        snap.wait_sum += seconds
        for i, bound in enumerate(self.buckets):
            if seconds <= bound:
                snap.wait_buckets[i] += 1

    def quota_remaining(self) -> float | None:
        """Calls left on the key: the server's last ``X-RateLimit-Remaining`` (shared by
        every replica on the key), else this budget's remaining, else None."""
        rate = getattr(self.client, "rate_limit", None)
        remaining = getattr(rate, "remaining", None)
        if isinstance(remaining, int):
            return float(remaining)
        if self.budget is not None:
            return float(self.budget.remaining())
        return None

    # -- families --------------------------------------------------------------------------

    def families(self) -> list[Family]:
        """Every metric family at this scrape (what :meth:`render` writes)."""
        snap = self.snapshot()
        out: list[Family] = []
        pending = Family(
            "hitl_reviews_pending", "gauge", "Reviews waiting for a human, by priority (ledger)."
        )
        for priority in sorted(set(_PRIORITIES) | set(snap.pending)):
            pending.add("", {"priority": priority}, snap.pending.get(priority, 0))
        out.append(pending)

        wait = Family(
            "hitl_review_wait_seconds",
            "histogram",
            "Seconds from the request's creation to its decision (ledger, every decided row).",
        )
        for bound, count in zip(self.buckets, snap.wait_buckets, strict=True):
            # "30.0", as prometheus_client writes bounds: one series name across exporters.
            wait.add("_bucket", {"le": repr(float(bound))}, count)
        wait.add("_bucket", {"le": "+Inf"}, snap.wait_count)
        wait.add("_count", {}, snap.wait_count)
        wait.add("_sum", {}, snap.wait_sum)
        out.append(wait)

        decisions = Family("hitl_decisions", "counter", "Decisions recorded, by outcome (ledger).")
        for outcome in sorted(set(OUTCOMES) | set(snap.decisions)):
            decisions.add("_total", {"outcome": outcome}, snap.decisions.get(outcome, 0))
        out.append(decisions)

        stuck = Family(
            "hitl_rows_stuck",
            "gauge",
            "Rows that need a person, by problem (hitl-agent ledger problems; ledger).",
        )
        for problem in sorted(set(PROBLEM_KINDS) | set(snap.stuck)):
            stuck.add("", {"problem": problem}, snap.stuck.get(problem, 0))
        out.append(stuck)

        with self.stats._lock:
            by_source = dict(self.stats.by_source)
            failures = self.stats.failures
        resumes = Family("hitl_resumes", "counter", "Threads resumed by this process, by source.")
        for source in sorted(set(RESUME_SOURCES) | set(by_source)):
            resumes.add("_total", {"source": source}, by_source.get(source, 0))
        out.append(resumes)
        failed = Family("hitl_resume_failures", "counter", "Resumes that raised in this process.")
        failed.add("_total", {}, failures)
        out.append(failed)

        if self.budget is not None:
            calls = Family(
                "hitl_api_calls", "counter", "HITL API calls this process's budget charged."
            )
            calls.add("_total", {}, getattr(self.budget, "charged", 0))
            out.append(calls)
            left = Family(
                "hitl_budget_remaining", "gauge", "Calls this process's budget may still spend."
            )
            left.add("", {}, self.budget.remaining())
            out.append(left)
        quota = self.quota_remaining()
        if quota is not None:
            family = Family(
                "hitl_quota_remaining",
                "gauge",
                "Calls left on the API key this hour (the server's X-RateLimit-Remaining).",
            )
            family.add("", {}, quota)
            out.append(family)

        up = Family("hitl_metrics_ledger_up", "gauge", "1 when the scrape could read the ledger.")
        up.add("", {}, 0 if snap.error else 1)
        out.append(up)
        took = Family("hitl_metrics_ledger_read_seconds", "gauge", "Seconds the ledger read took.")
        took.add("", {}, snap.read_seconds)
        out.append(took)
        return out

    def render(self) -> str:
        """The text exposition (format 0.0.4) of :meth:`families`."""
        return "".join(family.render() for family in self.families())

    async def arender(self) -> str:
        """:meth:`render` in a worker thread (the ledger read blocks)."""
        return await asyncio.to_thread(self.render)

    def collector(self) -> Any:
        """A ``prometheus_client`` collector of the same families, for your own registry
        (``REGISTRY.register(dispatcher.metrics.collector())``). Needs ``prometheus_client``
        (the ``metrics`` extra)."""
        from .._extras import require

        (core,) = require("metrics", "LedgerMetrics.collector()", "prometheus_client.core")
        return _Collector(self, core)


@dataclass
class Family:
    """One metric family: name, type, help and its samples ``(suffix, labels, value)``."""

    name: str
    type: str
    help: str
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def add(self, suffix: str, labels: dict[str, str], value: float) -> None:
        self.samples.append((suffix, labels, float(value)))

    def render(self) -> str:
        lines = [f"# HELP {self.name} {_escape_help(self.help)}", f"# TYPE {self.name} {self.type}"]
        for suffix, labels, value in self.samples:
            text = ",".join(f'{key}="{_escape_label(val)}"' for key, val in labels.items())
            lines.append(f"{self.name}{suffix}{{{text}}} {_number(value)}" if text
                         else f"{self.name}{suffix} {_number(value)}")  # fmt: skip
        return "\n".join(lines) + "\n"


class _Collector:
    def __init__(self, metrics: LedgerMetrics, core: Any) -> None:
        self.metrics = metrics
        self.core = core

    def describe(self) -> list[Any]:
        return []  # unchecked collector: the families depend on the ledger's contents

    def collect(self) -> Iterator[Any]:
        core = self.core
        for family in self.metrics.families():
            metric = core.Metric(family.name, family.help, family.type)
            for suffix, labels, value in family.samples:
                metric.add_sample(family.name + suffix, labels, value)
            yield metric


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(float(value))
    return repr(float(value))


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


Scope = MutableMapping[str, Any]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def serve_metrics(metrics: LedgerMetrics, scope: Scope, send: Send) -> None:
    """Answer one ``GET /metrics`` with the text exposition."""
    if scope.get("method") not in ("GET", "HEAD"):
        body, status, kind = (
            b'{"error": true, "msg": "method not allowed"}',
            405,
            b"application/json",
        )
    else:
        body, status, kind = (await metrics.arender()).encode(), 200, CONTENT_TYPE.encode()
    headers = [
        (b"content-type", kind),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send(
        {"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else body}
    )
