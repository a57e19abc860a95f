"""The callback outbox: rows written in the same transaction as the state change they report,
POSTed afterwards by the scheduler, retried with exponential backoff.

Delivery is at least once. Each row is leased before its POST, so two tickers (the background
task and a test calling ``tick()``) never send the same row at once; a crash mid-POST lets the
lease lapse and the row is sent again. ``UNIQUE (request_id, event)`` keeps it to one row per
finished request. Errors are recorded by type and status only: a callback URL may carry a
capability token, so it never reaches a log line or the ``last_error`` column.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from ._documents import REQUEST_SELECT, callback_payload
from ._signing import SIGNATURE_HEADER, sign
from ._storage import Storage
from ._util import dumps

__all__ = ["MAX_ATTEMPTS", "CallbackDeliverer", "enqueue_callback"]

log = logging.getLogger("hitl_agent.server")


class _RedactCallbackURLs(logging.Filter):
    """Masks the URLs being delivered to in httpx's own request log line.

    httpx logs every request's full URL at INFO, and a callback URL carries its receiver's
    capability token; whoever turns INFO logging on must not collect tokens.
    """

    def __init__(self) -> None:
        super().__init__()
        self.urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.urls and isinstance(record.args, tuple):
            record.args = tuple(
                "<callback url>" if str(arg) in self.urls else arg for arg in record.args
            )
        return True


_REDACT = _RedactCallbackURLs()
logging.getLogger("httpx").addFilter(_REDACT)

MAX_ATTEMPTS = 4
"""The first POST plus the 3 documented retries."""
_LEASE_SECONDS = 60.0
_BATCH = 50
_USER_AGENT = "hitl-agent-local-server/0.1.0"


def enqueue_callback(conn: sqlite3.Connection, now: float, request_id: str) -> None:
    """Queue the callback of a request that just finished, when it has a ``callback_url``."""
    row = conn.execute(REQUEST_SELECT + " WHERE r.id = ?", (request_id,)).fetchone()
    url = json.loads(row["body"]).get("callback_url")
    if not url:
        return
    payload = callback_payload(row)
    conn.execute(
        "INSERT OR IGNORE INTO outbox (request_id, event, url, payload, next_attempt_at, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (request_id, payload["event"], url, dumps(payload), now, now),
    )


@dataclass(frozen=True)
class _Item:
    id: int
    request_id: str
    event: str
    url: str
    payload: str


def _lease_due(conn: sqlite3.Connection, now: float) -> list[_Item]:
    rows = conn.execute(
        "SELECT id, request_id, event, url, payload FROM outbox WHERE state = 'pending' "
        "AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until <= ?) "
        "ORDER BY next_attempt_at, id LIMIT ?",
        (now, now, _BATCH),
    ).fetchall()
    for row in rows:
        conn.execute(
            "UPDATE outbox SET lease_until = ? WHERE id = ?", (now + _LEASE_SECONDS, row["id"])
        )
    return [_Item(r["id"], r["request_id"], r["event"], r["url"], r["payload"]) for r in rows]


def _retryable(status: int) -> bool:
    return status >= 500 or status in (408, 429)


class CallbackDeliverer:
    """Sends due outbox rows.

    Args:
        storage: the database.
        clock: epoch seconds.
        signing_secret: when set, each POST carries ``X-HITL-Signature-256``.
        client: what POSTs go through; None opens a short-lived client per batch.
        base_delay: seconds before the first retry; doubles for each further retry.
    """

    def __init__(
        self,
        storage: Storage,
        clock: Callable[[], float],
        *,
        signing_secret: str | None,
        client: httpx.AsyncClient | None,
        base_delay: float,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._secret = signing_secret
        self._client = client
        self._base_delay = base_delay

    async def deliver_due(self) -> int:
        """POST every due row once; return how many were delivered."""
        with self._storage.transaction() as conn:
            items = _lease_due(conn, self._clock())
        if not items:
            return 0
        if self._client is not None:
            outcomes = await asyncio.gather(*(self._post(self._client, i) for i in items))
        else:
            async with httpx.AsyncClient(timeout=10.0) as client:
                outcomes = await asyncio.gather(*(self._post(client, i) for i in items))
        delivered = 0
        with self._storage.transaction() as conn:
            for item, (ok, retry, error) in zip(items, outcomes, strict=True):
                delivered += ok
                self._record(conn, item, ok=ok, retry=retry, error=error)
        return delivered

    async def _post(self, client: httpx.AsyncClient, item: _Item) -> tuple[bool, bool, str]:
        body = item.payload.encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": _USER_AGENT,
            "X-HITL-Event": item.event,
            "X-HITL-Delivery": str(item.id),
        }
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(body, self._secret)
        _REDACT.urls.add(item.url)
        try:
            response = await client.post(item.url, content=body, headers=headers)
        except Exception as err:  # any failure to deliver is a retry, never a crash
            return False, True, type(err).__name__
        finally:
            _REDACT.urls.discard(item.url)
        if 200 <= response.status_code < 300:
            return True, False, ""
        return False, _retryable(response.status_code), f"HTTP {response.status_code}"

    def _record(
        self, conn: sqlite3.Connection, item: _Item, *, ok: bool, retry: bool, error: str
    ) -> None:
        now = self._clock()
        if ok:
            conn.execute(
                "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, "
                "delivered_at = ?, lease_until = NULL, last_error = NULL WHERE id = ?",
                (now, item.id),
            )
            return
        attempts = (
            conn.execute("SELECT attempts FROM outbox WHERE id = ?", (item.id,)).fetchone()[0] + 1
        )
        if retry and attempts < MAX_ATTEMPTS:
            delay = self._base_delay * 2 ** (attempts - 1)
            conn.execute(
                "UPDATE outbox SET attempts = ?, next_attempt_at = ?, lease_until = NULL, "
                "last_error = ? WHERE id = ?",
                (attempts, now + delay, error, item.id),
            )
            log.info(
                "callback %s for request %s failed (%s); retry %d in %.1fs",
                item.event, item.request_id, error, attempts, delay,
            )  # fmt: skip
            return
        conn.execute(
            "UPDATE outbox SET state = 'failed', attempts = ?, lease_until = NULL, "
            "last_error = ? WHERE id = ?",
            (attempts, error, item.id),
        )
        log.warning(
            "callback %s for request %s given up after %d attempts (%s)",
            item.event, item.request_id, attempts, error,
        )  # fmt: skip
