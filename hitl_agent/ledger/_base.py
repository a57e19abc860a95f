"""The ledger: one durable row per review gate, from intent to resumed.

A gate writes its row *before* it asks HITL.sh for anything, so that a crash, a replayed
LangGraph node or a retried call finds the row and never creates a second review. The row then
follows one path, each step a compare-and-set, so that any number of webhooks, pollers,
replicas and manual resumes agree on a single outcome::

    intent ─mark_created─▶ pending ─record_decision─▶ decided ─claim─▶ resuming ─complete─▶ resumed
      │                                                  ▲              │
      └─discard_intent (create refused for sure)         └───release────┘ (resume failed)

``claim`` takes a lease: a resumer that dies mid-resume leaves a ``resuming`` row whose lease
expires, and the next claim takes it over. A live resumer renews its lease (``renew``) while
the resume runs (an approved action may take longer than any lease), so a takeover only ever
happens to a claim whose owner stopped renewing it. Timestamps are seconds since the epoch
(UTC) and come from the caller, so tests can drive time, with one exception: leases are
judged by ONE clock, the ledger's (the database server's time for PostgreSQL, the host's
for SQLite, or a ``clock`` injected into the ledger). A replica whose own clock runs ahead
cannot take over a live claim, and one whose clock stepped back cannot lose its own: the
``now`` a caller passes to ``claim``/``renew`` only stamps ``updated_at``.

Beside the review rows, the gate keeps two kinds of bookkeeping in tables of their own, so
that no reader of review rows ever meets them: the claims of a gate's *slot* (concurrent runs
of one thread reach one gate in different tasks; one run per turn of the slot asks) and
*aliases* (a run that reuses another run's open request finds that run's row through its own
key). See :class:`SlotClaim` and :meth:`Ledger.claim_slot` / :meth:`Ledger.record_alias`.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Self, TypeAlias

from .._exceptions import HITLError
from .._keys import slot_key
from ._executions import DeliveryFault, ExecutionRecord, ExecutionState
from ._grants import Grant, GrantUse

__all__ = ["Ledger", "LedgerError", "LedgerState", "ReviewRecord", "SlotClaim"]

LedgerState: TypeAlias = Literal["intent", "pending", "decided", "resuming", "resumed"]


class LedgerError(HITLError):
    """The ledger's store failed (after retrying what is safe to retry).

    The message names the backend and the operation; the original error (``sqlite3`` or
    ``psycopg``) is the ``__cause__``.
    """


@dataclass(frozen=True)
class ReviewRecord:
    """One gate's row.

    Attributes:
        key: the correlation key (unique): thread, checkpoint namespace and gate index, or a
            tool-call id. It is stamped into the HITL request's ``context``.
        state: where the row is on its path.
        request_id: the HITL request id, once the create succeeded.
        thread_id, checkpoint_ns: the LangGraph thread to resume (None in blocking mode).
        loop_id: the loop the request was created in.
        args_hash: the hash of the review spec the row was created for
            (``ReviewSpec.spec_hash()``: the question, its form, and the hash of the tool
            name and args when there is one); a replay asking anything else is refused. It
            is stored in the column ``spec_hash`` and also readable as :attr:`spec_hash`;
            the tool args' own hash, when bound, is ``payload["args_hash"]``.
        token_hash: sha256 hex of the callback capability token (the token itself is never stored).
        deadline: when HITL.sh times the request out (epoch seconds), if known.
        decision: the decided answer (a Decision as JSON), once fetched from a trusted source.
        payload: JSON the gate wants back on resume (e.g. the review spec, for reconciliation).
        claimed_by, lease_until: the current resume claim.
        created_at, updated_at: epoch seconds.
        decided_at: when the decision was recorded (epoch seconds); claims and releases
            leave it alone, so it tells whether a thread moved on after the decision.
    """

    key: str
    state: LedgerState
    request_id: str | None = None
    thread_id: str | None = None
    checkpoint_ns: str | None = None
    loop_id: str | None = None
    args_hash: str | None = None
    token_hash: str | None = None
    deadline: float | None = None
    decision: dict[str, Any] | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    claimed_by: str | None = None
    lease_until: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    decided_at: float | None = None

    @property
    def spec_hash(self) -> str | None:
        """The review spec's hash: :attr:`args_hash` under the name of its column."""
        return self.args_hash


