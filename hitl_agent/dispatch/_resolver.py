"""Resolver: the one idempotent path from "something changed" to "resumed exactly once".

Webhook, poller, a second replica and a manual call all end here::

    fetch truth (GET /requests/{id}, charged to the budget)
      → Decision.from_request (fail-closed, with the row's own interpretation settings)
      → ledger.record_decision       first decision wins, forever
      → ledger.claim                 one winner per request; a lease covers crashed winners
      → resumer.resume(row, decision)
      → ledger.complete              (release instead when the resume failed or the target
                                      is not waiting yet, so a later sweep retries)

The decision is never read from a callback body: the body only names a request id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .._exceptions import APIError, RateLimitError
from ..decision import DEFAULT_APPROVE_VALUES, DEFAULT_REJECT_VALUES, Decision
from ..models.requests import Request
from ._hooks import checkpoint

if TYPE_CHECKING:
    from .._client import HITLClient
    from ..ledger import Ledger, ReviewRecord
    from ._budget import CallBudget

__all__ = ["Resolver", "Resumer"]

log = logging.getLogger("hitl_agent.dispatch")


@runtime_checkable
class Resumer(Protocol):
    """Delivers a decision to whatever waits for it (a graph thread, a blocked caller).

    ``decisions`` holds every decision of the row's task (one for a blocking review; all
    reviews of one LangGraph task, e.g. parallel tool calls, are delivered together).
    ``resume`` returns True when the decision was delivered, False when the target is not
    waiting (nothing was run; the dispatcher retries later), and raises when delivery failed.
    ``finished`` says whether a target that is not waiting never will again (its thread
    finished after the decision was recorded): the row is then closed instead of retried.
    """

    def resume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool: ...

    async def aresume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool: ...

    def finished(self, record: ReviewRecord) -> bool: ...

    async def afinished(self, record: ReviewRecord) -> bool: ...


class Resolver:
    """Fetches, records, claims and resumes; every step is a no-op for the losers of a race.

    Args:
        ledger: the gates' ledger.
        client: the HITL client used for the truth GET.
        resumer: where decisions go.
        budget: the call budget charged for each GET.
        clock: epoch seconds.
        owner: this process's claim owner id.
        lease_seconds: how long a claim lasts before another resolver may take it over.
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
    ) -> None:
        self.ledger = ledger
        self.client = client
        self.resumer = resumer
        self.budget = budget
        self.clock = clock
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.stats: Counter[str] = Counter()

    # -- truth ---------------------------------------------------------------------------

    def fetch(self, request_id: str) -> Request | None:
        """GET the request, charged to the budget; None when it cannot be had right now."""
        if not self.budget.try_spend(1, client=self.client):
            self.stats["budget_refused"] += 1
            return None
        try:
            request = self.client.requests.get(request_id)
        except RateLimitError as err:
            self.budget.observe(self.client)
            self.budget.block_until(err.reset_at)
            self.stats["rate_limited"] += 1
            return None
        except APIError as err:
            log.warning("fetch failed request_id=%s error=%s", request_id, type(err).__name__)
            self.stats["fetch_failed"] += 1
            return None
        self.budget.observe(self.client)  # the server's clock and limit, for the schedule
        self.stats["fetched"] += 1
        return request

    def record(self, row: ReviewRecord, request: Request) -> bool:
        """Interpret a fetched request for ``row`` and store the decision if it is terminal."""
        if request.id != row.request_id or (
            row.loop_id is not None
            and request.loop_id is not None
            and request.loop_id != row.loop_id
        ):
            # Another tenant's or another loop's request under our id: never act on it.
            self.stats["mismatch"] += 1
            log.warning("fetched request does not match its row request_id=%s", row.request_id)
            return False
        interpretation: dict[str, Any] = dict(row.payload.get("interpretation") or {})
        decision = Decision.from_request(
            request,
            approve_values=interpretation.get("approve_values") or DEFAULT_APPROVE_VALUES,
            reject_values=interpretation.get("reject_values") or DEFAULT_REJECT_VALUES,
            approve_on_timeout=bool(interpretation.get("approve_on_timeout", False)),
        )
        if decision is None:
            return False
        stored = self.ledger.record_decision(
            request.id, decision.model_dump(mode="json"), now=self.clock()
        )
        if stored:
            self.stats["recorded"] += 1
            checkpoint("resolver.after_record_decision")
        return stored

    # -- resolve -------------------------------------------------------------------------

    def resolve(self, request_id: str, *, fetched: Request | None = None) -> list[Decision]:
        """Bring ``request_id`` as far as it can go; the decisions this call delivered."""
        row = self.ledger.get_by_request_id(request_id)
        if row is None:
            return []  # unknown ids never start anything
        if row.state == "pending":
            request = fetched if fetched is not None else self.fetch(request_id)
            checkpoint("resolver.after_fetch")
            if request is None or not self.record(row, request):
                row = self.ledger.get_by_request_id(request_id)
                if row is None or row.state == "pending":
                    return []
        return self.deliver(request_id)

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
        claimed: list[ReviewRecord] = []
        for member in group:  # sorted: racing resolvers collide on the first member
            assert member.request_id is not None
            if not self.ledger.claim(
                member.request_id, self.owner, now=self.clock(), lease_seconds=self.lease_seconds
            ):
                self._release(claimed)
                self.stats["claim_lost"] += 1
                return None
            claimed.append(member)
        if not claimed:
            return None
        checkpoint("resolver.after_claim")
        return row, claimed

    def _release(self, rows: list[ReviewRecord]) -> None:
        for member in rows:
            assert member.request_id is not None
            self.ledger.release(member.request_id, self.owner, now=self.clock())

    def _finish(self, rows: list[ReviewRecord], delivered: bool, finished: bool) -> None:
        if not delivered and not finished:
            self._release(rows)
            self.stats["not_waiting"] += 1
            return
        for member in rows:
            assert member.request_id is not None
            self.ledger.complete(member.request_id, self.owner, now=self.clock())
        if delivered:
            self.stats["resumed"] += len(rows)
        else:
            # The thread moved on after the decision (e.g. a crash between an earlier resume
            # and its ledger write): nothing can wait for it any more, so close the rows.
            self.stats["finished_elsewhere"] += len(rows)
            log.info("closed rows of a finished thread request_id=%s", rows[0].request_id)

    def _finished(self, row: ReviewRecord) -> bool:
        try:
            return self.resumer.finished(row)
        except Exception:
            log.exception("finished check failed request_id=%s", row.request_id)
            return False

    async def _afinished(self, row: ReviewRecord) -> bool:
        try:
            return await self.resumer.afinished(row)
        except Exception:
            log.exception("finished check failed request_id=%s", row.request_id)
            return False

    def deliver(self, request_id: str) -> list[Decision]:
        """Claim a decided row (and its task's siblings) and resume; what this call delivered."""
        claimed = self._claim(request_id)
        if claimed is None:
            return []
        row, group = claimed
        decisions = [Decision.model_validate(member.decision) for member in group]
        try:
            delivered = self.resumer.resume(row, decisions)
            checkpoint("resolver.after_resume")
        except Exception:
            self._release(group)
            self.stats["resume_failed"] += 1
            log.exception("resume failed request_id=%s; released for a later retry", request_id)
            return []
        self._finish(group, delivered, not delivered and self._finished(row))
        return decisions if delivered else []

    async def adeliver(self, request_id: str) -> list[Decision]:
        """Async twin of :meth:`deliver` (the resumer's ``aresume`` runs on the loop)."""
        claimed = await asyncio.to_thread(self._claim, request_id)
        if claimed is None:
            return []
        row, group = claimed
        decisions = [Decision.model_validate(member.decision) for member in group]
        try:
            delivered = await self.resumer.aresume(row, decisions)
            checkpoint("resolver.after_resume")
        except Exception:
            await asyncio.to_thread(self._release, group)
            self.stats["resume_failed"] += 1
            log.exception("resume failed request_id=%s; released for a later retry", request_id)
            return []
        finished = not delivered and await self._afinished(row)
        await asyncio.to_thread(self._finish, group, delivered, finished)
        return decisions if delivered else []

    async def aresolve(self, request_id: str) -> list[Decision]:
        """Async twin of :meth:`resolve`: IO in a worker thread, the resume on the loop."""

        def _prepare() -> bool:
            row = self.ledger.get_by_request_id(request_id)
            if row is None:
                return False
            if row.state == "pending":
                request = self.fetch(request_id)
                checkpoint("resolver.after_fetch")
                if request is None or not self.record(row, request):
                    row = self.ledger.get_by_request_id(request_id)
                    return row is not None and row.state != "pending"
            return True

        if not await asyncio.to_thread(_prepare):
            return []
        return await self.adeliver(request_id)
