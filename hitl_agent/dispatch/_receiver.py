r"""WebhookReceiver: a pure ASGI app for ``POST {path}/{token}`` callbacks.

The callback body is a doorbell, never the decision (HITL.sh signs nothing it sends to a
``callback_url``). The receiver only learns *which* request changed, checks the URL's capability
token against the ledger row in constant time, answers ``202`` at once, and then (after the
response is sent) asks the resolver, which GETs the request with our key. A body that says the
request finished is GET and recorded *before* the ``202`` (``503`` when a retry may succeed),
so a worker killed in between never loses an answer the sender thinks delivered. Bad input of
any kind gets a 4xx and changes nothing; nothing here answers 500.

With a ``signing_secret`` the receiver also requires a valid ``X-HITL-Signature-256`` (or
``X-HITL-Signature``) HMAC-SHA256 of the raw body, checked in constant time before the body
is parsed, and a body ``timestamp`` within ``replay_window`` seconds (401 otherwise). That
authenticates the doorbell; the decision still comes from the GET, unless
``trust_signed_bodies`` is on (off by default) and the body is complete
(:func:`trusted_request`): then the body is the decision and no GET is made.

Accepted bodies (every documented shape): ``{"request_id": ...}``, ``{"data": {"request_id":
...}}`` and ``{"data": {"request": {"id": ...}}}``, with ``event`` and/or ``status`` or neither.

Limits, all answered before the ledger is read: a body over :data:`MAX_BODY_BYTES` gets 413, a
body not complete within ``body_timeout`` seconds gets 408 (slow clients cannot hold
connections open), JSON nested deeper than :data:`MAX_JSON_DEPTH` gets 400, and a request id
must match :data:`REQUEST_ID_PATTERN` in full (``\Z``: no trailing newline).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .._callback_paths import NotFoundLog, normalize_path, token_in
from .._exceptions import APIConnectionError, InternalServerError, RateLimitError
from .._hooks import checkpoint
from .._json_limits import JSONTooDeep, loads_bounded
from .._tokens import token_matches
from ..models.requests import STATUS_ALIASES, TERMINAL_STATUSES, Request
from ._redact import install_access_log_redaction

if TYPE_CHECKING:
    from ..ledger import Ledger
    from ._resolver import Resolver

__all__ = [
    "DEFAULT_REPLAY_WINDOW",
    "MAX_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "REQUEST_ID_PATTERN",
    "SIGNATURE_HEADERS",
    "WebhookReceiver",
    "claims_final",
    "extract_request_id",
    "signature_valid",
    "signed_timestamp",
    "trusted_request",
]

log = logging.getLogger("hitl_agent.dispatch")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 16
"""Callback bodies are two or three levels deep; anything much deeper is not a callback."""
REQUEST_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}\Z"
"""What a request id may look like (HITL.sh's are 24 hex characters)."""
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)
_MAX_TOKEN = 256


_FINAL_EVENTS = frozenset({"request.completed", "request.timeout", "request.cancelled"})
_FINAL_MEMORY = 10_000
"""How many request ids the receiver remembers as having had their answer callback fetched."""


def claims_final(body: Any) -> bool:
    """Does a callback body say its request is finished (answered, timed out, cancelled)?

    Only a hint: the decision still comes from the GET (or a verified signature). Read from
    ``status`` / ``event`` at the top, under ``data`` or under ``data.request``, in any
    spelling :data:`~hitl_agent.models.STATUS_ALIASES` knows.
    """
    if not isinstance(body, dict):
        return False
    places: list[Any] = [body]
    data = body.get("data")
    if isinstance(data, dict):
        places.append(data)
        if isinstance(data.get("request"), dict):
            places.append(data["request"])
    for place in places:
        status, event = place.get("status"), place.get("event")
        if isinstance(status, str):
            spelled = status.strip().lower()
            if STATUS_ALIASES.get(spelled, spelled) in TERMINAL_STATUSES:
                return True
        if isinstance(event, str) and event.strip().lower() in _FINAL_EVENTS:
            return True
    return False


