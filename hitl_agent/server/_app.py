"""``create_app``: the local server as a Starlette application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import httpx2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from ._http import envelope
from ._openapi import openapi_document
from ._routes_api import api_routes
from ._routes_reviewer import reviewer_routes
from ._server import LocalHITLServer

__all__ = ["create_app"]

log = logging.getLogger("hitl_agent.server")


def _console_routes() -> list[BaseRoute] | None:
    try:
        from .console import console_routes
    except ImportError:
        return None  # the console is optional: the API works without it
    return list(console_routes())


async def _openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())


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
    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
    app.state.hitl = server
    return app
