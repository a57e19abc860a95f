"""``create_app``: the local server as a Starlette application."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import httpx2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from ._http import envelope, http_date
from ._loops import join_fields
from ._openapi import openapi_document
from ._routes_api import api_routes
from ._routes_reviewer import reviewer_routes
from ._server import LocalHITLServer
from ._uploads import serve_upload

__all__ = ["UVICORN_OPTIONS", "create_app"]

log = logging.getLogger("hitl_agent.server")


def _console_routes() -> list[BaseRoute] | None:
    try:
        from .console import console_routes
    except ImportError:
        return None  # the console is optional: the API works without it
    return list(console_routes())


async def _openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())


async def _qr_code(request: Request) -> Response:
    # The qr_code_url of a loop create (like HITL.sh's https://api.hitl.sh/qr/<code>.png):
    # no key needed, the invite code is the capability, as with HITL.sh's.
    server = request.app.state.hitl
    code = str(request.path_params["code"])
    with server.storage.read() as conn:
        row = conn.execute("SELECT 1 FROM loops WHERE invite_code = ?", (code,)).fetchone()
    if row is None:
        return envelope(404, "Not found")
    data = join_fields(str(request.base_url), code)["qr_code_base64"]
    png = base64.b64decode(data.split(",", 1)[1])
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


async def _index(request: Request) -> Response:
    return envelope(
        200,
        "hitl-agent local HITL server",
        {"api": "/v1", "openapi": "/openapi.json", "reviewer_api": "/v1/reviewer"},
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    msg = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, str(exc.detail))
    return envelope(exc.status_code, msg, headers=exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return envelope(500, "Internal server error")


class _DateHeader:
    """One ``Date`` header on every response, from the server's clock.

    API responses carry their own (clients judge deadlines by it); this adds one to the
    others (console, OpenAPI, 404s). ``hitl-agent serve`` turns uvicorn's own ``Date`` off,
    which otherwise came on top: every response carried two (issue 22 W5). Embedders
    running the app under uvicorn pass ``date_header=False`` the same way (docs/server.md).
    """

    def __init__(self, app: Any, clock: Callable[[], float]) -> None:
        self.app = app
        self.clock = clock

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_dated(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                if not any(name.lower() == b"date" for name, _ in headers):
                    headers.append((b"date", http_date(int(self.clock())).encode("latin-1")))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_dated)


UVICORN_OPTIONS: dict[str, Any] = {"lifespan": "on", "access_log": False, "date_header": False}
"""uvicorn settings for serving :func:`create_app`: the app's lifespan runs the scheduler,
access logs stay off (callback URLs carry tokens), and the app sends its own ``Date``."""


def create_app(
    db: str | os.PathLike[str] = ":memory:",
    *,
    clock: Callable[[], float] | None = None,
    signing_secret: str | None = None,
    rate_limit: int | None = None,
    callback_client: httpx2.AsyncClient | httpx.AsyncClient | None = None,
    callback_base_delay: float = 1.0,
    claim_timeout_seconds: float = 300.0,
    scheduler_interval: float | None = 1.0,
    callback_timeout: float = 10.0,
    allow_private_callbacks: bool = False,
    plain_callbacks: bool = False,
) -> Starlette:
    """The embedded, HITL.sh-compatible server as an ASGI app; state on ``app.state.hitl``.

    Args:
        db: SQLite file (created when missing; reopened with its data after a restart) or
            ``":memory:"``.
        clock: epoch seconds; defaults to :func:`time.time`. Tests pass a FakeClock.
        signing_secret: sign callbacks with ``X-HITL-Signature-256: sha256=<hex>``.
        rate_limit: calls per hour per API key (HITL.sh: 100); None for no limit.
        callback_client: the ``httpx2.AsyncClient`` (or ``httpx.AsyncClient``) callbacks are
            POSTed through (tests inject one over a ``MockTransport`` or ``ASGITransport``);
            None for a fresh one.
        callback_base_delay: seconds before the first callback retry; doubles per retry.
        claim_timeout_seconds: how long a reviewer's claim lasts before it returns to pending.
        scheduler_interval: seconds between background scheduler passes, run while the app's
            lifespan is active; None runs none (call ``await app.state.hitl.tick()``).
        callback_timeout: seconds one callback delivery may take before it counts as a failed
            attempt; deliveries run concurrently and never hold up a scheduler pass.
        allow_private_callbacks: let ``callback_url`` point at private ranges (10/8,
            172.16/12, 192.168/16, 100.64/10, fc00::/7). Loopback is always allowed;
            link-local and cloud metadata addresses never are. See docs/server.md.
        plain_callbacks: callbacks carry the plain ``response_data`` (``"approve"``) instead
            of the wrapped shape of HITL.sh's webhooks page (``{"selected_value": ...}``).

    The database stays open after the lifespan ends; call ``app.state.hitl.close()``.
    """
    server = LocalHITLServer(
        db,
        clock=clock,
        signing_secret=signing_secret,
        rate_limit=rate_limit,
        callback_client=callback_client,
        callback_base_delay=callback_base_delay,
        claim_timeout_seconds=claim_timeout_seconds,
        callback_timeout=callback_timeout,
        allow_private_callbacks=allow_private_callbacks,
        plain_callbacks=plain_callbacks,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = None
        if scheduler_interval is not None:
            task = asyncio.create_task(server.run_scheduler(scheduler_interval))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await server.deliverer.aclose()

    routes: list[BaseRoute] = [
        *api_routes(),
        *reviewer_routes(),
        Route("/openapi.json", _openapi, methods=["GET"]),
        Route("/qr/{code}.png", _qr_code, methods=["GET"]),
        Route("/uploads/{upload_id}/{name}", serve_upload, methods=["GET"]),
    ]
    console = _console_routes()
    if console is None:
        routes.append(Route("/", _index, methods=["GET"]))
    else:
        routes.append(Route("/", lambda request: RedirectResponse("/console/"), methods=["GET"]))
        routes.append(Mount("/console", routes=console))
    handlers: dict[Any, Callable[[Request, Exception], Any]] = {
        HTTPException: _http_error,
        Exception: _server_error,
    }
    app = Starlette(
        routes=routes,
        exception_handlers=handlers,
        lifespan=lifespan,
        middleware=[Middleware(_DateHeader, clock=server.clock)],
    )
    app.state.hitl = server
    return app
