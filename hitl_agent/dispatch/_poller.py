"""Poller: one budgeted sweep finds every changed request with ~ceil(N/100) API calls.

A sweep, in order:

1. Rows already ``decided`` (or ``resuming`` with an expired lease) are delivered again: no
   API call. This is what finishes a decision that arrived before its interrupt was durable.
2. ``GET /requests?status=pending&loop_id=…`` pages of 100 list what is *still* pending. An open
   ledger row whose request is missing from a complete listing has changed: one GET each fetches
   its truth. Rows past their deadline that are still listed get a GET too (the API may lag).
3. Rows past ``deadline + grace`` that still have no decision (API down, budget spent, an
   unknown status) are decided fail-closed: ``timed_out``, never approved, reason visible.

Every call is charged to the :class:`CallBudget`; a refused charge ends the sweep's API work,
and a 429 blocks the budget until ``reset_at``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from .._exceptions import APIError, RateLimitError
from ..decision import Decision
from ._resolver import Resolver

if TYPE_CHECKING:
    from ..ledger import ReviewRecord

__all__ = ["Poller"]

log = logging.getLogger("hitl_agent.dispatch")

_PAGE = 100


class Poller:
    """Finds decided requests for a resolver, within the budget.

    Args:
        resolver: the shared resolve path (its client, ledger and budget are used).
        loop_id: only rows of this loop are polled (None: every loop in the ledger).
        deadline_grace: seconds after a row's deadline before it is decided fail-closed.
        max_rows: the most open rows one sweep considers.
    """

    def __init__(
        self,
        resolver: Resolver,
        *,
        loop_id: str | None = None,
        deadline_grace: float = 300.0,
        max_rows: int = 10_000,
        row_filter: Callable[[ReviewRecord], bool] | None = None,
    ) -> None:
        self.resolver = resolver
        self.loop_id = loop_id
        self.deadline_grace = deadline_grace
        self.max_rows = max_rows
        self.row_filter = row_filter

    @property
    def _clock(self) -> Callable[[], float]:
        return self.resolver.clock

    def _mine(self, row: ReviewRecord) -> bool:
        if self.row_filter is not None and not self.row_filter(row):
            return False
        return self.loop_id is None or row.loop_id in (None, self.loop_id)

    def _still_pending(self) -> set[str] | None:
        """Ids listed as pending, or None when the listing could not be completed."""
        resolver = self.resolver
        ids: set[str] = set()
        offset = 0
        while True:
            if not resolver.budget.try_spend(1, client=resolver.client):
                resolver.stats["budget_refused"] += 1
                return None
            try:
                page = resolver.client.requests.list(
                    status="pending",
                    loop_id=self.loop_id,
                    limit=_PAGE,
                    offset=offset,
                    sort="created_at_asc",
                )
            except RateLimitError as err:
                resolver.budget.block_until(err.reset_at)
                resolver.stats["rate_limited"] += 1
                return None
            except APIError as err:
                log.warning("pending listing failed error=%s", type(err).__name__)
                resolver.stats["list_failed"] += 1
                return None
            ids.update(request.id for request in page.requests)
            if page.has_more is False or len(page.requests) < _PAGE:
                return ids
            offset += len(page.requests)

    def collect(self) -> list[str]:
        """Do the sweep's API and ledger work; return the request ids ready to deliver."""
        rows = [
            row for row in self.resolver.ledger.list_open(limit=self.max_rows) if self._mine(row)
        ]
        ready = [
            row.request_id
            for row in rows
            if row.request_id is not None and row.state in ("decided", "resuming")
        ]
        pending = {row.request_id: row for row in rows if row.state == "pending" and row.request_id}
        if pending:
            ready.extend(self._check(pending))
        return ready

    def _check(self, pending: dict[str, ReviewRecord]) -> list[str]:
        resolver = self.resolver
        now = self._clock()
        listed = self._still_pending()
        to_get: list[str] = []
        if listed is not None:
            to_get = [rid for rid in pending if rid not in listed]
            to_get += [
                rid
                for rid, row in pending.items()
                if rid in listed and row.deadline is not None and now >= row.deadline
            ]
        decided: list[str] = []
        for rid in to_get:
            request = resolver.fetch(rid)
            if request is None:
                continue
            if resolver.record(pending[rid], request):
                decided.append(rid)
        for rid, row in pending.items():
            if rid in decided or row.deadline is None:
                continue
            if now >= row.deadline + self.deadline_grace:
                decided += self._fail_closed(row)
        return decided

    def _fail_closed(self, row: ReviewRecord) -> list[str]:
        assert row.request_id is not None
        current = self.resolver.ledger.get_by_request_id(row.request_id)
        if current is None or current.state != "pending":
            return []
        decision = Decision.fail_closed(
            row.request_id,
            "No trustworthy answer could be had by the deadline (the API did not report a "
            "decision, was unreachable, or the call budget was spent)",
        )
        stored = self.resolver.ledger.record_decision(
            row.request_id, decision.model_dump(mode="json"), now=self._clock()
        )
        if stored:
            self.resolver.stats["failed_closed"] += 1
        return [row.request_id] if stored else []

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
