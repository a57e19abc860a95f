"""The callback outbox: rows written in the same transaction as the state change they report,
POSTed afterwards by the scheduler, retried with exponential backoff.

Delivery is at least once. Each row is leased before its POST, so two tickers (the background
task and a test calling ``tick()``) never send the same row at once; a crash mid-POST lets the
lease lapse and the row is sent again. ``UNIQUE (request_id, event)`` keeps it to one row per
finished request. Each POST runs as its own task with its own timeout and records its own
outcome, so one slow receiver delays no other callback and no scheduler pass. Targets are
checked by the SSRF policy (``_url_policy``) again at delivery. Errors are recorded by type and
status only: a callback URL may carry a capability token, so it never reaches a log line or
the ``last_error`` column.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2

from ..models.response_types import option_value
from ._callback_transport import PinnedCallbackTransport
from ._documents import REQUEST_SELECT, callback_payload
from ._signing import SIGNATURE_HEADER, sign
from ._storage import Storage
from ._url_policy import CallbackPolicy, RefusedCallback
from ._util import dumps, iso

__all__ = [
    "LEGACY_SIGNATURE_HEADER",
    "MAX_ATTEMPTS",
    "CallbackDeliverer",
    "enqueue_callback",
    "wrap_response_data",
]

log = logging.getLogger("hitl_agent.server")

_DELIVERING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "hitl_callback_delivery", default=False
)


_URLS = (httpx2.URL, httpx.URL)


class _RedactCallbackURLs(logging.Filter):
    """Masks every URL in log records made while a callback is being delivered.

    httpx2 (and httpx) log each request's URL at INFO, and a callback URL carries its receiver's
    capability token. httpx normalizes the URL first (``HTTP://`` -> ``http://``, upper-case
    host, ``:80`` dropped, spaces and non-ASCII percent-encoded), so matching the text we sent
    misses; instead each delivery runs in a context flagged here, and any URL-like argument
    of a record made inside it is replaced.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if _DELIVERING.get() and record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(
                "<callback url>" if isinstance(arg, _URLS) or _looks_like_url(arg) else arg
                for arg in args
            )
        return True


def _looks_like_url(value: object) -> bool:
    return isinstance(value, str | bytes) and "://" in str(value)


_REDACT = _RedactCallbackURLs()
for _name in ("httpx2", "httpcore2", "httpx", "httpcore"):
    logging.getLogger(_name).addFilter(_REDACT)

MAX_ATTEMPTS = 4
"""The first POST plus the 3 documented retries."""
_LEASE_SECONDS = 60.0
_BATCH = 50
_USER_AGENT = "hitl-agent-local-server/0.1.0"
_REFUSED = "refused by the callback URL policy"


LEGACY_SIGNATURE_HEADER = "X-HITL-Signature"
"""The signature header of ``webhooks/global.mdx``: the same HMAC, hex without a prefix."""

_PLAIN_KEY = "_plain_response_data"
"""Kept in the stored payload beside the wrapped ``response_data``, never sent: the plain
value a deliverer with ``plain_callbacks`` sends instead."""