def extract_request_id(body: Any) -> str | None:
    """The request id in any documented callback shape, or None."""
    if not isinstance(body, dict):
        return None
    candidates: list[Any] = [body.get("request_id")]
    data = body.get("data")
    if isinstance(data, dict):
        candidates.append(data.get("request_id"))
        request = data.get("request")
        if isinstance(request, dict):
            candidates += [request.get("id"), request.get("request_id")]
    for value in candidates:
        if isinstance(value, str) and _REQUEST_ID.match(value):
            return value
    return None


SIGNATURE_HEADERS = ("x-hitl-signature-256", "x-hitl-signature")
"""Where HITL.sh's docs put the signature: ``X-HITL-Signature-256: sha256=<hex>`` (the
webhooks page) and ``X-HITL-Signature: <hex>`` (``webhooks/global.mdx``); both accepted,
with or without the ``sha256=`` prefix."""
DEFAULT_REPLAY_WINDOW = 300.0
"""Seconds a signed body's ``timestamp`` may be from the receiver's clock, either way."""


def signature_valid(raw: bytes, headers: list[tuple[bytes, bytes]], secret: str) -> bool:
    """True when one of the signature headers is the HMAC-SHA256 of ``raw`` under ``secret``.

    Constant-time comparison of the hex digests; a missing, malformed or empty header, or an
    empty secret, never verifies.
    """
    if not secret:
        return False
    expected = hmac.new(secret.encode("utf-8"), raw, hashlib.sha256).hexdigest().encode()
    valid = False
    for name, value in headers:
        if name.decode("latin-1").lower() not in SIGNATURE_HEADERS:
            continue
        given = value.strip()
        if given[:7].lower() == b"sha256=":
            given = given[7:]
        # No early exit: every header is compared, each in constant time.
        valid |= hmac.compare_digest(expected, given.lower())
    return valid


def signed_timestamp(body: Any) -> float | None:
    """Epoch seconds of the body's ``timestamp`` (top level or under ``data``: Make's and the
    global webhooks' field; the local server sends it), or None when there is none."""
    if not isinstance(body, dict):
        return None
    values = [body.get("timestamp")]
    if isinstance(body.get("data"), dict):
        values.append(body["data"].get("timestamp"))
    for value in values:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value) if math.isfinite(value) else None
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                return None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.timestamp()
    return None


def trusted_request(body: Any, request_id: str) -> Request | None:
    """The finished request an authenticated callback body describes in full, or None.

    Complete means everything ``Decision.from_request`` reads: a final ``status``, the
    ``response_type``, for a completed request its ``response_data`` (and, for a select, the
    ``response_config`` whose options the answer must be one of), for a timeout its
    ``default_response``. The local server's callbacks carry all of it; HITL.sh's documented
    payload lacks ``response_type``, so its bodies are never complete and take the GET.
    """
    if not isinstance(body, dict):
        return None
    try:
        request = Request.model_validate({**body, "id": request_id})
    except ValueError:  # pydantic's ValidationError included
        return None
    if not request.is_terminal or request.response_type is None:
        return None
    if request.status == "completed":
        if request.response_data is None:
            return None
        options = (request.response_config or {}).get("options")
        if request.response_type in ("single_select", "multi_select") and not options:
            return None
    if request.status == "timeout" and "default_response" not in body:
        return None
    return request


# A GET failure that a retry of the callback may get past (the sender is told 503).
_RETRY_HELPS = (APIConnectionError, InternalServerError, RateLimitError)