@dataclass(frozen=True)
class SlotClaim:
    """One turn of a gate's slot, held by one review row.

    Attributes:
        thread_id: the LangGraph thread.
        slot: the gate's slot (``hitl_agent._keys.slot_namespace``: the node path without
            task ids, the tool-call id and the index), the same in every run of the thread.
        turn: 0 for the first claim of the slot, then 1, 2, … (a newer run that asks a
            different question takes the next turn).
        owner: the correlation key of the review row that holds this turn.
        created_at: epoch seconds.
    """

    thread_id: str
    slot: str
    turn: int
    owner: str
    created_at: float = 0.0

    @property
    def key(self) -> str:
        """The claim's key (``slot|<thread>|<slot>|<turn>``), as it was stored before slot
        claims had their own table."""
        return slot_key(self.thread_id, self.slot, self.turn)


class Ledger(ABC):
    """The ledger interface. Every method is atomic; the async twins run it in a thread.

    Backends: :class:`hitl_agent.ledger.SqliteLedger` (default) and
    :class:`hitl_agent.ledger.PostgresLedger`; :func:`hitl_agent.ledger.open_ledger` picks one
    from a URL. ``tests/ledger`` runs one conformance suite against both.
    """

    @abstractmethod
    def setup(self) -> None:
        """Create or migrate the tables. Idempotent."""

    @abstractmethod
    def record_intent(
        self,
        key: str,
        *,
        now: float,
        thread_id: str | None = None,
        checkpoint_ns: str | None = None,
        loop_id: str | None = None,
        args_hash: str | None = None,
        token_hash: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> tuple[ReviewRecord, bool]:
        """Insert an ``intent`` row for ``key`` unless one exists.

        Returns:
            The row as stored and True when this call inserted it; the existing row and False
            when ``key`` was already recorded (whatever its state). ``args_hash`` is
            stored in the column ``spec_hash`` (see :class:`ReviewRecord`).
        """

    @abstractmethod
    def mark_created(
        self, key: str, request_id: str, *, now: float, deadline: float | None = None
    ) -> ReviewRecord:
        """``intent`` -> ``pending`` with the request id. Idempotent for the same request id.

        Raises:
            KeyError: no row for ``key``.
            ValueError: the row already carries a different request id.
        """

    @abstractmethod
    def discard_intent(self, key: str) -> bool:
        """Delete an ``intent`` row whose create was refused for certain (a 4xx).

        Returns True when a row was deleted; rows past ``intent`` are never deleted.
        """

    @abstractmethod
    def get(self, key: str) -> ReviewRecord | None:
        """The row for a correlation key."""

    @abstractmethod
    def get_by_request_id(self, request_id: str) -> ReviewRecord | None:
        """The row for a HITL request id."""

    @abstractmethod
    def list_open(self, *, limit: int = 1000) -> list[ReviewRecord]:
        """Rows that still need work (``intent``, ``pending``, ``decided``, ``resuming``),
        oldest first."""

    @abstractmethod
    def list_task(self, thread_id: str, checkpoint_ns: str) -> list[ReviewRecord]:
        """Every row of one LangGraph task (thread and checkpoint namespace), any state,
        oldest first. The resolver resumes a task's reviews together: LangGraph re-runs the
        whole task on resume."""

    @abstractmethod
    def list_rows(
        self,
        *,
        since: float | None = None,
        thread_id: str | None = None,
        limit: int = 1000,
        after: tuple[float, str] | None = None,
    ) -> list[ReviewRecord]:
        """Every row, any state, in ``(created_at, key)`` order: one page of a full read
        (the audit export).

        Args:
            since: only rows created at or after this time (epoch seconds).
            thread_id: only rows of this LangGraph thread.
            limit: at most this many rows.
            after: the ``(created_at, key)`` of the last row of the previous page: only rows
                after it. A cursor of values, not of a row, so a row deleted between two pages
                (a discarded intent) cannot end the read early.
        """

    def get_executions(self, keys: Sequence[str]) -> dict[str, ExecutionRecord]:
        """The execution records of ``keys`` that exist, by key (one read per page of an
        export instead of one per row; backends override this loop)."""
        found = {}
        for key in dict.fromkeys(keys):
            record = self.get_execution(key)
            if record is not None:
                found[key] = record
        return found

    @abstractmethod
    def record_decision(self, request_id: str, decision: dict[str, Any], *, now: float) -> bool:
        """``pending`` -> ``decided``: store the first decision for ``request_id`` and
        ``decided_at = now``.

        Returns True when this call stored it; False when a decision was already stored (the
        first one wins, forever) or no row has this request id.
        """

    def record_decisions(
        self, decisions: Sequence[tuple[str, dict[str, Any]]], *, now: float
    ) -> list[bool]:
        """:meth:`record_decision` for each ``(request_id, decision)``, in one transaction
        where the backend can (the poller records a list page's answers together: one commit
        instead of one per answer). One bool per item, in order; an id given twice keeps its
        first decision."""
        return [self.record_decision(rid, decision, now=now) for rid, decision in decisions]

    @abstractmethod
    def claim(self, request_id: str, owner: str, *, now: float, lease_seconds: float) -> bool:
        """``decided`` -> ``resuming`` for ``owner``, or take over a ``resuming`` row whose
        lease expired. Exactly one of any number of concurrent callers gets True.

        The lease runs until the *ledger's* time + ``lease_seconds`` and has expired when the
        ledger's time reaches ``lease_until``; ``now`` (the caller's clock) only stamps
        ``updated_at``, so replicas with skewed clocks agree on who holds the claim."""

    @abstractmethod
    def renew(self, request_id: str, owner: str, *, now: float, lease_seconds: float) -> bool:
        """Extend ``owner``'s claim to the ledger's time + ``lease_seconds`` (a heartbeat
        while it resumes; ``now`` only stamps ``updated_at``).

        Returns True when ``owner`` still holds the ``resuming`` row (also when its lease ran
        out but nobody took it over); False when the row is not ``resuming`` or another
        owner holds it: the caller lost its claim.
        """

    @abstractmethod
    def release(self, request_id: str, owner: str, *, now: float) -> bool:
        """``resuming`` -> ``decided`` when ``owner`` holds the claim (the resume failed)."""

    @abstractmethod
    def complete(self, request_id: str, owner: str, *, now: float) -> bool:
        """``resuming`` -> ``resumed`` when ``owner`` holds the claim."""

    # -- the gate's bookkeeping: slot claims and aliases ---------------------------------

    @abstractmethod
    def claim_slot(self, thread_id: str, slot: str, turn: int, owner: str, *, now: float) -> bool:
        """Record that the review row ``owner`` holds ``turn`` of ``slot`` unless that turn is
        taken. Exactly one of any number of concurrent callers for one turn gets True."""

    @abstractmethod
    def list_slot_claims(self, thread_id: str, slot: str) -> list[SlotClaim]:
        """Every claim of one slot, by turn."""

    @abstractmethod
    def record_alias(self, key: str, owner: str, *, now: float) -> str:
        """Record that the review keyed ``key`` reuses the row keyed ``owner``, unless ``key``
        already has an alias; the owner stored (the first one wins, forever)."""

    @abstractmethod
    def get_alias(self, key: str) -> str | None:
        """The key of the row that ``key``'s review reuses, or None."""

    # -- executions and delivery faults (see hitl_agent.ledger._executions) ---------------

    @abstractmethod
    def start_execution(
        self,
        key: str,
        owner: str,
        *,
        now: float,
        request_id: str | None = None,
        thread_id: str | None = None,
        tool: str | None = None,
    ) -> tuple[ExecutionRecord, bool]:
        """Record that ``owner`` starts the action keyed ``key``, unless it was started.

        Returns:
            The stored record and True when ``owner`` holds it (this call, or a lost reply
            of an earlier call by the same owner, inserted it); the existing record and False
            when another attempt started it first: the caller must not run the action.
        """

    @abstractmethod
    def finish_execution(
        self,
        key: str,
        owner: str,
        *,
        state: ExecutionState,
        now: float,
        result: dict[str, Any] | None = None,
        note: str | None = None,
    ) -> bool:
        """``owner``'s started (or flagged in-doubt) execution -> ``state`` with its
        result. False when ``owner`` does not hold it."""

    @abstractmethod
    def flag_in_doubt(self, key: str, *, note: str) -> bool:
        """A ``started`` execution that a later run found unfinished -> ``in_doubt``."""

    @abstractmethod
    def settle_execution(self, key: str, *, state: ExecutionState, now: float, note: str) -> bool:
        """An operator's verdict on an unfinished or failed execution (``succeeded``: it
        ran; ``failed``: it did not take effect). False when there is nothing to settle."""

    @abstractmethod
    def forget_execution(self, key: str, owner: str = "") -> bool:
        """Delete an execution record (``owner``'s, or any with ``owner=""``): the action
        did not start after all (the tool suspended), or an operator wants it run again."""

    @abstractmethod
    def get_execution(self, key: str) -> ExecutionRecord | None:
        """The execution record for ``key``, or None."""

    @abstractmethod
    def list_executions(
        self,
        *,
        states: Sequence[ExecutionState] = ("started", "in_doubt", "failed"),
        request_id: str | None = None,
        limit: int = 1000,
    ) -> list[ExecutionRecord]:
        """Execution records in ``states`` (of one request, when given), oldest first."""

    @abstractmethod
    def record_delivery_fault(
        self,
        request_id: str,
        *,
        attempts: int,
        now: float,
        retry_at: float | None,
        parked: bool,
        reason: str,
        last_error: str | None,
    ) -> None:
        """Store (replace) the delivery fault of ``request_id``."""

    @abstractmethod
    def get_delivery_fault(self, request_id: str) -> DeliveryFault | None:
        """The delivery fault of ``request_id``, or None."""

    @abstractmethod
    def list_delivery_faults(self, *, parked: bool | None = None) -> list[DeliveryFault]:
        """Every delivery fault (only parked ones, or only retried ones), oldest first."""

    @abstractmethod
    def clear_delivery_fault(self, request_id: str) -> bool:
        """Forget ``request_id``'s delivery fault (it was delivered, or an operator retries)."""

    # -- standing grants (see hitl_agent.ledger._grants) ----------------------------------

    @abstractmethod
    def record_grant(self, grant: Grant) -> Grant:
        """Store ``grant`` unless its id is stored; the stored grant (the first one wins, so
        a re-run of the call that made it changes nothing)."""

    @abstractmethod
    def find_grant(
        self,
        *,
        tool: str,
        loop_id: str | None,
        thread_id: str | None,
        args_hash: str | None,
        now: float,
    ) -> Grant | None:
        """A live grant (not revoked, ``now < expires_at``) of ``tool`` in ``loop_id`` whose
        scope covers the call: its thread (``thread`` scope) or its args hash (``args``
        scope). The one that lasts longest when several do; None when none does."""

    @abstractmethod
    def get_grant(self, grant_id: str) -> Grant | None:
        """The grant ``grant_id``, live or not, or None."""

    @abstractmethod
    def list_grants(self, *, live_at: float | None = None) -> list[Grant]:
        """Every grant (only those live at ``live_at``, when given), oldest first."""

    @abstractmethod
    def revoke_grant(self, grant_id: str, *, now: float) -> bool:
        """Revoke a grant: it covers no call from now on. False when there is no such grant
        or it was already revoked."""

    @abstractmethod
    def record_grant_use(
        self,
        key: str,
        grant_id: str,
        *,
        now: float,
        thread_id: str | None = None,
        tool_call_id: str | None = None,
        args_hash: str | None = None,
    ) -> GrantUse:
        """Record that the call keyed ``key`` runs under ``grant_id`` unless it was recorded;
        the stored use (the first one wins)."""

    @abstractmethod
    def get_grant_use(self, key: str) -> GrantUse | None:
        """The grant use of the call keyed ``key``, or None."""

    @abstractmethod
    def list_grant_uses(self, grant_id: str | None = None) -> list[GrantUse]:
        """Every grant use (of one grant, when given), oldest first."""

    @abstractmethod
    def close(self) -> None:
        """Release connections. Idempotent."""

    def __enter__(self) -> Self:
        """Use the ledger in a ``with`` block; it is closed on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the ledger."""
        self.close()

    async def arecord_intent(self, key: str, **kwargs: Any) -> tuple[ReviewRecord, bool]:
        """Async twin of :meth:`record_intent`."""
        return await asyncio.to_thread(lambda: self.record_intent(key, **kwargs))

    async def amark_created(
        self, key: str, request_id: str, *, now: float, deadline: float | None = None
    ) -> ReviewRecord:
        """Async twin of :meth:`mark_created`."""
        return await asyncio.to_thread(
            lambda: self.mark_created(key, request_id, now=now, deadline=deadline)
        )

    async def adiscard_intent(self, key: str) -> bool:
        """Async twin of :meth:`discard_intent`."""
        return await asyncio.to_thread(self.discard_intent, key)

    async def aget(self, key: str) -> ReviewRecord | None:
        """Async twin of :meth:`get`."""
        return await asyncio.to_thread(self.get, key)

    async def aget_by_request_id(self, request_id: str) -> ReviewRecord | None:
        """Async twin of :meth:`get_by_request_id`."""
        return await asyncio.to_thread(self.get_by_request_id, request_id)

    async def alist_open(self, *, limit: int = 1000) -> list[ReviewRecord]:
        """Async twin of :meth:`list_open`."""
        return await asyncio.to_thread(lambda: self.list_open(limit=limit))

    async def alist_task(self, thread_id: str, checkpoint_ns: str) -> list[ReviewRecord]:
        """Async twin of :meth:`list_task`."""
        return await asyncio.to_thread(self.list_task, thread_id, checkpoint_ns)

    async def arecord_decision(
        self, request_id: str, decision: dict[str, Any], *, now: float
    ) -> bool:
        """Async twin of :meth:`record_decision`."""
        return await asyncio.to_thread(lambda: self.record_decision(request_id, decision, now=now))

    async def aclaim(
        self, request_id: str, owner: str, *, now: float, lease_seconds: float
    ) -> bool:
        """Async twin of :meth:`claim`."""
        return await asyncio.to_thread(
            lambda: self.claim(request_id, owner, now=now, lease_seconds=lease_seconds)
        )

    async def arenew(
        self, request_id: str, owner: str, *, now: float, lease_seconds: float
    ) -> bool:
        """Async twin of :meth:`renew`."""
        return await asyncio.to_thread(
            lambda: self.renew(request_id, owner, now=now, lease_seconds=lease_seconds)
        )

    async def arelease(self, request_id: str, owner: str, *, now: float) -> bool:
        """Async twin of :meth:`release`."""
        return await asyncio.to_thread(lambda: self.release(request_id, owner, now=now))

    async def acomplete(self, request_id: str, owner: str, *, now: float) -> bool:
        """Async twin of :meth:`complete`."""
        return await asyncio.to_thread(lambda: self.complete(request_id, owner, now=now))

    async def aclaim_slot(
        self, thread_id: str, slot: str, turn: int, owner: str, *, now: float
    ) -> bool:
        """Async twin of :meth:`claim_slot`."""
        return await asyncio.to_thread(
            lambda: self.claim_slot(thread_id, slot, turn, owner, now=now)
        )

    async def alist_slot_claims(self, thread_id: str, slot: str) -> list[SlotClaim]:
        """Async twin of :meth:`list_slot_claims`."""
        return await asyncio.to_thread(self.list_slot_claims, thread_id, slot)

    async def arecord_alias(self, key: str, owner: str, *, now: float) -> str:
        """Async twin of :meth:`record_alias`."""
        return await asyncio.to_thread(lambda: self.record_alias(key, owner, now=now))

    async def aget_alias(self, key: str) -> str | None:
        """Async twin of :meth:`get_alias`."""
        return await asyncio.to_thread(self.get_alias, key)

    async def astart_execution(
        self, key: str, owner: str, **kwargs: Any
    ) -> tuple[ExecutionRecord, bool]:
        """Async twin of :meth:`start_execution`."""
        return await asyncio.to_thread(lambda: self.start_execution(key, owner, **kwargs))

    async def afinish_execution(self, key: str, owner: str, **kwargs: Any) -> bool:
        """Async twin of :meth:`finish_execution`."""
        return await asyncio.to_thread(lambda: self.finish_execution(key, owner, **kwargs))

    async def aflag_in_doubt(self, key: str, *, note: str) -> bool:
        """Async twin of :meth:`flag_in_doubt`."""
        return await asyncio.to_thread(lambda: self.flag_in_doubt(key, note=note))

    async def aforget_execution(self, key: str, owner: str = "") -> bool:
        """Async twin of :meth:`forget_execution`."""
        return await asyncio.to_thread(self.forget_execution, key, owner)

    async def aget_execution(self, key: str) -> ExecutionRecord | None:
        """Async twin of :meth:`get_execution`."""
        return await asyncio.to_thread(self.get_execution, key)

    # -- settings shared by every replica ----------------------------------------------

    def ensure_meta(self, name: str, value: str) -> str:
        """Store ``value`` under ``name`` unless a value is stored; return the stored one.

        Concurrent first callers agree: exactly one value is ever stored under a name, and
        every caller gets it back. The generated callback secret lives here, so replicas on a
        shared ledger derive the same callback tokens. Values are settings, possibly secret:
        backends never log them.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no shared settings")

    def get_meta(self, name: str) -> str | None:
        """The value stored under ``name`` by :meth:`ensure_meta`, or None."""
        raise NotImplementedError(f"{type(self).__name__} keeps no shared settings")
