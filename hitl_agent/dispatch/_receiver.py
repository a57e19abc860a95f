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
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from .._exceptions import ConfigError
from ._tokens import token_matches

if TYPE_CHECKING:
    from ..ledger import Ledger
    from ._resolver import Resolver

__all__ = [
    "MAX_BODY_BYTES",
    "WebhookReceiver",
    "callback_path_of",
    "canonical_callback_url",
    "check_callback_path",
    "extract_request_id",
    "normalize_path",
]

log = logging.getLogger("hitl_agent.dispatch")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY_BYTES = 64 * 1024
_MAX_ID = 200
_MAX_TOKEN = 256
_SLASHES = re.compile(r"/{2,}")
# One 404 warning per kind per this many seconds: a scanner must not flood the app's log.
_WARN_EVERY = 10.0


def normalize_path(path: str) -> str:
    """A receiver path in canonical form: percent-decoded, ``//`` collapsed, no trailing
    slash; the root is ``""`` (tokens then live at ``/<token>``)."""
    path = _SLASHES.sub("/", "/" + unquote(path).strip("/"))
    return "" if path == "/" else path


def callback_path_of(callback_url: str) -> str:
    """The receiver path a ``callback_url`` implies (see :func:`normalize_path`).

    ``http://host:8000``, ``http://host:8000/`` and ``HTTP://HOST:80//`` all give ``""``;
    ``https://my.app/hitl/``, ``https://my.app//hitl`` and ``https://my.app/hi%74l`` give
    ``"/hitl"``.
    """
    return normalize_path(urlsplit(callback_url).path)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_callback_url(callback_url: str) -> str:
    """``callback_url`` as requests carry it: lower-case scheme and host, no default port,
    ``//`` collapsed, no trailing slash (the root is the bare origin, ``http://host:8000``).

    The receiver compares paths in the same canonical form, so every spelling of one URL
    reaches it (and a Starlette ``Mount`` at ``dispatcher.receiver.path`` matches).

    Raises:
        ConfigError: not an absolute http(s) URL, or it has a query, a fragment or userinfo.
    """
    parts = urlsplit(callback_url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (
        scheme not in _DEFAULT_PORTS
        or not parts.hostname
        or parts.query
        or parts.fragment
        or "?" in callback_url
        or "#" in callback_url
        or port == -1
    ):
        raise ConfigError(
            "callback_url",
            f"{callback_url!r} is not an absolute http(s) URL without a query or fragment",
            "pass e.g. https://my.app/hitl (or http://127.0.0.1:8000 to receive at the root)",
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            "callback_url",
            "carries userinfo (user:password@), which would be sent to HITL.sh and back",
            "drop the credentials: the per-request token in the URL authenticates callbacks",
        )
    host = parts.hostname
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    path = _SLASHES.sub("/", parts.path).rstrip("/")
    return urlunsplit((scheme, netloc, path, "", ""))


def check_callback_path(callback_url: str | None, callback_path: str | None) -> str:
    """The receiver path for ``callback_url``, refusing a ``callback_path`` that disagrees.

    Raises:
        ConfigError: ``callback_url`` is malformed (see :func:`canonical_callback_url`), or
            ``callback_path`` is not where it sends callbacks.
    """
    if callback_url is None:
        return normalize_path("/hitl" if callback_path is None else callback_path)
    implied = callback_path_of(canonical_callback_url(callback_url))
    if callback_path is not None and normalize_path(callback_path) != implied:
        raise ConfigError(
            "callback_path",
            f"the receiver would answer under {normalize_path(callback_path) or '/'!r}, but "
            f"callback_url {callback_url!r} sends callbacks under {implied or '/'!r}, so every "
            "callback would be a 404",
            "drop callback_path (the receiver then follows callback_url), or change "
            "callback_url to the path the receiver is mounted at",
        )
    return implied


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
            ``callback_url``); ``""`` or ``"/"`` for the root (tokens at ``/<token>``).
            Compared in canonical form (:func:`normalize_path`).
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
        self.path = normalize_path(path)
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown
        self.accepted = 0
        self.rejected = 0
        self._warned: dict[str, tuple[float, int]] = {}

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
            if reject.status == 404:
                self._warn_404(reject.message)
            await _respond(send, reject.status, {"error": True, "msg": reject.message})
            return
        self.accepted += 1
        await _respond(send, 202, {"error": False, "msg": "accepted"})
        # The response is complete; the resolve runs now, like a Starlette BackgroundTask.
        try:
            await self.resolver.aresolve(request_id)
        except Exception:
            log.exception("resolve after callback failed request_id=%s", request_id)

    def _warn_404(self, reason: str) -> None:
        # The request path is never logged: it may carry a capability token.
        now = time.monotonic()
        last, suppressed = self._warned.get(reason, (-_WARN_EVERY, 0))
        if now - last < _WARN_EVERY:
            self._warned[reason] = (last, suppressed + 1)
            return
        self._warned[reason] = (now, 0)
        more = f" ({suppressed} more since the last warning)" if suppressed else ""
        if reason == "not found":
            log.warning(
                "callback answered 404: its path is not under this receiver's path %r%s. If "
                "this is HITL.sh calling, callback_url's path and where the receiver is served "
                "disagree",
                self.path or "/",
                more,
            )
        else:
            log.warning("callback answered 404: unknown request or wrong token%s", more)

    async def _authenticate(self, scope: Scope, receive: Receive) -> str:
        token = _token_in(self.path, scope)
        if token is None:
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


def _token_in(prefix: str, scope: Scope) -> str | None:
    """The token segment of a callback path under ``prefix``, or None."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    # Starlette's Mount (and uvicorn's --root-path) keep the full path in ``path``; other
    # servers strip the mount point into ``root_path``. Either way, compare the full path.
    if root and not path.startswith(root):
        path = root + path
    path = _SLASHES.sub("/", path)
    if not path.startswith(prefix + "/"):
        return None
    token = path[len(prefix) + 1 :]
    if not token or "/" in token or len(token) > _MAX_TOKEN:
        return None
    return token


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
