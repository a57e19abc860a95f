"""Create a gate's HITL request at most once: intent row, reconcile, POST, mark created.

The order is the whole point (invariant 1)::

    record_intent(key)            durable before anything is sent
    row exists past intent?   ──► reuse it (replayed node, second call)
    unfinished intent?        ──► reconcile: list the loop's recent requests, match the key
                                  stamped in context; found → mark_created, done
    POST create
      2xx                     ──► mark_created(request_id, deadline)
      definite refusal (4xx)  ──► discard_intent, raise
      anything ambiguous      ──► keep the intent, raise (the next call reconciles first)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._exceptions import APIStatusError, ConfigError
from ..dispatch._hooks import checkpoint
from ..dispatch._tokens import derive_token, token_hash
from ..models.requests import CreatedRequest, Request
from ._errors import ReviewMismatchError
from ._spec import CONTEXT_KEY, ReviewSpec

if TYPE_CHECKING:
    from .._client import AsyncHITLClient, HITLClient
    from ..ledger import Ledger, ReviewRecord

__all__ = ["CreateTarget", "aensure_request", "ensure_request"]

log = logging.getLogger("hitl_agent.gate")

# How far back (seconds) reconciliation looks before the intent was written: covers clock
# skew between us and HITL.sh.
_RECONCILE_SKEW = 300.0


@dataclass(frozen=True)
class CreateTarget:
    """Where and how a gate creates requests (shared by every review of one Gatekeeper)."""

    ledger: Ledger
    loop_id: str
    callback_url: str | None
    callback_secret: str | None
    clock: Callable[[], float] = time.time
    reconcile_limit: int = 300

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
    return (
        isinstance(err, APIStatusError) and 400 <= err.status_code < 500 and err.status_code != 408
    )


def _intent(
    target: CreateTarget, key: str, spec: ReviewSpec, thread_id: str | None, ns: str | None
) -> tuple[ReviewRecord, bool]:
    # A replayed node (every resume re-runs it) finds its row with a read; only a first
    # review takes the write lock to insert.
    existing = target.ledger.get(key)
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


def _too_old(request: Request, since: float) -> bool:
    # Lists come newest first: anything created well before the intent cannot be ours.
    created = request.created_at
    return created is not None and created.timestamp() < since - _RECONCILE_SKEW


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
) -> ReviewRecord:
    """Return the gate's row with a request id, creating the request only if it never was."""
    row, inserted = _intent(target, key, spec, thread_id, checkpoint_ns)
    if row.state != "intent":
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
        created = client.requests.create(target.loop_id, **spec.create_kwargs(key, url))
    except Exception as err:
        _on_create_error(target.ledger, key, err)
        raise
    checkpoint("gate.after_create")
    now = target.clock()
    row = target.ledger.mark_created(
        key, created.request_id, now=now, deadline=_deadline(created, spec, now)
    )
    checkpoint("gate.after_mark_created")
    return row


def _reconcile(target: CreateTarget, client: HITLClient, key: str, since: float) -> Request | None:
    requests = client.requests.iter(loop_id=target.loop_id, sort="created_at_desc")
    for seen, request in enumerate(requests, start=1):
        if _too_old(request, since):
            break
        if request.context is None:  # the list omitted context: read the request itself
            request = client.requests.get(request.id)
        if _matches(request, key):
            log.info("reconciled key=%s request_id=%s", key, request.id)
            return request
        if seen >= target.reconcile_limit:
            break
    return None


def _on_create_error(ledger: Ledger, key: str, err: Exception) -> None:
    if _is_definite_refusal(err):
        ledger.discard_intent(key)
    else:
        log.warning(
            "create outcome unknown key=%s error=%s; the intent is kept and the next call "
            "reconciles before creating again",
            key,
            type(err).__name__,
        )


async def aensure_request(
    target: CreateTarget,
    client: HITLClient | AsyncHITLClient,
    key: str,
    spec: ReviewSpec,
    *,
    thread_id: str | None = None,
    checkpoint_ns: str | None = None,
) -> ReviewRecord:
    """Async twin of :func:`ensure_request` (a sync client runs in a worker thread)."""
    from .._client import HITLClient

    if isinstance(client, HITLClient):
        sync_client = client
        return await asyncio.to_thread(
            lambda: ensure_request(
                target, sync_client, key, spec, thread_id=thread_id, checkpoint_ns=checkpoint_ns
            )
        )
    ledger = target.ledger
    row, inserted = await asyncio.to_thread(_intent, target, key, spec, thread_id, checkpoint_ns)
    if row.state != "intent":
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
        created = await client.requests.create(target.loop_id, **kwargs)
    except Exception as err:
        await asyncio.to_thread(_on_create_error, ledger, key, err)
        raise
    checkpoint("gate.after_create")
    now = target.clock()
    row = await ledger.amark_created(
        key, created.request_id, now=now, deadline=_deadline(created, spec, now)
    )
    checkpoint("gate.after_mark_created")
    return row


async def _areconcile(
    target: CreateTarget, client: AsyncHITLClient, key: str, since: float
) -> Request | None:
    seen = 0
    async for request in client.requests.iter(loop_id=target.loop_id, sort="created_at_desc"):
        seen += 1
        if _too_old(request, since):
            break
        if request.context is None:
            request = await client.requests.get(request.id)
        if _matches(request, key):
            return request
        if seen >= target.reconcile_limit:
            break
    return None