def _labels(config: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for option in config.get("options") or []:
        if isinstance(option, str):
            labels.setdefault(option, option)
            labels.setdefault(option_value(option), option)
        elif isinstance(option, dict) and isinstance(option.get("value"), str):
            labels[option["value"]] = str(option.get("label") or option["value"])
    return labels


def wrap_response_data(response_type: str, config: dict[str, Any], value: Any) -> Any:
    """A plain answer in the wrapped shape of HITL.sh's webhooks page and per-type pages
    (reference hitl-api.md §7.2 shape B): ``{"selected_value", "selected_label"}``,
    ``{"selected_values", "selected_labels"}``, ``{"rating"}``, ``{"number",
    "formatted_value"}``, ``{"boolean", "boolean_label"}``. Text stays a string and
    editable text is already ``{"revised_text", "was_edited"}``, as on those pages."""
    if value is None:
        return None
    if response_type == "single_select" and isinstance(value, str):
        return {"selected_value": value, "selected_label": _labels(config).get(value, value)}
    if response_type == "multi_select" and isinstance(value, list):
        labels = _labels(config)
        return {
            "selected_values": value,
            "selected_labels": [labels.get(item, item) for item in value],
        }
    if response_type == "rating" and not isinstance(value, bool | str | dict | list):
        wrapped: dict[str, Any] = {"rating": value}
        names = config.get("labels")
        if isinstance(names, dict):
            key = f"{value:g}" if isinstance(value, float) else str(value)
            if isinstance(names.get(key), str):
                wrapped["rating_label"] = names[key]
        return wrapped
    if response_type == "number" and not isinstance(value, bool | str | dict | list):
        places = config.get("decimal_places", 2)
        places = places if isinstance(places, int) and 0 <= places <= 10 else 2
        prefix, suffix = config.get("prefix") or "", config.get("suffix") or ""
        return {"number": value, "formatted_value": f"{prefix}{value:.{places}f}{suffix}"}
    if response_type == "boolean" and isinstance(value, bool):
        label = config.get("true_label" if value else "false_label")
        return {"boolean": value, "boolean_label": label or ("True" if value else "False")}
    return value


def enqueue_callback(conn: sqlite3.Connection, now: float, request_id: str) -> None:
    """Queue the callback of a request that just finished, when it has a ``callback_url``.

    The stored payload follows HITL.sh's webhooks page (issue 22 W3): ``response_data``
    wrapped (``{"selected_value": ...}``), plus ``response_by_user {id, name, email}`` and
    ``timestamp`` as the Make integration reads them; the plain value is kept beside it
    for a deliverer with ``plain_callbacks``.
    """
    row = conn.execute(REQUEST_SELECT + " WHERE r.id = ?", (request_id,)).fetchone()
    body = json.loads(row["body"])
    url = body.get("callback_url")
    if not url:
        return
    payload = callback_payload(row)
    responder = payload["response_by"]
    payload["response_by_user"] = (
        None
        if responder is None
        else {"id": responder["user_id"], "name": responder["name"], "email": responder["email"]}
    )
    payload["timestamp"] = iso(row["updated_at"])
    plain = payload["response_data"]
    config = body.get("response_config")
    payload["response_data"] = wrap_response_data(
        str(body.get("response_type")), config if isinstance(config, dict) else {}, plain
    )
    payload[_PLAIN_KEY] = plain
    # What a receiver needs to decide from a signed body without a GET (issue 22 W6, opt-in
    # on the receiver): the form and the default. HITL.sh's payload does not carry them.
    payload["response_type"] = body.get("response_type")
    payload["response_config"] = config if isinstance(config, dict) else None
    payload["default_response"] = body.get("default_response")
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


def _lease_due(
    conn: sqlite3.Connection, now: float, lease: float, skip: Iterable[int]
) -> list[_Item]:
    busy = set(skip)
    rows = conn.execute(
        "SELECT id, request_id, event, url, payload FROM outbox WHERE state = 'pending' "
        "AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until <= ?) "
        "ORDER BY next_attempt_at, id LIMIT ?",
        (now, now, _BATCH + len(busy)),
    ).fetchall()
    rows = [row for row in rows if row["id"] not in busy][:_BATCH]
    for row in rows:
        conn.execute("UPDATE outbox SET lease_until = ? WHERE id = ?", (now + lease, row["id"]))
    return [_Item(r["id"], r["request_id"], r["event"], r["url"], r["payload"]) for r in rows]


def _retryable(status: int) -> bool:
    return status >= 500 or status in (408, 429)


class CallbackDeliverer:
    """Sends due outbox rows, each as its own task with its own timeout.

    Args:
        storage: the database.
        clock: epoch seconds.
        signing_secret: when set, each POST carries ``X-HITL-Signature-256``.
        plain_callbacks: send ``response_data`` as the plain value (``"approve"``), the shape
            of HITL.sh's get-request examples, Make and Zapier, instead of the webhooks
            page's wrapped ``{"selected_value": "approve", ...}`` (the default).
        client: what POSTs go through, used as is (tests pass one over
            ``httpx.MockTransport``); None for the deliverer's own shared client, whose
            transport resolves each host and connects only to addresses ``policy`` allows.
        base_delay: seconds before the first retry; doubles for each further retry.
        timeout: seconds one delivery may take, connect to response, before it counts as a
            failed attempt.
        policy: the SSRF policy (checked at create and again at delivery).
    """

    def __init__(
        self,
        storage: Storage,
        clock: Callable[[], float],
        *,
        signing_secret: str | None,
        client: httpx2.AsyncClient | httpx.AsyncClient | None,
        base_delay: float,
        timeout: float = 10.0,
        policy: CallbackPolicy | None = None,
        plain_callbacks: bool = False,
    ) -> None:
        if timeout <= 0:
            raise ValueError("callback timeout: must be positive. Fix: pass e.g. 10")
        self._storage = storage
        self._clock = clock
        self._secret = signing_secret
        self._client = client
        self._base_delay = base_delay
        self.timeout = timeout
        self.policy = policy or CallbackPolicy()
        self.plain_callbacks = plain_callbacks
        self._own: httpx2.AsyncClient | None = None
        self._own_loop: asyncio.AbstractEventLoop | None = None
        self._in_flight: dict[int, asyncio.Task[bool]] = {}

    def start_due(self) -> list[asyncio.Task[bool]]:
        """Start one delivery task per due row not already in flight; return the new tasks.

        Returns at once: the caller (a scheduler pass) never waits on a receiver.
        """
        # A lease outlives the delivery's own timeout, so no other ticker re-sends it meanwhile.
        lease = max(_LEASE_SECONDS, self.timeout * 2)
        with self._storage.transaction() as conn:
            items = _lease_due(conn, self._clock(), lease, self._in_flight)
        tasks = []
        for item in items:
            task = asyncio.create_task(self._deliver(item), name=f"hitl-callback-{item.id}")
            self._in_flight[item.id] = task
            task.add_done_callback(self._finished(item.id))
            tasks.append(task)
        return tasks

    def _finished(self, outbox_id: int) -> Callable[[asyncio.Task[bool]], None]:
        def forget(task: asyncio.Task[bool]) -> None:
            self._in_flight.pop(outbox_id, None)

        return forget

    async def deliver_due(self) -> int:
        """Start every due row's delivery and wait for those; return how many were delivered."""
        tasks = self.start_due()
        if not tasks:
            return 0
        return sum(await asyncio.gather(*tasks))

    async def wait_idle(self) -> None:
        """Wait until no delivery is in flight (tests; shutdown)."""
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight.values()), return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel deliveries in flight (their leases lapse: sent again later) and close the
        shared client."""
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        own, self._own, self._own_loop = self._own, None, None
        if own is not None:
            await own.aclose()

    def _http(self) -> httpx2.AsyncClient | httpx.AsyncClient:
        if self._client is not None:
            return self._client
        loop = asyncio.get_running_loop()
        if self._own is None or self._own_loop is not loop:
            # A client's pool belongs to the loop it was first used on; a scheduler on a new
            # loop (a restarted lifespan, asyncio.run in a script) gets a client of its own.
            self._own = httpx2.AsyncClient(
                transport=PinnedCallbackTransport(self.policy),
                timeout=self.timeout,
                follow_redirects=False,
                trust_env=False,
            )
            self._own_loop = loop
        return self._own

    async def _deliver(self, item: _Item) -> bool:
        outcome = await self._post(item)
        with self._storage.transaction() as conn:
            self._record(conn, item, ok=outcome[0], retry=outcome[1], error=outcome[2])
        return outcome[0]

    def _body(self, stored: str) -> bytes:
        """The bytes to POST (and sign): the stored payload in the configured shape."""
        payload = json.loads(stored)
        if isinstance(payload, dict) and _PLAIN_KEY in payload:
            plain = payload.pop(_PLAIN_KEY)
            if self.plain_callbacks:
                payload["response_data"] = plain
        return dumps(payload).encode("utf-8")

    async def _post(self, item: _Item) -> tuple[bool, bool, str]:
        try:
            self.policy.check_url(item.url)
        except RefusedCallback:
            return False, False, _REFUSED
        body = self._body(item.payload)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": _USER_AGENT,
            "X-HITL-Event": item.event,
            "X-HITL-Delivery": str(item.id),
        }
        if self._secret:
            signature = sign(body, self._secret)
            headers[SIGNATURE_HEADER] = signature
            # webhooks/global.mdx names the header X-HITL-Signature (plain hex): send both,
            # so a receiver written against either page verifies (issue 22 W6).
            headers[LEGACY_SIGNATURE_HEADER] = signature.removeprefix("sha256=")
        _DELIVERING.set(True)  # this task's own context: see _RedactCallbackURLs
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._http().post(item.url, content=body, headers=headers)
        except RefusedCallback:
            return False, False, _REFUSED
        except Exception as err:  # any failure to deliver is a retry, never a crash
            return False, True, type(err).__name__
        finally:
            _DELIVERING.set(False)
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
