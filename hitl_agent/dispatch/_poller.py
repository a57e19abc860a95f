"""Poller: budgeted sweeps that find every decision, whatever the number pending (invariant 6).

A sweep, in order:

1. Rows already ``decided`` (or ``resuming`` with an expired lease) are delivered again: no
   API call. This finishes a decision that arrived before its interrupt was durable.
2. **Known changes first.** Callback doorbells the receiver coalesced (see
   :meth:`CallBudget.admit_doorbell`), then rows an earlier listing showed changed, get a
   truth GET each, before any listing, within the budget.
3. **Then a listing pass**, the cheapest of three for the rows open now (measured, not
   guessed: each pass records what it cost):

   ``all``       every status, newest first, down to the oldest open row: one call per 100
                 requests created since then; terminal items carry their answers.
   ``terminal``  ``completed`` / ``timeout`` / ``cancelled`` separately, newest first, down to
                 the oldest open row: costs what was *answered* since then, not what is
                 pending (3 calls at 10,000 pending and a few answers).
   ``pending``   the old way: ``status=pending`` pages; a row missing from the complete
                 listing changed and needs a GET. Cheaper only when many more requests were
                 answered than are open (an old row still open among thousands since).

   A list page is the same authenticated API as a GET, so a terminal item with its answer is
   recorded straight from the page (``Decision.from_request`` through the resolver's record
   path): no GET per change. A pass the budget cuts short resumes where it stopped.
4. Rows past ``deadline + grace`` **on the server's clock** are decided fail-closed only on a
   definite answer from HITL.sh given after that moment: the request is still not terminal
   (``pending``, ``claimed``, a status this library does not know), a complete listing pass
   did not show it answered, or a GET says it does not exist (404). A server-side
   ``timeout`` or ``cancelled`` is recorded as what it is (through the resolver). A failure
   that says nothing about the request is **not** such an answer: an outage (connection
   refused, a timeout, a 5xx, a proxy's page that is not the API's), a 429, a call the budget
   refused, a rejected key. A row is never failed closed because the API was out of reach
   while the server may hold an approval given in time (issue 20 F3).

   Only when no definite answer could be had for ``fail_closed_after_outage`` seconds past
   ``deadline + grace`` (24 h by default; None: never) is the row failed closed anyway, the
   outage named in its reason. The poller then keeps asking about it (in this process, within
   the budget): an approval it finds later that was given before the deadline is logged at
   ERROR with the request id (``late_approvals`` holds them), never silently dropped.

:meth:`Poller.next_interval` is the schedule. The steady interval is ``cost × window /
(0.8 × usable)``: a sweep of this cost, repeated, spends 80 % of what listings may use (the
budget less the calls kept for answers). While less than the other 20 % is spent, sweeps come
faster, in proportion (from ``min_interval`` on a fresh budget), so a review answered in its
first minutes is found in seconds and the burst can never starve the steady sweeps after it.
Against the local server (no quota: a limit of 100,000) that is ``min_interval`` throughout.
With webhooks expected the burst is skipped.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from .._config import DEFAULT_DEADLINE_GRACE, DEFAULT_OUTAGE_BOUND
from .._exceptions import APIError, ConfigError, NotFoundError, RateLimitError
from .._poll_health import is_transient
from ..decision import Decision
from ..models.requests import TERMINAL_STATUSES, Request, RequestPage, RequestStatus
from ._resolver import Resolver

if TYPE_CHECKING:
    from ..ledger import ReviewRecord

__all__ = ["Poller"]

log = logging.getLogger("hitl_agent.dispatch")

_PAGE = 100
_BURST = 0.2  # the share of the budget early sweeps may spend faster than the steady rate
_CREATED_MARGIN = 60.0  # seconds: a request is created after its intent row; Date is rounded
Mode = Literal["all", "terminal", "pending"]
Outcome = Literal["ok", "refused", "failed"]
_TERMINAL_STREAMS: tuple[RequestStatus, ...] = ("completed", "timeout", "cancelled")
_MAX_WATCHED = 1000  # rows failed closed for an outage that are still asked about
_WATCH_PER_SWEEP = 3  # of them, GETs a sweep may spend (within the listings' share)
_NOT_ANSWERED = (
    "HITL.sh reported no decision past the server's deadline plus grace (still pending or "
    "claimed, an unknown status, or the request is gone)"
)


@dataclass
class _Pass:
    """One listing pass, possibly spread over several sweeps."""

    mode: Mode
    streams: list[RequestStatus | None]
    offsets: dict[RequestStatus | None, int] = field(default_factory=dict)
    done: set[RequestStatus | None] = field(default_factory=set)
    pages: int = 0
    listed_pending: set[str] = field(default_factory=set)
    terminal: dict[str, int] = field(default_factory=dict)
    started_at: float = 0.0  # server time

    @property
    def complete(self) -> bool:
        return all(stream in self.done for stream in self.streams)


class Poller:
    """Finds decided requests for a resolver, within the budget.

    Args:
        resolver: the shared resolve path (its client, ledger and budget are used).
        loop_id: only rows of this loop are polled (None: every loop in the ledger).
        deadline_grace: seconds after a row's deadline before it may be decided fail-closed.
        fail_closed_after_outage: seconds past ``deadline + grace`` after which a row that
            no definite answer could be had for (an outage, a spent quota) is decided
            fail-closed anyway; None: never (see the module docstring, step 4).
        max_rows: the most open rows one sweep considers.
        row_filter: only rows it accepts are polled.
        poll_interval: the shortest sweep interval (seconds), instead of ``min_interval``;
            the budget still stretches it (see :meth:`next_interval`). ``interval`` is an
            accepted alias (the name it had before).
        min_interval: the shortest derived interval.
        max_interval: the longest derived interval.
        webhooks: callbacks are expected (``callback_url`` is set): no early burst of sweeps,
            and listings leave half the budget to the doorbells' GETs.
    """

    def __init__(
        self,
        resolver: Resolver,
        *,
        loop_id: str | None = None,
        deadline_grace: float = DEFAULT_DEADLINE_GRACE,
        fail_closed_after_outage: float | None = DEFAULT_OUTAGE_BOUND,
        max_rows: int = 10_000,
        row_filter: Callable[[ReviewRecord], bool] | None = None,
        poll_interval: float | None = None,
        min_interval: float = 1.0,
        max_interval: float = 3600.0,
        webhooks: bool = False,
        interval: float | None = None,
    ) -> None:
        if interval is not None:
            if poll_interval is not None:
                raise ConfigError(
                    "interval",
                    "given twice: as interval= and as poll_interval=",
                    "pass poll_interval= only (interval is its old name)",
                )
            poll_interval = interval
        self.resolver = resolver
        self.loop_id = loop_id
        self.deadline_grace = deadline_grace
        self.fail_closed_after_outage = fail_closed_after_outage
        self.max_rows = max_rows
        self.row_filter = row_filter
        self.poll_interval = poll_interval
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.webhooks = webhooks
        self.calls = 0
        """HTTP requests this poller sent (list pages and GETs, each retry counted): each is
        charged to the budget."""
        self.answered = 0
        """API calls of the latest sweep that got an answer (a 429 included)."""
        self.error: APIError | None = None
        """The latest sweep's worst failed call: its first persistent error, else its first
        transient one (see ``_health``); None when none failed."""
        self.late_approvals: list[Decision] = []
        """Approvals given before their deadline that were found only after their row had
        been failed closed for an outage (each also logged at ERROR)."""
        self._pass: _Pass | None = None
        # Rows failed closed for an outage, still asked about so that an approval given in
        # time is reported, not silently dropped (in this process only: oldest first).
        self._outage_closed: dict[str, ReviewRecord] = {}
        self._last_error: APIError | None = None
        self._carry: dict[str, None] = {}
        self._tried: dict[str, float] = {}
        self._created: dict[str, float] = {}
        self._terminal: dict[str, int] = {}
        self._missing_last = 1
        self._open = 0
        self._others: set[str] = set()
        self._starved = False

    # -- helpers ---------------------------------------------------------------------------

    @property
    def _clock(self) -> Callable[[], float]:
        return self.resolver.clock

    @property
    def _budget(self) -> Any:
        return self.resolver.budget

    def mine(self, row: ReviewRecord) -> bool:
        """Whether this dispatcher looks after ``row``: its loop's rows, and the rows of
        escalation stages its keeper asked in another loop (``payload["home_loop"]``)."""
        if self.row_filter is not None and not self.row_filter(row):
            return False
        return (
            self.loop_id is None
            or row.loop_id in (None, self.loop_id)
            or row.payload.get("home_loop") == self.loop_id
        )

    def _elsewhere(self, row: ReviewRecord) -> bool:
        """An escalation stage our keeper asked in another loop or a workflow: no listing of
        ours shows it."""
        return (
            self.loop_id is not None
            and row.loop_id != self.loop_id
            and row.payload.get("home_loop") == self.loop_id
        )

    def _list_keep(self) -> int:
        # Listings never spend the last calls: those fetch answers (doorbells, known changes).
        limit = int(self._budget.limit)
        return limit // 2 if self.webhooks else max(2, limit // 10)

    def _call(self, keep: int, call: Callable[[], Any]) -> tuple[Outcome, Any]:
        """Run one API call charged to the budget."""
        resolver = self.resolver
        budget = self._budget
        if not budget.try_spend(1, client=resolver.client, keep=keep):
            resolver.stats["budget_refused"] += 1
            self._starved = True
            return "refused", None
        self._last_error = None
        meter = budget.meter(client=resolver.client, keep=keep)
        try:
            with meter:  # each retry the client sends is charged too (issue 20 F10)
                result = call()
        except RateLimitError as err:
            self.answered += 1  # the key works: the quota is spent
            budget.observe(resolver.client)
            budget.block_until(err.reset_at)
            resolver.stats["rate_limited"] += 1
            self._starved = True
            return "refused", None  # the quota is spent: not an attempt that may fail closed
        except APIError as err:
            self._last_error = err
            if self.error is None or (is_transient(self.error) and not is_transient(err)):
                self.error = err
            budget.observe(resolver.client)
            log.warning("poll call failed error=%s", type(err).__name__)
            resolver.stats["poll_call_failed"] += 1
            return "failed", None
        finally:
            # A stand-in call that sends nothing through the client still counts as one.
            self.calls += max(1, meter.attempts)
            if meter.refused:
                resolver.stats["retries_refused"] += meter.refused
        self.answered += 1
        budget.observe(resolver.client)
        return "ok", result

    def _server_created(self, row: ReviewRecord) -> float:
        assert row.request_id is not None
        known = self._created.get(row.request_id)
        if known is not None:
            return known
        server_clock = self._budget.server_clock
        if server_clock.offset() is None:
            return -math.inf  # no server time yet: our clock may be skewed, so no cutoff
        # The intent row is written before the create: on the server's clock, the request
        # cannot be older than the intent (less a margin for rounding and latency).
        return float(server_clock.to_server(row.created_at)) - _CREATED_MARGIN

    # -- the sweep -------------------------------------------------------------------------

    def collect(self) -> list[str]:
        """Do the sweep's API and ledger work; return the request ids ready to deliver."""
        self.answered, self.error = 0, None
        every = self.resolver.ledger.list_open(limit=self.max_rows)
        rows = [row for row in every if self.mine(row)]
        self._others = {row.request_id for row in every if row.request_id} - {
            row.request_id for row in rows
        }
        ready = [
            row.request_id
            for row in rows
            if row.request_id is not None and row.state in ("decided", "resuming")
        ]
        pending = {row.request_id: row for row in rows if row.state == "pending" and row.request_id}
        self._open = len(pending)
        for memo in (self._carry, self._tried, self._created):
            for rid in [rid for rid in memo if rid not in pending]:
                del memo[rid]
        self._starved = False
        for rid, row in pending.items():
            if self._elsewhere(row):
                self._carry.setdefault(rid, None)  # fetched one by one: no listing shows it
        if pending:
            ready.extend(self._check(pending))
        if self._outage_closed:
            self._watch_outage_closed()
        return ready

    def _check(self, pending: dict[str, ReviewRecord]) -> list[str]:
        decided: set[str] = set()
        self._known_changes(pending, decided, rung=self._budget.take_rung())
        self._list(pending, decided)
        self._known_changes(pending, decided, rung=[])  # what the listing showed changed
        decided.update(self._fail_closed_due(pending, decided))
        return sorted(decided)

    def _known_changes(
        self, pending: dict[str, ReviewRecord], decided: set[str], *, rung: list[str]
    ) -> None:
        # Doorbells first (a doorbell inside its coalescing gap is left to the listing), then
        # rows a listing showed changed.
        budget = self._budget
        for rid in rung:
            if rid not in pending and rid in self._others:
                budget.ring_later(rid)  # another dispatcher of this budget polls that row
        wanted = [rid for rid in rung if rid in pending and budget.admit_doorbell(rid)]
        wanted += [rid for rid in self._carry if rid not in wanted]
        for rid in wanted:
            if rid in decided or rid not in pending:
                self._carry.pop(rid, None)
                continue
            now = float(budget.server_clock.now())
            outcome, request = self._call(0, partial(self.resolver.client.requests.get, rid))
            if outcome == "refused":
                self._carry.setdefault(rid, None)
                break
            self._carry.pop(rid, None)
            if outcome == "ok" and isinstance(request, Request):
                self.resolver.stats["fetched"] += 1
                if self.resolver.record(pending[rid], request):
                    decided.add(rid)
                    continue
            # The server's word that there is no decision (a status that is not terminal, a
            # request that is not ours, a 404) counts for the fail-closed rule; a failure that
            # says nothing about the request (an outage, a 5xx) does not (issue 20 F3).
            if outcome == "ok" or _definite(self._last_error):
                self._tried[rid] = now

    # -- listing ---------------------------------------------------------------------------

    def _estimates(self, open_rows: int) -> dict[Mode, int]:
        terminal = sum(self._terminal.values())
        return {
            "all": max(1, math.ceil((open_rows + terminal) / _PAGE)),
            "terminal": sum(
                max(1, math.ceil(self._terminal.get(s, 0) / _PAGE)) for s in _TERMINAL_STREAMS
            ),
            "pending": max(1, math.ceil(open_rows / _PAGE)) + max(1, self._missing_last),
        }

    def _new_pass(self, open_rows: int) -> _Pass:
        estimates = self._estimates(open_rows)
        mode: Mode = min(("all", "terminal", "pending"), key=lambda m: estimates[m])
        streams: list[RequestStatus | None]
        if mode == "all":
            streams = [None]
        elif mode == "terminal":
            streams = list(_TERMINAL_STREAMS)
        else:
            streams = ["pending"]
        return _Pass(mode, streams, started_at=float(self._budget.server_clock.now()))

    def _list(self, pending: dict[str, ReviewRecord], decided: set[str]) -> None:
        if self._pass is None:
            self._pass = self._new_pass(len(pending))
        current = self._pass
        keep = self._list_keep()
        for stream in current.streams:
            while stream not in current.done:
                outcome = self._page(current, stream, pending, decided, keep)
                if outcome == "refused":
                    return
                if outcome == "failed":
                    # A failed page says nothing about any row: no attempt for the fail-closed
                    # rule (a 502 past the deadline must not deny an approval given in time).
                    return
        self._finish_pass(current, pending)

    def _page(
        self,
        current: _Pass,
        stream: RequestStatus | None,
        pending: dict[str, ReviewRecord],
        decided: set[str],
        keep: int,
    ) -> Outcome:
        offset = current.offsets.get(stream, 0)
        newest_first = current.mode != "pending"
        outcome, page = self._call(
            keep,
            lambda: self.resolver.client.requests.list(
                status=stream,
                loop_id=self.loop_id,
                limit=_PAGE,
                offset=offset,
                sort="created_at_desc" if newest_first else "created_at_asc",
            ),
        )
        if outcome != "ok" or not isinstance(page, RequestPage):
            return "refused" if outcome == "refused" else "failed"
        current.pages += 1
        self.resolver.stats["listed"] += 1
        now = float(self._budget.server_clock.now())
        cutoff = min((self._server_created(row) for row in pending.values()), default=now)
        oldest: float | None = None
        answers: dict[str, tuple[ReviewRecord, Request]] = {}
        for item in page.requests:
            created = item.created_at.timestamp() if item.created_at is not None else None
            if created is not None:
                oldest = created if oldest is None else min(oldest, created)
            if item.is_terminal and (created is None or created >= cutoff):
                current.terminal[item.status] = current.terminal.get(item.status, 0) + 1
            row = pending.get(item.id)
            if row is None:
                continue
            if created is not None:
                self._created[item.id] = created
            self._take(row, item, now, current, decided, answers)
        # The page's answers are recorded together: one ledger commit, not one per answer.
        pairs = list(answers.values())
        for (row, _), stored in zip(pairs, self.resolver.record_many(pairs), strict=True):
            assert row.request_id is not None
            if stored:
                self.resolver.stats["recorded_from_list"] += 1
                decided.add(row.request_id)
            else:
                self._tried[row.request_id] = now  # terminal but not ours to record
        current.offsets[stream] = offset + len(page.requests)
        finished = page.has_more is False or len(page.requests) < _PAGE
        if newest_first and oldest is not None and oldest < cutoff:
            finished = True  # everything further down is older than every open row
        if finished:
            current.done.add(stream)
        return "ok"

    def _take(
        self,
        row: ReviewRecord,
        item: Request,
        now: float,
        current: _Pass,
        decided: set[str],
        answers: dict[str, tuple[ReviewRecord, Request]],
    ) -> None:
        """Sort one list item of an open row: not answered yet, answered (into ``answers``,
        recorded with the rest of its page), or answered without what the decision needs."""
        assert row.request_id is not None
        rid = row.request_id
        if not item.is_terminal:
            if item.status == "pending":
                current.listed_pending.add(rid)
            self._tried[rid] = now  # the server says: not answered (yet)
            return
        if rid in decided or rid in answers:
            return
        if not _carries_answer(row, item):
            self._carry.setdefault(rid, None)  # the item lacks what the decision needs: GET
            return
        answers[rid] = (row, item)

    def _finish_pass(self, current: _Pass, pending: dict[str, ReviewRecord]) -> None:
        self._pass = None
        if current.mode == "pending":
            missing = [rid for rid in pending if rid not in current.listed_pending]
            self._missing_last = len(missing)
            listing = self._estimates(len(pending))
            if len(missing) <= min(listing["all"], listing["terminal"]):
                for rid in missing:
                    self._carry.setdefault(rid, None)  # a GET each is the cheapest way
            # Else the next pass lists the answers (100 a call) instead of a GET per row
            # that left the pending list: ``_missing_last`` prices the pending listing above
            # the others, so the next pass is a terminal or full listing.
        else:
            self._terminal = dict(current.terminal)
            self._missing_last = 1  # this listing found whatever had left the pending list
            # A complete pass that did not show a row terminal is the server saying "not
            # answered": that counts as an attempt for the fail-closed rule.
            for rid in pending:
                self._tried.setdefault(rid, current.started_at)
                self._tried[rid] = max(self._tried[rid], current.started_at)
        log.debug("listing pass mode=%s pages=%d", current.mode, current.pages)

    # -- fail closed -----------------------------------------------------------------------

    def _fail_closed_due(self, pending: dict[str, ReviewRecord], decided: set[str]) -> list[str]:
        now = float(self._budget.server_clock.now())
        bound = self.fail_closed_after_outage
        failed: list[str] = []
        for rid, row in pending.items():
            if rid in decided or row.deadline is None:
                continue
            due = row.deadline + self.deadline_grace
            if now < due:
                continue
            if self._tried.get(rid, -math.inf) >= due:
                # HITL.sh itself said, after deadline + grace, that there is no decision.
                failed += self._fail_closed(row, _NOT_ANSWERED)
            elif bound is not None and now >= due + bound:
                hours = (now - row.deadline) / 3600
                closed = self._fail_closed(
                    row,
                    f"No answer could be had from HITL.sh for {hours:.1f} h past the deadline "
                    f"(fail_closed_after_outage={bound:g} s: the API was out of reach or the "
                    "call budget spent)",
                )
                if closed:
                    log.error(
                        "failed closed after an outage request_id=%s hours_past_deadline=%.1f "
                        "(an approval given in time is reported if found later)",
                        rid,
                        hours,
                    )
                    self._outage_closed[rid] = row
                    while len(self._outage_closed) > _MAX_WATCHED:
                        del self._outage_closed[next(iter(self._outage_closed))]
                failed += closed
        return failed

    def _fail_closed(self, row: ReviewRecord, reason: str) -> list[str]:
        assert row.request_id is not None
        current = self.resolver.ledger.get_by_request_id(row.request_id)
        if current is None or current.state != "pending":
            return []
        decision = Decision.fail_closed(row.request_id, reason)
        stored = self.resolver.ledger.record_decision(
            row.request_id, decision.model_dump(mode="json"), now=self._clock()
        )
        if stored:
            self.resolver.stats["failed_closed"] += 1
        return [row.request_id] if stored else []

    def _watch_outage_closed(self) -> None:
        """Ask again about rows failed closed for an outage: an approval given before the
        deadline is reported (ERROR, :attr:`late_approvals`), never silently dropped."""
        # A few a sweep, oldest asked first, each then moved to the back: the watch never
        # crowds out the listings that find the answers of open rows.
        for rid, row in list(self._outage_closed.items())[:_WATCH_PER_SWEEP]:
            outcome, request = self._call(
                self._list_keep(), partial(self.resolver.client.requests.get, rid)
            )
            if outcome == "refused":
                return
            del self._outage_closed[rid]
            self._outage_closed[rid] = row  # to the back of the queue
            if outcome != "ok" or not isinstance(request, Request):
                if _definite(self._last_error):
                    del self._outage_closed[rid]  # the request is gone: nothing to report
                continue
            if not request.is_terminal:
                continue
            del self._outage_closed[rid]  # answered one way or the other: judged once
            decision = self.resolver._interpret(row, request)
            if decision is None or not decision.approved:
                continue
            deadline = request.timeout_at.timestamp() if request.timeout_at else row.deadline
            answered = request.response_at.timestamp() if request.response_at else None
            if answered is not None and deadline is not None and answered > deadline:
                log.warning(
                    "a late approval after an outage request_id=%s (after its deadline)", rid
                )
                continue
            self.late_approvals.append(decision)
            self.resolver.stats["late_approvals"] += 1
            log.error(
                "approval given in time LOST to an outage request_id=%s responded_at=%s: the "
                "row was failed closed after fail_closed_after_outage=%s s without an answer "
                "and its action did not run; act on it by hand if it should",
                rid,
                request.response_at.isoformat() if request.response_at else "unknown",
                self.fail_closed_after_outage,
            )

    # -- schedule --------------------------------------------------------------------------

    def next_cost(self) -> int:
        """The calls the next sweep is expected to make."""
        if not self._open:
            return 0
        gets = len(self._carry)
        current = self._pass
        if current is not None:
            remaining = len([s for s in current.streams if s not in current.done])
            return gets + max(1, remaining)
        return gets + min(self._estimates(self._open).values())

    @property
    def interval(self) -> float | None:
        """The old name of :attr:`poll_interval` (accepted as before)."""
        return self.poll_interval

    @interval.setter
    def interval(self, value: float | None) -> None:
        self.poll_interval = value

    def next_interval(self) -> float:
        """Seconds until the next sweep, derived from the open rows and the budget.

        A fixed ``interval`` takes the place of ``min_interval``: it is the shortest gap, and
        the budget stretches it when sweeps that often would spend more than the budget has
        (a 3 s sweep against 100 calls/hour would spend the hour in four minutes and then
        find nothing for the next 56).
        """
        floor = self.min_interval if self.poll_interval is None else self.poll_interval
        budget = self._budget
        cost = self.next_cost()
        if cost == 0:
            return floor  # nothing to ask the API: a ledger read only
        # Listings may use the budget less their keep. The steady rate spends (1 - burst) of
        # that per window, so the early burst (at most ``burst`` of it) never starves the
        # steady sweeps that follow it, whatever the order.
        usable = max(1, int(budget.limit) - self._list_keep())
        steady = cost * float(budget.window) / ((1 - _BURST) * usable)
        burst = _BURST * usable
        spent = budget.spent()
        interval = steady
        if not self.webhooks and spent < burst:
            interval = steady * spent / burst  # fresh budget: sweep fast, slowing as it is used
        if self._starved:
            interval = max(interval, budget.seconds_until(1, keep=self._list_keep()))
        return max(floor, min(self.max_interval, interval))

    def poll_once(self) -> list[Decision]:
        """One sweep; the decisions this sweep delivered."""
        delivered: list[Decision] = []
        for rid in self.collect():
            delivered += self.resolver.deliver(rid)
        return delivered

    async def apoll_once(self) -> list[Decision]:
        """Async twin of :meth:`poll_once` (API and ledger work in a worker thread)."""
        import asyncio

        delivered: list[Decision] = []
        for rid in await asyncio.to_thread(self.collect):
            delivered += await self.resolver.adeliver(rid)
        return delivered


def _carries_answer(row: ReviewRecord, item: Request) -> bool:
    """Does a list item hold everything ``Decision.from_request`` needs for this row?

    HITL.sh's list items carry ``status``, ``response_type`` and ``response_data`` (hitl-api
    §6.3) but not always ``default_response``, which a timeout needs only when the row opted
    into approving on timeout.
    """
    if item.status not in TERMINAL_STATUSES:
        return False
    if item.status == "cancelled":
        return True
    if item.response_type is None:
        return False
    if item.status == "timeout":
        opted_in = bool((row.payload.get("interpretation") or {}).get("approve_on_timeout"))
        return not opted_in or "default_response" in item.model_fields_set
    return True


def _definite(error: APIError | None) -> bool:
    """Is this failed call HITL.sh's own word about the request (so the fail-closed rule may
    count it)? Only a 404: the request does not exist. An outage (connection, timeout, 5xx,
    a page that is not the API's), a 429 or a rejected key says nothing about it."""
    return isinstance(error, NotFoundError)
