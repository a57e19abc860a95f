"""Create a gate's HITL request at most once: intent row, reconcile, POST, mark created.

The order is the whole point (invariant 1)::

    record_intent(key)            durable before anything is sent
    row exists past intent?   ──► reuse it (replayed node, second call)
    unfinished intent?        ──► reconcile: list the loop newest first, back to the intent's
                                  time (server clock), match the key stamped in context;
                                  found → mark_created, done; cannot tell (budget spent,
                                  listing failed) → AmbiguousCreateError, nothing created
    POST create
      2xx                     ──► mark_created(request_id, deadline)
      definite refusal (4xx)  ──► discard_intent, raise
      anything ambiguous      ──► keep the intent, raise (the next call reconciles first)
                                  a random blocking key: reconcile now (nothing else could);
                                  found → mark_created, done; else discard_intent and raise
                                  AmbiguousCreateError saying what to do

Concurrent runs of one thread (double texting) reach the same gate in *different* tasks, so
their keys differ. A fresh graph gate therefore also claims the gate's *slot* (thread, node
path without task ids, tool-call id and index) before it POSTs: one claim per turn of the
slot, ``Ledger.claim_slot`` being the compare-and-set. The run that loses the claim reuses the
winner's request when it asks the same question (it discards its own intent and interrupts on
the winner's request id), so one gate shows one open request. A run that asks a *different*
question supersedes the open one: the old request is cancelled (the cancel is refunded) and
its row decided ``cancelled`` with the reason, so its dropped answer is never silent.

Within one process, ensure calls for one key take turns (``_Turns``): an async ``ToolNode``
call still creating after its run was suspended is waited for by the resumed run, which then
finds the request created instead of listing the loop before the first POST has arrived.

Slot claims (``Ledger.claim_slot``) and the loser's alias (``Ledger.record_alias``: its key
points at the winner's row, and its own intent row is discarded) live in tables of their own,
never among the review rows that the resolver, the poller and the CLI read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._exceptions import APIConnectionError, APIError, APIStatusError, ConfigError
from .._hooks import checkpoint
from .._keys import parse_gate_key, slot_namespace
from .._retry import NEVER_SENT_ERRORS
from .._server_clock import server_now_bound
from .._tokens import derive_token, token_hash
from ..decision import Decision
from ..models.requests import (
    CancelResult,
    CreatedRequest,
    CreateRequestParams,
    Request,
    RequestPage,
)
from ..models.workflows import WorkflowRef, WorkflowTrigger
from ..observability._tracing import capture_trace_context
from ..resources.requests import _next_offset
from ._errors import AmbiguousCreateError, ReviewMismatchError
from ._spec import CONTEXT_KEY, ReviewSpec

if TYPE_CHECKING:
    from .._client import AsyncHITLClient, HITLClient
    from ..dispatch import CallBudget
    from ..ledger import Ledger, ReviewRecord

__all__ = ["RANDOM_KEY_PREFIX", "CreateTarget", "aensure_request", "ensure_request", "random_key"]

log = logging.getLogger("hitl_agent.gate")

# How far back (seconds) reconciliation looks before the intent was written, on the server's
# clock: covers the Date header's rounding, latency and clock drift since it was read.
_RECONCILE_SKEW = 300.0

# Reconciliation lists this many requests a call (the API's largest page).
_PAGE = 100

# The keys of blocking reviews called without ``key=``: nobody can ask for them again, so
# such a review settles a lost create itself (issue 20 F8).
RANDOM_KEY_PREFIX = "blk|"

# A slot loser waits (real seconds) this long for the winner's create to finish.
_SLOT_WAIT = 30.0
_SLOT_POLL = 0.02
_OPEN = ("intent", "pending", "decided", "resuming")
_SUPERSEDABLE = ("intent", "pending", "decided")


class _Turns:
    """Ensure calls for one key take turns within this process.

    An async ``ToolNode`` runs its calls under ``asyncio.gather``, which does not cancel the
    other calls when one suspends the run: a call can still be creating its request when the
    resumed run asks for the same gate. That second caller found an ``intent`` row, listed the
    loop (the first POST had not arrived yet) and created a second request. Waiting for the
    first caller instead finds its row created. Other processes are kept apart by the ledger
    as before (reconciliation, ``defer_seconds``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, Future[None]] = {}

    def take(self, key: str) -> tuple[Future[None], Future[None] | None]:
        """This caller's turn, and the turn before it still running (None: none)."""
        mine: Future[None] = Future()
        with self._lock:
            earlier = self._last.get(key)
            self._last[key] = mine
        return mine, earlier

    def end(self, key: str, mine: Future[None]) -> None:
        with self._lock:
            if self._last.get(key) is mine:
                del self._last[key]
        mine.set_result(None)


