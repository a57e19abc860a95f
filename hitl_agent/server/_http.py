"""The HTTP edge: the ``{error, msg, data}`` envelope, JSON bodies, bearer auth, quota headers."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from email.utils import formatdate
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .._json_limits import JSONTooDeep, loads_bounded
from . import _quota
from ._accounts import Caller, ReviewerAccount
from ._errors import ServerError
from ._limits import MAX_BODY_BYTES, MAX_JSON_DEPTH, too_large
from ._server import LocalHITLServer

__all__ = [
    "ApiHandler",
    "ReviewerHandler",
    "api_endpoint",
    "envelope",
    "http_date",
    "read_body",
    "read_json",
    "reviewer_endpoint",
]

Result = tuple[int, str, Any]
ApiHandler = Callable[[Request, Caller, LocalHITLServer], Awaitable[Result]]
ReviewerHandler = Callable[[Request, ReviewerAccount, LocalHITLServer], Awaitable[Result]]
_NO_DATA: Any = object()


def envelope(
    status: int, msg: str, data: Any = _NO_DATA, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """``{"error": status >= 400, "msg": msg, "data": data}`` (``data`` left out when absent)."""
    body: dict[str, Any] = {"error": status >= 400, "msg": msg}
    if data is not _NO_DATA:
        body["data"] = data
    if status == 413:
        # The rest of the body is left unread on the socket, so the connection cannot carry
        # another request: say so rather than let the client find out by a reset.
        headers = {**(headers or {}), "Connection": "close"}
    return JSONResponse(body, status_code=status, headers=headers)


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, read in chunks and refused with 413 as soon as it passes ``limit`` bytes.

    A declared ``Content-Length`` over the limit is refused before anything is read; a body
    that streams past it (chunked, or lying about its length) stops being read there.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request) -> Any:
    """The body as JSON; 400 ``Invalid request body`` naming what is wrong with it.

    Limits (docs/server.md): at most :data:`MAX_BODY_BYTES` (413 beyond), UTF-8, nested at
    most :data:`MAX_JSON_DEPTH` deep, checked before the parser runs so that no body can make
    it recurse.
    """
    raw = await read_body(request)
    if not raw.strip():
        raise ServerError(400, "Invalid request body", "the body is empty; send a JSON object")
    try:
        return loads_bounded(raw, max_depth=MAX_JSON_DEPTH)
    except JSONTooDeep:
        raise ServerError(
            400,
            "Invalid request body",
            f"the body nests arrays/objects deeper than the limit of {MAX_JSON_DEPTH} levels; "
            "send flatter JSON",
        ) from None
    except UnicodeDecodeError:
        raise ServerError(
            400, "Invalid request body", "the body is not UTF-8; send UTF-8 encoded JSON"
        ) from None
    except ValueError as err:
        raise ServerError(
            400, "Invalid request body", f"the body is not valid JSON ({err}); send a JSON object"
        ) from None


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _server(request: Request) -> LocalHITLServer:
    server = request.app.state.hitl
    assert isinstance(server, LocalHITLServer)
    return server


def _edge_headers(
    server: LocalHITLServer, state: _quota.QuotaState | None = None
) -> dict[str, str]:
    # Every API response, as HITL.sh: the quota figures, and the server's clock (clients
    # judge deadlines by it, not by their own possibly skewed clock). Without a known key
    # (401) nothing was counted: the window's full figures.
    if state is None:
        now = server.clock()
        limit = server.rate_limit
        state = (
            _quota.unlimited(now)
            if limit is None
            else _quota.QuotaState(limit, 0, _quota.unlimited(now).reset)
        )
    return {**state.headers(), "Date": http_date(int(server.clock()))}


@functools.lru_cache(maxsize=4)
def http_date(second: int) -> str:
    """The HTTP ``Date`` text of an epoch second."""
    # An HTTP date has whole seconds: every response within one shares the same text.
    return formatdate(second, usegmt=True)


def api_endpoint(handler: ApiHandler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap ``handler`` with API-key auth, the hourly quota and the envelope."""

    async def endpoint(request: Request) -> Response:
        server = _server(request)
        token = _bearer(request)
        if token is None:
            return envelope(
                401, "Missing or invalid authorization header", headers=_edge_headers(server)
            )
        caller = server.authenticate_key(token)
        if caller is None:
            return envelope(401, "Invalid API key", headers=_edge_headers(server))
        limit = server.rate_limit
        if limit is not None:
            allowed, state = server.run(
                lambda conn, now: _quota.consume(conn, caller.api_key_id, now, limit)
            )
            if not allowed:
                return envelope(
                    429,
                    "API key request limit exceeded",
                    state.exceeded_data(),
                    _edge_headers(server, state),
                )
        try:
            status, msg, data = await handler(request, caller, server)
        except ServerError as err:
            status, msg, data = err.status, err.msg, (_NO_DATA if err.data is None else err.data)
        if limit is not None:
            # Read after the handler: a cancel may have refunded the call it just counted.
            state = server.run(
                lambda conn, now: _quota.current(conn, caller.api_key_id, now, limit)
            )
        else:
            state = _quota.unlimited(server.clock())
        return envelope(status, msg, data, _edge_headers(server, state))

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def reviewer_endpoint(handler: ReviewerHandler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap ``handler`` with reviewer-token auth and the envelope (reviewers have no quota)."""

    async def endpoint(request: Request) -> Response:
        server = _server(request)
        token = _bearer(request)
        if token is None:
            return envelope(401, "Missing or invalid authorization header")
        reviewer = server.authenticate_reviewer(token)
        if reviewer is None:
            return envelope(401, "Invalid reviewer token")
        try:
            status, msg, data = await handler(request, reviewer, server)
        except ServerError as err:
            status, msg, data = err.status, err.msg, (_NO_DATA if err.data is None else err.data)
        return envelope(status, msg, data)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint
