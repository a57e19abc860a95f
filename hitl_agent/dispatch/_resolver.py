"""Resolver: the one idempotent path from "something changed" to "resumed exactly once".

Webhook, poller, a second replica and a manual call all end here::

    fetch truth (GET /requests/{id}, charged to the budget)
      → Decision.from_request (fail-closed, with the row's own interpretation settings)
      → ledger.record_decision       first decision wins, forever
      → ledger.claim                 one winner per request; renewed while the resume runs
      → resumer.resume(row, decision)
          not waiting?  → resumer.finished(row)  the thread moved on: close the row
                        → resumer.proceed(row)   its interrupt was consumed but the thread
                                                 stopped short (a crash after the gate's
                                                 checkpoint): drive it on, under the claim
      → ledger.complete              (release instead when the resume failed or the target
                                      is not waiting yet, so a later sweep retries)

A resume that fails is retried with exponential backoff, its attempts kept in the ledger
(``record_delivery_fault``, shared by every replica), and *parked* after ``max_attempts``:
an operator sees it in ``hitl-agent ledger problems``. Retrying is safe after an approved
action started: the tool wrapper's execution record (hitl_agent.langchain._once) replays its
outcome instead of running it again. A failure is logged at ERROR when it first happens and
when the row is parked, not on every sweep.

The decision is never read from a callback body: the body only names a request id.

The sync and async entry points (``resolve``/``aresolve``, ``deliver``/``adeliver``) run one
implementation: each step is written once as a generator that yields the IO it needs, and two
small drivers run that IO inline or, on the event loop, in a worker thread (ledger, HTTP) or
through the resumer's ``a``-prefixed twin. The async path never blocks the loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, runtime_checkable

from .._claims import resuming_under
from .._exceptions import APIError, RateLimitError
from .._hooks import checkpoint
from ..decision import DEFAULT_APPROVE_VALUES, DEFAULT_REJECT_VALUES, Decision
from ..ledger import LedgerError
from ..models.requests import Request
from ._lease import LeaseKeeper, default_interval

if TYPE_CHECKING:
    from .._client import HITLClient
    from ..ledger import DeliveryFault, ExecutionState, Ledger, ReviewRecord
    from ._budget import CallBudget

__all__ = ["Resolver", "Resumer"]

log = logging.getLogger("hitl_agent.dispatch")

T = TypeVar("T")


@runtime_checkable
class Resumer(Protocol):
    """Delivers a decision to whatever waits for it (a graph thread, a blocked caller).

    ``decisions`` holds every decision of the row's task (one for a blocking review; all
    reviews of one LangGraph task, e.g. parallel tool calls, are delivered together).
    ``resume`` returns True when the decision was delivered, False when the target is not
    waiting (nothing was run; the dispatcher retries later), and raises when delivery failed.
    ``finished`` says whether a target that is not waiting never will again (its thread
    finished after the decision was recorded): the row is then closed instead of retried.
    ``proceed`` drives on a target that consumed this row's interrupt but has not finished
    (a crash after the gate's step was saved and before the run ended): True when it ran the
    rest (or nothing is left for this row to drive), False when it may not (the gate has not
    been passed yet, e.g. a decision recorded before its interrupt was durable, or the
    thread started a new turn since). It is called under the row's claim, so it runs once.
    """

    def resume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool: ...

    async def aresume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool: ...

    def finished(self, record: ReviewRecord) -> bool: ...

    async def afinished(self, record: ReviewRecord) -> bool: ...

    def proceed(self, record: ReviewRecord) -> bool: ...

    async def aproceed(self, record: ReviewRecord) -> bool: ...


def _store_outage(exc: BaseException | None) -> bool:
    """Whether a failed resume is a store that could not be reached (retried without end):
    the ledger, or a connection-level error of the checkpointer's database driver."""
    if exc is None:
        return False
    if isinstance(exc, LedgerError | ConnectionError | TimeoutError):
        return True
    # psycopg.OperationalError, sqlite3.OperationalError: named, so no driver is imported.
    return any(cls.__name__ == "OperationalError" for cls in type(exc).__mro__)


# -- one implementation, two drivers -----------------------------------------------------


@dataclass(frozen=True)
class _Io:
    """A blocking call (ledger, HTTP): inline when sync, in a worker thread when async."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class _Call:
    """A resumer method: ``name`` when sync, ``a{name}`` awaited on the loop when async."""

    target: Any
    name: str
    args: tuple[Any, ...] = ()


_Step = _Io | _Call
_Plan = Generator[_Step, Any, T]


def _run(plan: _Plan[T]) -> T:
    """Run a plan's steps inline."""
    try:
        return _run_steps(plan)
    finally:
        # A BaseException (KeyboardInterrupt, SystemExit) is not thrown into the plan: close
        # it, so its finally blocks (the claim's heartbeat) run now, not at garbage collection.
        plan.close()


def _run_steps(plan: _Plan[T]) -> T:
    value: Any = None
    error: Exception | None = None
    while True:
        try:
            step = plan.throw(error) if error is not None else plan.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        error = None
        try:
            if isinstance(step, _Io):
                value = step.fn(*step.args)
            else:
                value = getattr(step.target, step.name)(*step.args)
        except Exception as exc:
            error = exc


async def _arun(plan: _Plan[T]) -> T:
    """Run a plan's steps without blocking the event loop."""
    try:
        return await _arun_steps(plan)
    finally:
        plan.close()  # also on cancellation


async def _arun_steps(plan: _Plan[T]) -> T:
    value: Any = None
    error: Exception | None = None
    while True:
        try:
            step = plan.throw(error) if error is not None else plan.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        error = None
        try:
            if isinstance(step, _Io):
                value = await asyncio.to_thread(step.fn, *step.args)
            else:
                value = await getattr(step.target, f"a{step.name}")(*step.args)
        except Exception as exc:
            error = exc


_Outcome = Literal["resumed", "finished", "proceeded"] | None


class _NoProceed:
    """Stands in for a resumer written before ``proceed`` existed: it never drives on."""

    def proceed(self, record: ReviewRecord) -> bool:
        return False

    async def aproceed(self, record: ReviewRecord) -> bool:
        return False


class Resolver:
    """Fetches, records, claims and resumes; every step is a no-op for the losers of a race.

    Args:
        ledger: the gates' ledger.
        client: the HITL client used for the truth GET.
        resumer: where decisions go.
        budget: the call budget charged for each GET.
        clock: epoch seconds.
        owner: this process's claim owner id.
        lease_seconds: how long a claim lasts before another resolver may take it over; a
            claim is renewed every third of it while its resume runs.
        heartbeat_interval: real seconds between the renewal thread's wake-ups of this
            resolver's claims (default: a third of the lease, at most 1 s).
        retry_base, retry_cap: the backoff after a failed resume: the next sweep retries the
            first failure, then ``retry_base`` seconds after the second, doubling, at most
            ``retry_cap``.
        max_attempts: failed resumes after which a row is parked (no automatic retry).
    """

    def __init__(
        self,
        *,
        ledger: Ledger,
        client: HITLClient,
        resumer: Resumer,
        budget: CallBudget,
        clock: Callable[[], float] = time.time,
        owner: str,
        lease_seconds: float = 300.0,
        heartbeat_interval: float | None = None,
        retry_base: float = 5.0,
        retry_cap: float = 900.0,
        max_attempts: int = 10,
    ) -> None:
        self.ledger = ledger
        self.client = client
        self.resumer = resumer
        self.budget = budget
        self.clock = clock
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.heartbeat_interval = (
            default_interval(lease_seconds) if heartbeat_interval is None else heartbeat_interval
        )
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.max_attempts = max_attempts
        self.stats: Counter[str] = Counter()
        # Requests this resolver is resuming right now: never a second resume of one of them
        # from this process, whatever the ledger says (a lease that ran out, a renewal that
        # failed).
        self._active: set[str] = set()
        self._active_lock = threading.Lock()

    # -- truth ---------------------------------------------------------------------------

    def fetch(self, request_id: str) -> Request | None:
        """GET the request, charged to the budget; None when it cannot be had right now."""
        return self.fetch_outcome(request_id)[0]

    def fetch_outcome(self, request_id: str) -> tuple[Request | None, APIError | None]:
        """:meth:`fetch`, and the API error that prevented it (None: fetched, or the budget
        refused the call): whether retrying soon may help is the caller's to judge."""
        if not self.budget.try_spend(1, client=self.client):
            self.stats["budget_refused"] += 1
            return None, None
        try:
            with self.budget.meter(client=self.client):  # each retry is charged too
                request = self.client.requests.get(request_id)
        except RateLimitError as err:
            self.budget.observe(self.client)
            self.budget.block_until(err.reset_at)
            self.stats["rate_limited"] += 1
            return None, err
        except APIError as err:
            log.warning("fetch failed request_id=%s error=%s", request_id, type(err).__name__)
            self.stats["fetch_failed"] += 1
            return None, err
        self.budget.observe(self.client)  # the server's clock and limit, for the schedule
        self.stats["fetched"] += 1
        return request, None

    def record(self, row: ReviewRecord, request: Request) -> bool:
        """Interpret a fetched request for ``row`` and store the decision if it is terminal."""
        return self.record_many([(row, request)]) == [True]

    def record_many(self, fetched: Sequence[tuple[ReviewRecord, Request]]) -> list[bool]:
        """:meth:`record` for each ``(row, request)`` (a list page's answers), the decisions
        stored in one ledger transaction; one bool per item: was it stored now."""
        decisions = [self._interpret(row, request) for row, request in fetched]
        todo = [
            (request.id, decision.model_dump(mode="json"))
            for (_, request), decision in zip(fetched, decisions, strict=True)
            if decision is not None
        ]
        if not todo:
            return [False] * len(fetched)
        now = self.clock()
        if len(todo) == 1:
            stored_now = [self.ledger.record_decision(todo[0][0], todo[0][1], now=now)]
        else:
            stored_now = self.ledger.record_decisions(todo, now=now)
        results = iter(stored_now)
        stored = [decision is not None and next(results) for decision in decisions]
        if any(stored):
            self.stats["recorded"] += sum(stored)
            checkpoint("resolver.after_record_decision")
        return stored

    def _interpret(self, row: ReviewRecord, request: Request) -> Decision | None:
        """The decision ``request`` holds for ``row``; None while it is not terminal, or
        when it is not ``row``'s request."""
        if request.id != row.request_id or (
            row.loop_id is not None
            and request.loop_id is not None
            and request.loop_id != row.loop_id
        ):
            # Another tenant's or another loop's request under our id: never act on it.
            self.stats["mismatch"] += 1
            log.warning("fetched request does not match its row request_id=%s", row.request_id)
            return None
        interpretation: dict[str, Any] = dict(row.payload.get("interpretation") or {})
        # Absent means "the defaults" (rows written before the interpretation was stored); an
        # empty list is a form with no approving option, and approves nothing.
        approving = interpretation.get("approve_values")
        rejecting = interpretation.get("reject_values")
        return Decision.from_request(
            request,
            approve_values=DEFAULT_APPROVE_VALUES if approving is None else approving,
            reject_values=DEFAULT_REJECT_VALUES if rejecting is None else rejecting,
            approve_on_timeout=bool(interpretation.get("approve_on_timeout", False)),
        )

    # -- resolve -------------------------------------------------------------------------

    def resolve(self, request_id: str, *, fetched: Request | None = None) -> list[Decision]:
        """Bring ``request_id`` as far as it can go; the decisions this call delivered."""
        return _run(self._resolve(request_id, fetched))

    async def aresolve(self, request_id: str, *, fetched: Request | None = None) -> list[Decision]:
        """Async twin of :meth:`resolve`: the same steps, IO in worker threads, the resume
        through the resumer's async twin."""
        return await _arun(self._resolve(request_id, fetched))

    def deliver(self, request_id: str) -> list[Decision]:
        """Claim a decided row (and its task's siblings) and resume; what this call delivered."""
        return _run(self._deliver(request_id))

    async def adeliver(self, request_id: str) -> list[Decision]:
        """Async twin of :meth:`deliver`."""
        return await _arun(self._deliver(request_id))

    def _resolve(self, request_id: str, fetched: Request | None) -> _Plan[list[Decision]]:
        row = yield _Io(self.ledger.get_by_request_id, (request_id,))
        if row is None:
            return []  # unknown ids never start anything
        if row.state == "pending":
            request = fetched if fetched is not None else (yield _Io(self.fetch, (request_id,)))
            checkpoint("resolver.after_fetch")
            stored = request is not None and (yield _Io(self.record, (row, request)))
            if not stored:
                row = yield _Io(self.ledger.get_by_request_id, (request_id,))
                if row is None or row.state == "pending":
                    return []
        return (yield from self._deliver(request_id))

    def _deliver(self, request_id: str) -> _Plan[list[Decision]]:
        fault = yield _Io(self.ledger.get_delivery_fault, (request_id,))
        if fault is not None and not self._due(fault):
            return []
        claimed_at = self.clock()
        claimed = yield _Io(self._claim, (request_id,))
        if claimed is None:
            return []
        row, group = claimed
        ids = [member.request_id for member in group if member.request_id is not None]
        keeper = LeaseKeeper(
            self.ledger,
            self.owner,
            ids,
            clock=self.clock,
            lease_seconds=self.lease_seconds,
            interval=self.heartbeat_interval,
            stats=self.stats,
            claimed_at=claimed_at,
        ).start()
        try:
            decisions = [Decision.model_validate(member.decision) for member in group]
            try:
                # An approved action checks the claim right before it starts (_claims.py):
                # a process that stalled past its lease must not start it.
                with resuming_under(keeper.expired):
                    outcome = yield from self._drive(row, decisions)
            except Exception as exc:
                keeper.stop()
                yield _Io(self._release, (group,))
                self.stats["resume_failed"] += 1
                yield _Io(self._note_failure, (group, exc, fault))
                return []
            keeper.stop()
            yield _Io(self._finish, (group, outcome))
            if outcome is None:
                yield _Io(self._note_failure, (group, None, fault))
            elif fault is not None:
                yield _Io(self._clear_faults, (group,))
        finally:
            keeper.stop()
            self._deactivate(ids)
        return decisions if outcome in ("resumed", "proceeded") else []

    def _drive(self, row: ReviewRecord, decisions: list[Decision]) -> _Plan[_Outcome]:
        """Resume; else close a finished thread's row; else drive on a consumed one."""
        delivered = yield _Call(self.resumer, "resume", (row, decisions))
        checkpoint("resolver.after_resume")
        if delivered:
            return "resumed"
        try:
            finished = yield _Call(self.resumer, "finished", (row,))
        except Exception:
            log.exception("finished check failed request_id=%s", row.request_id)
            finished = False
        if finished:
            return "finished"
        proceeder = self.resumer if hasattr(self.resumer, "proceed") else _NoProceed()
        if (yield _Call(proceeder, "proceed", (row,))):
            return "proceeded"
        return None

    # -- failed resumes: backoff, then parked ---------------------------------------------

    def _due(self, fault: DeliveryFault) -> bool:
        """Whether a row with this fault may be resumed now (not parked, backoff over)."""
        if fault.parked:
            self.stats["parked_skipped"] += 1
            return False
        if fault.retry_at is not None and fault.retry_at > self.clock():
            self.stats["backing_off"] += 1
            return False
        return True

    def _note_failure(
        self, group: list[ReviewRecord], exc: Exception | None, fault: DeliveryFault | None
    ) -> None:
        """Record a failed resume of ``group`` (``exc``), or one that found nothing waiting
        for its decision (``exc`` None): when to try again, or that it is parked."""
        attempts = (fault.attempts if fault is not None else 0) + 1
        now = self.clock()
        # A store that is out (the ledger, the checkpointer's database) comes back: its
        # failures are retried at the capped interval for as long as it takes, never parked,
        # so a worker catches up on its own. Anything else is parked after max_attempts.
        parked = attempts >= self.max_attempts and not _store_outage(exc)
        # The first retries are the next sweeps' (most failures are a moment's: a lost
        # connection, a crash mid-write; a decision recorded before its interrupt was
        # saved finds nothing waiting for a moment), then the waits double.
        free = 1 if exc is not None else 3
        delay = (
            0.0
            if attempts <= free
            else min(self.retry_base * 2 ** (attempts - free - 1), self.retry_cap)
        )
        if exc is None:
            self._note_orphan(group, attempts, now, parked, delay)
            return
        if _store_outage(exc):
            delay = min(delay, 60.0)  # catch up within a minute of the store's return
        ids = [m.request_id for m in group if m.request_id is not None]
        every_state: tuple[ExecutionState, ...] = ("started", "in_doubt", "failed", "succeeded")
        started = any(
            self.ledger.list_executions(states=every_state, request_id=rid, limit=1) for rid in ids
        )
        error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        reason = (
            f"parked after {attempts} failed resumes"
            if parked
            else f"resume failed {attempts} time(s); next try in {delay:.0f} s"
        )
        if started:
            reason += "; the approved action had started (a retry reports it, never reruns it)"
        self._store_faults(ids, attempts, now, None if parked else now + delay, reason, error)
        if parked:
            self.stats["parked"] += len(ids)
            log.error(
                "resume parked after %d failed attempts request_ids=%s error=%s; "
                "see `hitl-agent ledger problems`, retry with `hitl-agent ledger retry`",
                attempts,
                ids,
                error,
            )
        elif attempts == 1:
            log.error(
                "resume failed request_ids=%s action_started=%s; retrying with backoff "
                "(next in %.0f s, parked after %d attempts)",
                ids,
                started,
                delay,
                self.max_attempts,
                exc_info=exc,
            )
        else:
            log.info("resume failed again request_ids=%s attempt=%d error=%s", ids, attempts, error)

    def _note_orphan(
        self, group: list[ReviewRecord], attempts: int, now: float, parked: bool, delay: float
    ) -> None:
        ids = [m.request_id for m in group if m.request_id is not None]
        reason = (
            "orphaned: nothing waits for this decision (the thread was deleted or moved on, "
            "its node was renamed, or the graph no longer gates the call)"
            if parked
            else f"nothing waited for the decision {attempts} time(s); next try in {delay:.0f} s"
        )
        self._store_faults(ids, attempts, now, None if parked else now + delay, reason, None)
        if parked:
            self.stats["orphaned"] += len(ids)
            log.error(
                "decision parked, %s request_ids=%s thread=%s; see `hitl-agent ledger problems`",
                reason,
                ids,
                group[0].thread_id,
            )

    def _note_dropped(self, row: ReviewRecord) -> None:
        """An approved row whose thread moved on: delivered (its execution is recorded), or
        dropped for sure (a tool wrapper's row with no execution: the call never ran), or
        perhaps dropped (a review node's: its own code ran or not). The last two are kept
        as parked faults, so ``hitl-agent ledger problems`` lists them, and said at ERROR."""
        assert row.request_id is not None
        if self.ledger.get_execution(row.key) is not None:
            return  # it ran (or is in doubt, which ledger problems lists on its own)
        sure = bool(row.payload.get("gated_tool"))
        reason = (
            "dropped: the thread moved on (new input or a new turn) before this approval "
            "was delivered; the approved call did not run"
            if sure
            else "perhaps dropped: the thread moved on after this approval; it was not "
            "delivered unless the thread ran it before"
        )
        self._store_faults([row.request_id], 0, self.clock(), None, reason, None)
        (log.error if sure else log.warning)(
            "approval not delivered, %s request_id=%s thread=%s",
            reason,
            row.request_id,
            row.thread_id,
        )

    def _store_faults(
        self,
        ids: list[str],
        attempts: int,
        now: float,
        retry_at: float | None,
        reason: str,
        error: str | None,
    ) -> None:
        """One delivery fault per request id; no ``retry_at``: parked."""
        for rid in ids:
            self.ledger.record_delivery_fault(
                rid,
                attempts=attempts,
                now=now,
                retry_at=retry_at,
                parked=retry_at is None,
                reason=reason,
                last_error=error,
            )

    def _clear_faults(self, group: list[ReviewRecord]) -> None:
        for member in group:
            if member.request_id is not None:
                self.ledger.clear_delivery_fault(member.request_id)

    # -- claims --------------------------------------------------------------------------

    def _group(self, row: ReviewRecord) -> list[ReviewRecord] | None:
        """The decided rows delivered together with ``row``, or None while one still waits.

        LangGraph re-runs a whole task on resume, so every review of one task (parallel tool
        calls in one ToolNode) is answered in a single resume: resuming one of them early
        would re-run the siblings' tools after they already acted.
        """
        if row.thread_id is None or row.checkpoint_ns is None:
            return [row]
        group = [
            other
            for other in self.ledger.list_task(row.thread_id, row.checkpoint_ns)
            if other.request_id is not None and other.state != "resumed"
        ]
        if any(other.state == "pending" for other in group):
            return None
        ready = [o for o in group if o.state in ("decided", "resuming") and o.decision is not None]
        return sorted(ready, key=lambda other: other.request_id or "")

    def _claim(self, request_id: str) -> tuple[ReviewRecord, list[ReviewRecord]] | None:
        row = self.ledger.get_by_request_id(request_id)
        if row is None or row.state not in ("decided", "resuming") or row.decision is None:
            return None
        group = self._group(row)
        if group is None:
            self.stats["siblings_pending"] += 1
            return None
        ids = [member.request_id for member in group if member.request_id is not None]
        if not self._activate(ids):
            self.stats["already_resuming_here"] += 1
            return None
        claimed: list[ReviewRecord] = []
        try:
            for member in group:  # sorted: racing resolvers collide on the first member
                assert member.request_id is not None
                if not self.ledger.claim(
                    member.request_id,
                    self.owner,
                    now=self.clock(),
                    lease_seconds=self.lease_seconds,
                ):
                    self._release(claimed)
                    self.stats["claim_lost"] += 1
                    self._deactivate(ids)
                    return None
                claimed.append(member)
        except BaseException:
            self._release(claimed)
            self._deactivate(ids)
            raise
        if not claimed:
            self._deactivate(ids)
            return None
        checkpoint("resolver.after_claim")
        return row, claimed

    def _activate(self, ids: list[str]) -> bool:
        with self._active_lock:
            if self._active.intersection(ids):
                return False
            self._active.update(ids)
            return True

    def _deactivate(self, ids: list[str]) -> None:
        with self._active_lock:
            self._active.difference_update(ids)

    def _release(self, rows: list[ReviewRecord]) -> None:
        for member in rows:
            assert member.request_id is not None
            self.ledger.release(member.request_id, self.owner, now=self.clock())

    def _finish(self, rows: list[ReviewRecord], outcome: _Outcome) -> None:
        if outcome is None:
            self._release(rows)
            self.stats["not_waiting"] += 1
            return
        for member in rows:
            assert member.request_id is not None
            if not self.ledger.complete(member.request_id, self.owner, now=self.clock()):
                self.stats["complete_lost"] += 1
                log.warning("claim lost before completion request_id=%s", member.request_id)
        if outcome == "resumed":
            self.stats["resumed"] += len(rows)
        elif outcome == "proceeded":
            self.stats["proceeded"] += len(rows)
            log.info(
                "drove on a thread that had consumed its decision request_id=%s",
                rows[0].request_id,
            )
        else:
            # The thread moved on after the decision (a crash between an earlier resume and
            # its ledger write, or a new turn on the thread): nothing can wait for it any
            # more, so close the rows. An approval dropped this way is said out loud.
            self.stats["finished_elsewhere"] += len(rows)
            approved = [m for m in rows if (m.decision or {}).get("approved")]
            for member in approved:
                self._note_dropped(member)
            if not approved:
                log.info("closed rows of a finished thread request_id=%s", rows[0].request_id)