_TURNS = _Turns()
# How long (real seconds) a caller waits for the one before it: past a create's read
# timeout and its retries. A turn that outlasts it (a hung create) is reconciled as before.
_TURN_WAIT = 90.0


@dataclass(frozen=True)
class CreateTarget:
    """Where and how a gate creates requests (shared by every review of one Gatekeeper)."""

    ledger: Ledger
    loop_id: str | None  # None: a workflow target
    callback_url: str | None
    callback_secret: str | None = field(repr=False)  # never in a repr or a log line
    clock: Callable[[], float] = time.time
    # Bounds a reconciliation scan only when no server time does (a server that sends
    # neither Date nor X-RateLimit-Reset): past it the gate cannot tell and creates nothing.
    # 10 list calls; with a server time the scan stops at the intent's time instead.
    reconcile_limit: int = 1_000
    # Charged one call per reconciliation listing or fetch (the keeper's quota budget);
    # None: no budget applies.
    budget: CallBudget | None = None
    # Create by triggering this workflow instead of POSTing to a loop (issue 22 W1).
    workflow: WorkflowRef | None = None
    # An escalation stage asked in another loop: the keeper's own loop, whose dispatchers
    # poll the stage's row too (they list their own loop, and fetch such rows one by one).
    home_loop: str | None = None

    @property
    def where(self) -> str:
        """What requests are created in, for messages: ``loop X`` or ``workflow Y``."""
        if self.workflow is not None:
            return f"workflow {self.workflow.id}"
        return f"loop {self.loop_id}"

    def listing(self) -> dict[str, Any]:
        """The list filter that covers this target's requests. A workflow's backing requests
        live in a loop the gate is not told about: it lists every request of its key."""
        return {} if self.workflow is not None else {"loop_id": self.loop_id}

    def trigger_body(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The trigger POST's body: the create's fields, validated and normalised as a create
        is (the rendered text, the form, the default, timeout, priority, context with the
        key, callback URL), plus ``platform`` as HITL.sh's n8n node sends it."""
        return CreateRequestParams.build(**kwargs, platform="hitl-agent").to_body()

    def created(self, answer: WorkflowTrigger) -> CreatedRequest:
        """A trigger's answer as a create's: its backing request id and deadline."""
        if not answer.request_id:
            # Refused like a 4xx (nothing for the gate to wait on): a workflow must reach a
            # Human Review node when triggered.
            raise ConfigError(
                "workflow",
                f"the trigger of workflow {self.workflow.id if self.workflow else '?'} "
                f"answered without a request_id (execution {answer.execution_id})",
                "give the workflow a Human Review node right after its trigger",
            )
        log.info(
            "triggered %s execution_id=%s request_id=%s",
            self.where,
            answer.execution_id,
            answer.request_id,
        )
        return CreatedRequest(request_id=answer.request_id, timeout_at=answer.timeout_at)

    def callback_for(self, key: str) -> tuple[str | None, str | None]:
        """The per-request callback URL and the token hash to store, or (None, None)."""
        if self.callback_url is None or self.callback_secret is None:
            return None, None
        token = derive_token(self.callback_secret, key)
        return f"{self.callback_url.rstrip('/')}/{token}", token_hash(token)


def _is_definite_refusal(err: Exception) -> bool:
    # A 4xx means the server looked at the request and refused it; 408 is the exception
    # (the server may have stopped reading after acting). 5xx, timeouts, dropped connections
    # and unreadable 2xx bodies leave the outcome unknown.
    if isinstance(err, ConfigError):
        return True
    if isinstance(err, APIConnectionError) and isinstance(err.__cause__, NEVER_SENT_ERRORS):
        # The connection never opened (refused, DNS, connect timeout, no pooled connection):
        # nothing reached the server. The client retries a create only after such errors,
        # so no earlier attempt reached it either. Keeping the intent would leave an orphan
        # row that nothing reconciles (a blocking review's key is random).
        return True
    return (
        isinstance(err, APIStatusError) and 400 <= err.status_code < 500 and err.status_code != 408
    )


def _intent(
    target: CreateTarget, key: str, spec: ReviewSpec, thread_id: str | None, ns: str | None
) -> tuple[ReviewRecord, bool]:
    # A replayed node (every resume re-runs it) finds its row with a read; only a first
    # review takes the write lock to insert.
    existing = target.ledger.get(key)
    if existing is None and parse_gate_key(key, thread_id=thread_id, checkpoint_ns=ns):
        existing = alias_target(target, key)  # this run reused a concurrent run's request
    if existing is not None:
        _check_same_question(existing, key, spec)
        return existing, False
    _, stored_hash = target.callback_for(key)
    row, inserted = target.ledger.record_intent(
        key,
        now=target.clock(),
        thread_id=thread_id,
        checkpoint_ns=ns,
        loop_id=target.loop_id,
        args_hash=spec.spec_hash(),
        token_hash=stored_hash,
        payload={
            "summary": spec.summary,
            "priority": spec.priority,
            "response_type": spec.response_type,
            "interpretation": spec.interpretation(),
            # What the reviewer approves, bound apart from the spec hash (see ARGS_HASH_KEY).
            **({"args_hash": spec.args_hash} if spec.args_hash else {}),
            **({"gated_tool": spec.gated_tool} if spec.gated_tool else {}),
            # The creating span (the tool's), so the resume's spans join its trace.
            **capture_trace_context(),
            **({"workflow_id": target.workflow.id} if target.workflow is not None else {}),
            **({"policy": spec.policy} if spec.policy is not None else {}),
            **({"home_loop": target.home_loop} if target.home_loop else {}),
        },
    )
    _check_same_question(row, key, spec)
    return row, inserted


def _check_same_question(row: ReviewRecord, key: str, spec: ReviewSpec) -> None:
    if row.args_hash is not None and row.args_hash != spec.spec_hash():
        raise ReviewMismatchError(
            f"correlation key {key!r} already belongs to a different review; refusing to reuse "
            "its answer. Fix: keep reviews in a node in a fixed order, and pass tool_call_id "
            "from tools that may run in parallel."
        )


def _matches(request: Request, key: str) -> bool:
    stamp = (request.context or {}).get(CONTEXT_KEY)
    return isinstance(stamp, dict) and stamp.get("key") == key


def _reconcile_cutoff(client: object, since: float, now: float) -> float | None:
    """The server time before which no listed request can be ours, or None when unknown.

    ``since`` (the intent) is on our clock and ``created_at`` on the server's: they are
    compared through the server's clock at the listing just read (its ``Date``, else a lower
    bound from ``X-RateLimit-Reset``), never directly (issue 7 M5: a client clock ahead by
    more than the margin stopped the scan before the request it looked for, and created it
    twice). Without any server time, only ``reconcile_limit`` bounds the scan.
    """
    server_now = server_now_bound(client)
    if server_now is None:
        return None
    return server_now - max(0.0, now - since) - _RECONCILE_SKEW


def _too_old(request: Request, cutoff: float | None) -> bool:
    # Lists come newest first: anything created well before the intent cannot be ours.
    created = request.created_at
    return cutoff is not None and created is not None and created.timestamp() < cutoff


def _deadline(created: CreatedRequest, spec: ReviewSpec, now: float) -> float | None:
    if created.timeout_at is not None:
        return created.timeout_at.timestamp()
    if spec.timeout_seconds is not None:
        return now + spec.timeout_seconds
    return None


def _request_deadline(request: Request) -> float | None:
    return request.timeout_at.timestamp() if request.timeout_at is not None else None


def ensure_request(
    target: CreateTarget,
    client: HITLClient,
    key: str,
    spec: ReviewSpec,
    *,
    thread_id: str | None = None,
    checkpoint_ns: str | None = None,
    defer_seconds: float | None = None,
) -> ReviewRecord:
    """Return the gate's row with a request id, creating the request only if it never was.

    For a graph gate that concurrent runs of its thread also reached, the row returned may be
    another run's (same question, one request): see the module docstring.

    Args:
        defer_seconds: for callers that race on one key by design (replicas sweeping the same
            interrupts): an ``intent`` another caller wrote less than this long ago is left to
            it and returned as is (no request id yet). Decided after ``record_intent``'s
            compare-and-set, so two racing callers can never both create. An older intent
            (its writer died) is reconciled and created as usual.
    """
    mine, earlier = _TURNS.take(key)
    try:
        if earlier is not None:
            with contextlib.suppress(FutureTimeout):
                earlier.result(timeout=_TURN_WAIT)
        return _ensure(target, client, key, spec, thread_id, checkpoint_ns, defer_seconds)
    finally:
        _TURNS.end(key, mine)


def _ensure(
    target: CreateTarget,
    client: HITLClient,
    key: str,
    spec: ReviewSpec,
    thread_id: str | None,
    checkpoint_ns: str | None,
    defer_seconds: float | None,
) -> ReviewRecord:
    """:func:`ensure_request`, in this key's turn."""
    row, inserted = _intent(target, key, spec, thread_id, checkpoint_ns)
    shared = row if row.key != key else None  # the concurrent run's row this run reuses
    if shared is None and inserted and thread_id is not None and checkpoint_ns is not None:
        shared = join_slot(target, client.requests.cancel, row)
    if shared is not None:
        return shared
    if row.state != "intent" or _deferred(target, row, inserted, defer_seconds):
        return row
    checkpoint("gate.after_intent")
    if not inserted:
        found = _reconcile(target, client, key, row.created_at)
        if found is not None:
            return target.ledger.mark_created(
                key, found.id, now=target.clock(), deadline=_request_deadline(found)
            )
    url, _ = target.callback_for(key)
    checkpoint("gate.before_create")
    try:
        created = _create(target, client, spec.create_kwargs(key, url))
    except Exception as err:
        if not _must_settle(key, thread_id, err):
            _on_create_error(target.ledger, key, err)
            raise
        return _settle(target, client, key, err, row.created_at)
    checkpoint("gate.after_create")
    now = target.clock()
    row = target.ledger.mark_created(
        key, created.request_id, now=now, deadline=_deadline(created, spec, now)
    )
    checkpoint("gate.after_mark_created")
    return row


def _settle(
    target: CreateTarget, client: HITLClient, key: str, err: Exception, since: float
) -> ReviewRecord:
    """Settle a random-key review's lost create now: its row with the request the server
    stored, or raise :class:`AmbiguousCreateError` with the intent discarded."""
    try:
        found = _reconcile(target, client, key, since)
    except AmbiguousCreateError as unknown:
        failure = _unsettled(target, key, err, unknown)
    except BaseException:
        target.ledger.discard_intent(key)  # no intent outlives its review, whatever broke
        raise
    else:
        if found is not None:
            return target.ledger.mark_created(
                key, found.id, now=target.clock(), deadline=_request_deadline(found)
            )
        failure = _unsettled(target, key, err, None)
    target.ledger.discard_intent(key)
    raise failure from err


def _deferred(
    target: CreateTarget, row: ReviewRecord, inserted: bool, defer_seconds: float | None
) -> bool:
    """True when ``row`` is another caller's young intent that it is creating right now."""
    if inserted or defer_seconds is None:
        return False
    return target.clock() - row.created_at < defer_seconds


@dataclass
class _Scan:
    """One reconciliation scan over the loop's requests, newest first, without IO.

    :func:`_reconcile` and :func:`_areconcile` only list and fetch; every decision (what a
    call costs, where to stop, what matches, when it cannot tell) and the log line are made
    here, so the twins cannot drift apart.

    The scan pages back to the intent's time on the server's clock, however many requests
    the loop got since (issue 20 F5: a cap of 300 listed requests missed ours behind 300 newer
    ones and created it twice). It stops early only when it cannot tell: the budget is spent,
    the listing failed, or (no server time at all) ``reconcile_limit`` requests were read.
    Then it raises :class:`AmbiguousCreateError`; it never answers "not there" unless it
    looked everywhere our request could be.
    """

    target: CreateTarget
    client: object  # read for the server's clock only
    key: str
    since: float
    seen: int = 0
    cutoff: float | None = None

    def spend(self) -> None:
        """Charge the next call to the budget; raise when it has none left."""
        budget = self.target.budget
        if budget is None or budget.try_spend(1, client=self.client):
            return
        wait = budget.seconds_until(1)
        raise self.unknown(
            f"the call budget is spent after {self.seen} listed requests",
            f"call again in {wait:.0f} s, when the budget allows the listing",
            retry_after=wait,
        )

    def metered(self) -> contextlib.AbstractContextManager[object]:
        """Around each call :meth:`spend` paid for: the client's retries of it are charged
        too (or not sent when the budget has none left)."""
        budget = self.target.budget
        return contextlib.nullcontext() if budget is None else budget.meter(client=self.client)

    def admit(self, request: Request) -> bool:
        """Count a listed request; False once it is too old to be ours (stop the scan)."""
        self.seen += 1
        if self.seen == 1:  # the first page is in: its Date says the server's time
            self.cutoff = _reconcile_cutoff(self.client, self.since, self.target.clock())
        return not _too_old(request, self.cutoff)

    def found(self, request: Request) -> bool:
        """True (and logged) when ``request`` carries our key.

        A request whose listing omitted its context must be fetched whole first.
        """
        if not _matches(request, self.key):
            return False
        log.info("reconciled key=%s request_id=%s", self.key, request.id)
        return True

    def check_bound(self) -> None:
        """Raise when no server time bounds the scan and ``reconcile_limit`` requests were
        read: without a ``created_at`` cutoff, "not seen yet" is not "not there"."""
        if self.cutoff is None and self.seen >= self.target.reconcile_limit:
            raise self.unknown(
                f"the server sent no time (Date or X-RateLimit-Reset) to stop at, and "
                f"{self.seen} listed requests did not hold it",
                "call again later, or raise CreateTarget.reconcile_limit",
            )

    def next_offset(self, page: RequestPage, offset: int) -> int | None:
        """Where the next page starts; None once the whole loop was read."""
        return _next_offset(page, offset, _PAGE)

    def failed(self, err: APIError) -> AmbiguousCreateError:
        """The error for a listing (or fetch) that failed."""
        status = getattr(err, "status_code", None)
        what = type(err).__name__ + (f" {status}" if status is not None else "")
        return self.unknown(f"listing the loop failed ({what})", "call again once the API answers")

    def unknown(
        self, reason: str, fix: str, *, retry_after: float | None = None
    ) -> AmbiguousCreateError:
        """The error of a scan that cannot tell whether our request exists."""
        log.warning("reconcile could not tell key=%s: %s; nothing created", self.key, reason)
        return AmbiguousCreateError(
            f"review {self.key!r}: an earlier create's response was lost, and the gate could "
            f"not tell whether HITL.sh stored it: {reason}. It created nothing, so the "
            f"reviewer is not asked twice. Fix: {fix}; the call with the same key reconciles "
            "before it creates.",
            key=self.key,
            retry_after=retry_after,
            reason=reason,
        )


def _reconcile(target: CreateTarget, client: HITLClient, key: str, since: float) -> Request | None:
    """Our request, or None once the whole span it could be in was listed without it."""
    scan = _Scan(target, client, key, since)
    offset: int | None = 0
    while offset is not None:
        scan.spend()
        try:
            with scan.metered():
                page = client.requests.list(
                    **target.listing(), limit=_PAGE, offset=offset, sort="created_at_desc"
                )
        except APIError as err:
            raise scan.failed(err) from err
        for request in page.requests:
            if not scan.admit(request):
                return None
            if request.context is None:  # the list omitted context: read the request itself
                scan.spend()
                try:
                    with scan.metered():
                        request = client.requests.get(request.id)
                except APIError as err:
                    raise scan.failed(err) from err
            if scan.found(request):
                return request
            scan.check_bound()
        offset = scan.next_offset(page, offset)
    return None


def _create(target: CreateTarget, client: HITLClient, kwargs: dict[str, Any]) -> CreatedRequest:
    """POST the create, or the trigger of the target's workflow."""
    if target.workflow is None:
        return client.requests.create(target.loop_id or "", **kwargs)
    answer = client.workflows.trigger(target.workflow, target.trigger_body(kwargs))
    return target.created(answer)


def _must_settle(key: str, thread_id: str | None, err: Exception) -> bool:
    """True for an ambiguous create that this call must settle itself: a blocking review's
    random key, which no later call can ask for again (issue 20 F8)."""
    return thread_id is None and key.startswith(RANDOM_KEY_PREFIX) and not _is_definite_refusal(err)


def random_key() -> str:
    """A fresh key for a blocking review called without ``key=``."""
    return f"{RANDOM_KEY_PREFIX}{uuid.uuid4().hex}"


def _unsettled(
    target: CreateTarget, key: str, err: Exception, unknown: AmbiguousCreateError | None
) -> AmbiguousCreateError:
    """The error of a random-key review whose lost create its own listing did not find.

    Its intent is discarded by the caller: nothing could ever reconcile it (issue 20 F8).
    ``unknown``: why the listing could not tell, or None when it looked everywhere.
    """
    cause = type(err).__name__
    stable = (
        "pass key= (a stable id of this action, e.g. the order id) so that a call after an "
        "unclear failure reconciles instead of asking twice"
    )
    if unknown is None:
        log.warning(
            "create failed key=%s error=%s; %s holds no such request", key, cause, target.where
        )
        return AmbiguousCreateError(
            f"review {key!r}: the create failed ({cause}) and {target.where} holds no "
            f"request for it: nothing was created. Fix: call review() again; {stable}.",
            key=key,
            created=False,
        )
    log.warning(
        "create outcome unknown key=%s error=%s; a request with this key in %s, if "
        "any, is not waited on",
        key,
        cause,
        target.where,
    )
    return AmbiguousCreateError(
        f"review {key!r}: the create failed ({cause}) and the gate could not tell whether "
        f"HITL.sh stored it: {unknown.reason}. Nothing waits on it now: a request in "
        f"{target.where} whose context holds this key, if one shows, is an orphan (cancel "
        f"it). Fix: {stable}; then call review() again.",
        key=key,
        retry_after=unknown.retry_after,
        reason=unknown.reason,
    )


def _on_create_error(ledger: Ledger, key: str, err: Exception) -> None:
    if _is_definite_refusal(err):
        ledger.discard_intent(key)
    else:
        log.warning(
            "create outcome unknown key=%s error=%s; the intent is kept and the next call "
            "with this key reconciles before creating again",
            key,
            type(err).__name__,
        )


# -- slots (concurrent runs of one thread) ----------------------------------------------


def _slot_ns(row: ReviewRecord) -> str | None:
    """The slot of a graph gate's row: its node path without task ids, tool-call id, index."""
    key = parse_gate_key(row.key, thread_id=row.thread_id, checkpoint_ns=row.checkpoint_ns)
    return None if key is None else slot_namespace(key)  # None: an explicit key


def join_slot(
    target: CreateTarget, cancel: Callable[[str], CancelResult], row: ReviewRecord
) -> ReviewRecord | None:
    """Claim ``row``'s slot; the other run's row to reuse, or None to create as usual.

    ``cancel`` cancels a superseded request (``client.requests.cancel``).
    """
    slot = _slot_ns(row)
    if slot is None or row.thread_id is None:
        return None
    ledger = target.ledger
    for _ in range(16):  # racing runs each take at most one turn
        claims = ledger.list_slot_claims(row.thread_id, slot)
        latest = claims[-1] if claims else None
        turn = -1 if latest is None else latest.turn
        if latest is not None:
            owner_key = latest.owner
            if owner_key == row.key:
                return None
            owner = ledger.get(owner_key)
            if owner is not None and owner.state in _OPEN and owner.args_hash == row.args_hash:
                shared = _await_created(target, owner)
                if shared is not None:
                    _alias(target, row.key, owner.key)
                    log.info(
                        "reused the open request of a concurrent run key=%s request_id=%s",
                        row.key,
                        shared.request_id,
                    )
                    return shared
                if ledger.get(owner.key) is None:
                    continue  # the winner's create was refused: its row is gone
                # The winner's create is stuck (it died mid-create, its replay reconciles it):
                # ask separately rather than wait forever.
                return None
            if owner is not None and owner.state in _SUPERSEDABLE:
                _supersede(target, cancel, owner, row)
        if ledger.claim_slot(row.thread_id, slot, turn + 1, row.key, now=target.clock()):
            return None
    log.warning("slot claim kept losing races key=%s; creating without it", row.key)
    return None


def _alias(target: CreateTarget, key: str, owner: str) -> None:
    """Make ``key``'s review reuse ``owner``'s request: its intent row goes, an alias stays.

    The intent is discarded first: a crash in between leaves neither, and the replay then
    records its intent again and joins the slot again (same owner, same outcome).
    """
    target.ledger.discard_intent(key)
    target.ledger.record_alias(key, owner, now=target.clock())


def alias_target(target: CreateTarget, key: str) -> ReviewRecord | None:
    """The row whose request ``key``'s review reuses (a concurrent run's), or None."""
    owner = target.ledger.get_alias(key)
    return None if owner is None else target.ledger.get(owner)


def _await_created(target: CreateTarget, owner: ReviewRecord) -> ReviewRecord | None:
    """``owner`` once its request exists; None if its intent was discarded or never made it."""
    deadline = time.monotonic() + _SLOT_WAIT
    current: ReviewRecord | None = owner
    while current is not None and current.request_id is None:
        if time.monotonic() > deadline:
            log.warning("a concurrent run's create did not finish key=%s", owner.key)
            return None
        time.sleep(_SLOT_POLL)
        current = target.ledger.get(owner.key)
    return current


def retire_request(
    ledger: Ledger,
    clock: Callable[[], float],
    cancel: Callable[[str], CancelResult],
    row: ReviewRecord,
    reason: str,
    *,
    by: str,
) -> None:
    """Cancel ``row``'s open request on HITL.sh (its quota refunded) and decide the row
    ``cancelled`` with ``reason``: nothing will ever wait for its answer, so no reviewer
    should spend time on it. Logged at WARNING. A cancel that fails (the reviewer answered
    meanwhile, or HITL.sh is out of reach) decides nothing: the row keeps waiting for the
    truth, which the resolver records and reports."""
    assert row.request_id is not None
    try:
        result = cancel(row.request_id)
        refunded = result.refund_info is not None
    except APIError as err:
        log.warning(
            "could not cancel a superseded request request_id=%s error=%s; its answer, if "
            "any, is recorded and reported by the dispatcher",
            row.request_id,
            type(err).__name__,
        )
        return
    decision = Decision(
        request_id=row.request_id,
        status="cancelled",
        outcome="cancelled",
        reason=reason,
        response_type=row.payload.get("response_type"),
    )
    ledger.record_decision(row.request_id, decision.model_dump(mode="json"), now=clock())
    log.warning(
        "superseded an open review request_id=%s key=%s by key=%s refunded=%s",
        row.request_id,
        row.key,
        by,
        refunded,
    )


def _supersede(
    target: CreateTarget,
    cancel: Callable[[str], CancelResult],
    owner: ReviewRecord,
    by: ReviewRecord,
) -> None:
    """A newer run asks a different question at this gate: cancel the open one, visibly."""
    current = _await_created(target, owner)
    if current is None or current.request_id is None:
        return
    if current.state == "pending":
        retire_request(
            target.ledger,
            target.clock,
            cancel,
            current,
            "Superseded: a newer run of the same thread asked a different question at this "
            "gate; this request was cancelled and is not approved.",
            by=by.key,
        )
    else:
        log.warning(
            "a newer run of the thread asks a different question; the answer to "
            "request_id=%s (state=%s) will not be used by it",
            current.request_id,
            current.state,
        )


async def aensure_request(
    target: CreateTarget,
    client: HITLClient | AsyncHITLClient,
    key: str,
    spec: ReviewSpec,
    *,
    thread_id: str | None = None,
    checkpoint_ns: str | None = None,
    defer_seconds: float | None = None,
) -> ReviewRecord:
    """Async twin of :func:`ensure_request` (a sync client runs in a worker thread)."""
    from .._client import HITLClient

    if isinstance(client, HITLClient):
        sync_client = client
        return await asyncio.to_thread(
            lambda: ensure_request(
                target,
                sync_client,
                key,
                spec,
                thread_id=thread_id,
                checkpoint_ns=checkpoint_ns,
                defer_seconds=defer_seconds,
            )
        )
    mine, earlier = _TURNS.take(key)
    try:
        if earlier is not None:
            # The caller before may be a coroutine of this very loop: wait without blocking it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(earlier)), _TURN_WAIT)
        return await _aensure(target, client, key, spec, thread_id, checkpoint_ns, defer_seconds)
    finally:
        _TURNS.end(key, mine)


async def _aensure(
    target: CreateTarget,
    client: AsyncHITLClient,
    key: str,
    spec: ReviewSpec,
    thread_id: str | None,
    checkpoint_ns: str | None,
    defer_seconds: float | None,
) -> ReviewRecord:
    """:func:`aensure_request` with an async client, in this key's turn."""
    ledger = target.ledger
    row, inserted = await asyncio.to_thread(_intent, target, key, spec, thread_id, checkpoint_ns)
    shared = row if row.key != key else None  # the concurrent run's row this run reuses
    if shared is None and inserted and thread_id is not None and checkpoint_ns is not None:
        loop = asyncio.get_running_loop()
        async_client = client

        def cancel(request_id: str) -> CancelResult:
            # join_slot runs in a worker thread; the async client belongs to this loop.
            coro = async_client.requests.cancel(request_id)
            return asyncio.run_coroutine_threadsafe(coro, loop).result()

        shared = await asyncio.to_thread(join_slot, target, cancel, row)
    if shared is not None:
        return shared
    if row.state != "intent" or _deferred(target, row, inserted, defer_seconds):
        return row
    checkpoint("gate.after_intent")
    if not inserted:
        found = await _areconcile(target, client, key, row.created_at)
        if found is not None:
            return await ledger.amark_created(
                key, found.id, now=target.clock(), deadline=_request_deadline(found)
            )
    url, _ = target.callback_for(key)
    checkpoint("gate.before_create")
    kwargs: dict[str, Any] = spec.create_kwargs(key, url)
    try:
        if target.workflow is None:
            created = await client.requests.create(target.loop_id or "", **kwargs)
        else:
            body = target.trigger_body(kwargs)
            created = target.created(await client.workflows.trigger(target.workflow, body))
    except Exception as err:
        if not _must_settle(key, thread_id, err):
            await asyncio.to_thread(_on_create_error, ledger, key, err)
            raise
        return await _asettle(target, client, key, err, row.created_at)
    checkpoint("gate.after_create")
    now = target.clock()
    row = await ledger.amark_created(
        key, created.request_id, now=now, deadline=_deadline(created, spec, now)
    )
    checkpoint("gate.after_mark_created")
    return row


async def _asettle(
    target: CreateTarget, client: AsyncHITLClient, key: str, err: Exception, since: float
) -> ReviewRecord:
    """Async twin of :func:`_settle`."""
    ledger = target.ledger
    try:
        found = await _areconcile(target, client, key, since)
    except AmbiguousCreateError as unknown:
        failure = _unsettled(target, key, err, unknown)
    except BaseException:
        await ledger.adiscard_intent(key)  # no intent outlives its review, whatever broke
        raise
    else:
        if found is not None:
            return await ledger.amark_created(
                key, found.id, now=target.clock(), deadline=_request_deadline(found)
            )
        failure = _unsettled(target, key, err, None)
    await ledger.adiscard_intent(key)
    raise failure from err


async def _areconcile(
    target: CreateTarget, client: AsyncHITLClient, key: str, since: float
) -> Request | None:
    """Async twin of :func:`_reconcile`: the same :class:`_Scan`, awaited IO."""
    scan = _Scan(target, client, key, since)
    offset: int | None = 0
    while offset is not None:
        scan.spend()
        try:
            with scan.metered():
                page = await client.requests.list(
                    **target.listing(), limit=_PAGE, offset=offset, sort="created_at_desc"
                )
        except APIError as err:
            raise scan.failed(err) from err
        for request in page.requests:
            if not scan.admit(request):
                return None
            if request.context is None:  # the list omitted context: read the request itself
                scan.spend()
                try:
                    with scan.metered():
                        request = await client.requests.get(request.id)
                except APIError as err:
                    raise scan.failed(err) from err
            if scan.found(request):
                return request
            scan.check_bound()
        offset = scan.next_offset(page, offset)
    return None