class _Reject(Exception):
    def __init__(self, status: int, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close  # the body was not read to its end: the connection is done


class WebhookReceiver:
    """The callback endpoint; mount it anywhere (it only answers under ``path``).

    Args:
        ledger: where the rows and token hashes are.
        resolver: the shared resolve path, run after the response is sent.
        path: the callback path prefix, e.g. ``/hitl`` (the URL path of the keeper's
            ``callback_url``); ``""`` or ``"/"`` for the root (tokens at ``/<token>``).
            Compared in canonical form (:func:`~hitl_agent._callback_paths.normalize_path`).
        lifespan: optional async context callbacks run on ASGI lifespan startup/shutdown.
        body_timeout: seconds the whole body may take to arrive (408 after, connection closed).
        signing_secret: when set, every callback must carry a valid signature
            (:data:`SIGNATURE_HEADERS`, HMAC-SHA256 of the raw body, constant-time compare)
            and a ``timestamp`` within ``replay_window`` seconds of now; others get 401 and
            change nothing. The decision still comes from the GET: a signature
            authenticates the doorbell, it does not make the body the decision.
        replay_window: seconds a signed body's ``timestamp`` may differ from now.
        trust_signed_bodies: off by default. With a ``signing_secret``, a callback whose
            signature verified and whose body is complete (:func:`trusted_request`) is
            decided from the body, without the truth GET (DESIGN invariant 4's documented
            choice). Anything else still takes the GET.
    """

    def __init__(
        self,
        *,
        ledger: Ledger,
        resolver: Resolver,
        path: str = "/hitl",
        on_startup: Callable[[], Awaitable[None]] | None = None,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
        body_timeout: float = 10.0,
        signing_secret: str | None = None,
        replay_window: float = DEFAULT_REPLAY_WINDOW,
        trust_signed_bodies: bool = False,
    ) -> None:
        if body_timeout <= 0:
            raise ValueError("body_timeout: must be positive. Fix: pass e.g. 10")
        if replay_window <= 0:
            raise ValueError("replay_window: must be positive. Fix: pass e.g. 300")
        self.ledger = ledger
        self.resolver = resolver
        self.path = normalize_path(path)
        self._not_found = NotFoundLog(self.path)  # a 404 is a warning in the app's log
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown
        self.body_timeout = body_timeout
        self.signing_secret = signing_secret
        """Settable after construction (``dispatcher.receiver.signing_secret = ...``)."""
        self.replay_window = replay_window
        self.trust_signed_bodies = trust_signed_bodies
        """Settable after construction, like ``signing_secret``; only read with a secret."""
        self.trusted = 0
        """Callbacks decided from their authenticated body, without a GET."""
        self.accepted = 0
        self.rejected = 0
        # Request ids whose first "finished" callback was fetched past the doorbell gap.
        self._final_fetched: OrderedDict[str, None] = OrderedDict()
        # Served under uvicorn's defaults, every access-log line would carry a token.
        install_access_log_redaction(self.path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            request_id, body, verified = await self._authenticate(scope, receive)
        except _Reject as reject:
            self.rejected += 1
            body = {"error": True, "msg": reject.message}
            await _respond(send, reject.status, body, close=reject.close)
            return
        trusted = (
            trusted_request(body, request_id) if verified and self.trust_signed_bodies else None
        )
        # The answer itself: its truth is recorded before the 2xx, so a worker killed between
        # the two leaves the sender retrying (HITL.sh redelivers a failed callback) instead of
        # a lost answer that no sweep looks for (callbacks only).
        if (
            trusted is None
            and claims_final(body)
            and request_id not in self._final_fetched
            and not await self._record_first(request_id)
        ):
            self.rejected += 1
            body = {"error": True, "msg": "could not read the request now; send it again"}
            await _respond(send, 503, body, close=False)
            return
        self.accepted += 1
        await _respond(send, 202, {"error": False, "msg": "accepted"})
        # The response is complete; the resolve runs now, like a Starlette BackgroundTask.
        # A doorbell is coalesced per request (issue 8 H3): inside its gap it costs no API
        # call (a decided row still resumes at once) and the next sweep looks first. A
        # callback that says the request is finished is not a doorbell like the others: the
        # first one per request is fetched at once, even inside a gap opened by an earlier
        # doorbell (issue 21 S7: the real answer's callback waited for the next sweep).
        # Later "finished" claims for the same request are coalesced again, so forged ones
        # cost at most one GET per request.
        try:
            if trusted is not None:
                # Authenticated and complete: decided from the body, no GET (opt-in).
                self.trusted += 1
                await self.resolver.aresolve(request_id, fetched=trusted)
            elif request_id in self._final_fetched and claims_final(body):
                await self.resolver.adeliver(request_id)  # fetched and recorded above
            elif claims_final(body) and self._first_final(request_id):
                await self.resolver.aresolve(request_id)
                row = await self.ledger.aget_by_request_id(request_id)
                if row is not None and row.state == "pending":
                    # Not finished by the GET (a forged claim, or the API read lagging the
                    # callback): the next sweep looks at it first.
                    self.resolver.budget.ring_later(request_id)
            elif self.resolver.budget.admit_doorbell(request_id):
                await self.resolver.aresolve(request_id)
            else:
                await self.resolver.adeliver(request_id)
        except Exception:
            log.exception("resolve after callback failed request_id=%s", request_id)

    async def _record_first(self, request_id: str) -> bool:
        """GET a request whose callback says it finished and record its decision. False only
        when the GET failed in a way a retry may fix (no connection, a 5xx, a 429): the
        sender is then told to send again. Marks the request fetched (:meth:`_first_final`)."""
        row = await self.ledger.aget_by_request_id(request_id)
        if row is None or row.state != "pending":
            return True
        request, error = await asyncio.to_thread(self.resolver.fetch_outcome, request_id)
        checkpoint("resolver.after_fetch")  # the crash matrix's point, as in Resolver._resolve
        if request is None:
            return not isinstance(error, _RETRY_HELPS)
        self._first_final(request_id)
        if not await asyncio.to_thread(self.resolver.record, row, request):
            # Not finished by the GET (a forged claim, or the API read lagging the callback):
            # the next sweep looks at it first.
            self.resolver.budget.ring_later(request_id)
        return True

    def _first_final(self, request_id: str) -> bool:
        if request_id in self._final_fetched:
            return False
        self._final_fetched[request_id] = None
        while len(self._final_fetched) > _FINAL_MEMORY:
            self._final_fetched.popitem(last=False)
        return True

    async def _authenticate(self, scope: Scope, receive: Receive) -> tuple[str, Any, bool]:
        """The request id, the parsed body, and whether a signature verified it."""
        token = token_in(self.path, scope, _MAX_TOKEN)
        if token is None:
            self._not_found("not found")
            raise _Reject(404, "not found")
        if scope.get("method") != "POST":
            raise _Reject(405, "method not allowed")
        try:
            async with asyncio.timeout(self.body_timeout):
                raw = await _read_body(scope, receive)
        except TimeoutError:
            raise _Reject(408, "body not received in time", close=True) from None
        secret = self.signing_secret
        if secret and not signature_valid(raw, list(scope.get("headers") or []), secret):
            raise _Reject(401, "missing or invalid signature")
        try:
            body = loads_bounded(raw, max_depth=MAX_JSON_DEPTH)
        except JSONTooDeep:
            raise _Reject(400, f"body nested deeper than {MAX_JSON_DEPTH} levels") from None
        except ValueError:  # UnicodeDecodeError included
            raise _Reject(400, "body is not JSON") from None
        if secret:
            # Replays of an old signed body (and bodies without a signed time) are refused.
            stamp = signed_timestamp(body)
            if stamp is None:
                raise _Reject(401, "signed body carries no timestamp")
            if abs(self.resolver.clock() - stamp) > self.replay_window:
                raise _Reject(401, "signed body outside the replay window")
        request_id = extract_request_id(body)
        if request_id is None:
            raise _Reject(400, "no request_id in the body")
        try:
            row = await self.ledger.aget_by_request_id(request_id)
        except Exception:
            log.exception("ledger lookup failed")
            raise _Reject(503, "try again later") from None
        # One answer for unknown request and wrong token: no oracle for valid request ids.
        if row is None or not token_matches(token, row.token_hash):
            self._not_found("unknown request or token")
            raise _Reject(404, "unknown request or token")
        return request_id, body, bool(secret)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.on_startup is not None:
                    await self.on_startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.on_shutdown is not None:
                    await self.on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    for name, value in scope.get("headers") or []:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise _Reject(400, "bad content-length") from None
            if declared > MAX_BODY_BYTES:
                raise _Reject(413, f"body larger than {MAX_BODY_BYTES} bytes", close=True)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Reject(400, "client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _Reject(413, f"body larger than {MAX_BODY_BYTES} bytes", close=True)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(send: Send, status: int, body: dict[str, Any], *, close: bool = False) -> None:
    data = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
