"""WebhookReceiver: a pure ASGI app for ``POST {path}/{token}`` callbacks.

The callback body is a doorbell, never the decision (HITL.sh signs nothing it sends to a
``callback_url``). The receiver only learns *which* request changed, checks the URL's capability
token against the ledger row in constant time, answers ``202`` at once, and then (after the
response is sent) asks the resolver, which GETs the request with our key. Bad input of any kind
gets a 4xx and changes nothing; nothing here answers 500.

Accepted bodies (every documented shape): ``{"request_id": ...}``, ``{"data": {"request_id":
...}}`` and ``{"data": {"request": {"id": ...}}}``, with ``event`` and/or ``status`` or neither.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from ._tokens import token_matches

if TYPE_CHECKING:
    from ..ledger import Ledger
    from ._resolver import Resolver

__all__ = ["MAX_BODY_BYTES", "WebhookReceiver", "extract_request_id"]

log = logging.getLogger("hitl_agent.dispatch")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY_BYTES = 64 * 1024
_MAX_ID = 200
_MAX_TOKEN = 256


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
        if isinstance(value, str) and 0 < len(value) <= _MAX_ID:
            return value
    return None


class _Reject(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class WebhookReceiver:
    """The callback endpoint; mount it anywhere (it only answers under ``path``).

    Args:
        ledger: where the rows and token hashes are.
        resolver: the shared resolve path, run after the response is sent.
        path: the callback path prefix, e.g. ``/hitl`` (the URL path of the keeper's
            ``callback_url``).
        lifespan: optional async context callbacks run on ASGI lifespan startup/shutdown.
    """

    def __init__(
        self,
        *,
        ledger: Ledger,
        resolver: Resolver,
        path: str = "/hitl",
        on_startup: Callable[[], Awaitable[None]] | None = None,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.ledger = ledger
        self.resolver = resolver
        self.path = "/" + path.strip("/") if path.strip("/") else ""
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown
        self.accepted = 0
        self.rejected = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            request_id = await self._authenticate(scope, receive)
        except _Reject as reject:
            self.rejected += 1
            await _respond(send, reject.status, {"error": True, "msg": reject.message})
            return
        self.accepted += 1
        await _respond(send, 202, {"error": False, "msg": "accepted"})
        # The response is complete; the resolve runs now, like a Starlette BackgroundTask.
        # A doorbell is coalesced per request (issue 8 H3): inside its gap it costs no API
        # call (a decided row still resumes at once) and the next sweep looks first.
        try:
            if self.resolver.budget.admit_doorbell(request_id):
                await self.resolver.aresolve(request_id)
            else:
                await self.resolver.adeliver(request_id)
        except Exception:
            log.exception("resolve after callback failed request_id=%s", request_id)

    async def _authenticate(self, scope: Scope, receive: Receive) -> str:
        path: str = scope.get("path", "")
        prefix = self.path + "/"
        if not path.startswith(prefix):
            raise _Reject(404, "not found")
        token = path[len(prefix) :]
        if not token or "/" in token or len(token) > _MAX_TOKEN:
            raise _Reject(404, "not found")
        if scope.get("method") != "POST":
            raise _Reject(405, "method not allowed")
        raw = await _read_body(scope, receive)
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            raise _Reject(400, "body is not JSON") from None
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
            raise _Reject(404, "unknown request or token")
        return request_id

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
                raise _Reject(413, "body too large")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Reject(400, "client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _Reject(413, "body too large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
