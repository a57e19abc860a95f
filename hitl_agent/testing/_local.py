"""``local_hitl()`` / ``alocal_hitl()``: a local HITL server, a client and a reviewer in one line.

::

    from hitl_agent.testing import FakeClock, local_hitl

    def test_approval() -> None:
        clock = FakeClock()
        with local_hitl(clock=clock) as hitl:
            created = hitl.client.requests.create(hitl.loop_id, request_text="Ship?",
                response_type="boolean", default_response=False, timeout_seconds=600)
            hitl.reviewer.respond(created.request_id, True)
            assert hitl.client.requests.get(created.request_id).response_value is True
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import httpx2
from starlette.applications import Starlette
from starlette.testclient import TestClient

from .._client import AsyncHITLClient, HITLClient
from .._exceptions import ConfigError
from .._retry import RetryPolicy
from ..server import Bootstrap, LocalHITLServer, create_app
from ._reviewer import AsyncScriptedReviewer, ScriptedReviewer

__all__ = ["AsyncLocalHITL", "LocalHITL", "alocal_hitl", "hitl_or_local", "local_hitl"]

BASE_URL = "http://testserver/v1"
_NO_RETRY = RetryPolicy(max_retries=0)


@dataclass
class LocalHITL:
    """A running local server with a client and a scripted reviewer (from :func:`local_hitl`).

    Attributes:
        app: the ASGI app.
        server: its :class:`~hitl_agent.server.LocalHITLServer`.
        api_key: the bootstrapped API key; ``loop_id`` its loop; ``workflow_id`` its
            default workflow (trigger → human review, Approve/Reject, 1 h, default Reject).
        base_url: ``http://testserver/v1``.
        client: a :class:`~hitl_agent.HITLClient` over starlette's ``TestClient``.
        reviewer: a :class:`ScriptedReviewer`, member of ``loop_id``.
        http: the ``TestClient`` itself, for raw calls.
    """

    app: Starlette
    server: LocalHITLServer
    api_key: str = field(repr=False)
    loop_id: str
    base_url: str
    client: HITLClient
    reviewer: ScriptedReviewer
    http: TestClient = field(repr=False)
    credentials: Bootstrap = field(repr=False)

    @property
    def workflow_id(self) -> str:
        """The default workflow (trigger → human review: single_select Approve/Reject, 1 h,
        default Reject); ``Gatekeeper(workflow=hitl.workflow_id, ...)`` reviews through it."""
        return self.credentials.workflow_id or ""

    async def tick(self) -> None:
        """One scheduler pass: timeouts, claim expiry, due callbacks."""
        await self.server.tick()

    def tick_sync(self) -> None:
        """:meth:`tick` from synchronous test code (runs on the app's event loop)."""
        portal = self.http.portal
        assert portal is not None, "tick_sync() needs the local_hitl() context to be open"
        portal.call(self.server.tick)


@dataclass
class AsyncLocalHITL:
    """:class:`LocalHITL` for async tests (from :func:`alocal_hitl`): ``client`` is an
    :class:`~hitl_agent.AsyncHITLClient` and ``reviewer`` an :class:`AsyncScriptedReviewer`,
    both over ``httpx2.ASGITransport``."""

    app: Starlette
    server: LocalHITLServer
    api_key: str = field(repr=False)
    loop_id: str
    base_url: str
    client: AsyncHITLClient
    reviewer: AsyncScriptedReviewer
    http: httpx2.AsyncClient = field(repr=False)
    credentials: Bootstrap = field(repr=False)

    @property
    def workflow_id(self) -> str:
        """The default workflow (trigger → human review: single_select Approve/Reject, 1 h,
        default Reject); ``Gatekeeper(workflow=hitl.workflow_id, ...)`` reviews through it."""
        return self.credentials.workflow_id or ""

    async def tick(self) -> None:
        """One scheduler pass: timeouts, claim expiry, due callbacks."""
        await self.server.tick()


@contextlib.contextmanager
def local_hitl(
    *,
    db: str | os.PathLike[str] = ":memory:",
    clock: Callable[[], float] | None = None,
    signing_secret: str | None = None,
    rate_limit: int | None = None,
    callback_client: httpx2.AsyncClient | httpx.AsyncClient | None = None,
    callback_base_delay: float = 0.0,
    claim_timeout_seconds: float = 300.0,
    scheduler_interval: float | None = None,
    retry: RetryPolicy | None = None,
    plain_callbacks: bool = False,
) -> Iterator[LocalHITL]:
    """A local HITL server for a test, with a bootstrapped key, loop, client and reviewer.

    Nothing runs in the background unless ``scheduler_interval`` is set: call
    ``await hitl.tick()`` (or ``hitl.tick_sync()``) after moving ``clock`` to process
    timeouts, claim expiry and callbacks. Callbacks retry without delay by default. The
    client does not retry (``retry`` overrides), so a 429 surfaces at once.
    ``plain_callbacks`` sends callbacks' ``response_data`` plain (``"approve"``) instead of
    the wrapped shape of HITL.sh's webhooks page (see :func:`hitl_agent.server.create_app`).
    The default workflow's id is ``hitl.workflow_id``.
    """
    app = create_app(
        db,
        clock=clock,
        signing_secret=signing_secret,
        rate_limit=rate_limit,
        callback_client=callback_client,
        callback_base_delay=callback_base_delay,
        claim_timeout_seconds=claim_timeout_seconds,
        scheduler_interval=scheduler_interval,
        plain_callbacks=plain_callbacks,
    )
    server: LocalHITLServer = app.state.hitl
    try:
        credentials = server.bootstrap(default_workflow=True)
        with TestClient(app, base_url="http://testserver") as http:
            client = HITLClient(
                credentials.api_key, base_url=BASE_URL, http_client=http, retry=retry or _NO_RETRY
            )
            yield LocalHITL(
                app=app,
                server=server,
                api_key=credentials.api_key,
                loop_id=credentials.loop_id,
                base_url=BASE_URL,
                client=client,
                reviewer=ScriptedReviewer(http, credentials.reviewer_token, BASE_URL),
                http=http,
                credentials=credentials,
            )
    finally:
        server.close()


@contextlib.asynccontextmanager
async def alocal_hitl(
    *,
    db: str | os.PathLike[str] = ":memory:",
    clock: Callable[[], float] | None = None,
    signing_secret: str | None = None,
    rate_limit: int | None = None,
    callback_client: httpx2.AsyncClient | httpx.AsyncClient | None = None,
    callback_base_delay: float = 0.0,
    claim_timeout_seconds: float = 300.0,
    scheduler_interval: float | None = None,
    retry: RetryPolicy | None = None,
    plain_callbacks: bool = False,
) -> AsyncIterator[AsyncLocalHITL]:
    """The async twin of :func:`local_hitl`; use with ``async with``."""
    app = create_app(
        db,
        clock=clock,
        signing_secret=signing_secret,
        rate_limit=rate_limit,
        callback_client=callback_client,
        callback_base_delay=callback_base_delay,
        claim_timeout_seconds=claim_timeout_seconds,
        scheduler_interval=scheduler_interval,
        plain_callbacks=plain_callbacks,
    )
    server: LocalHITLServer = app.state.hitl
    task: asyncio.Task[Any] | None = None
    try:
        credentials = server.bootstrap(default_workflow=True)
        if scheduler_interval is not None:
            # ASGITransport runs no lifespan, so the scheduler is started here instead.
            task = asyncio.create_task(server.run_scheduler(scheduler_interval))
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as http:
            client = AsyncHITLClient(
                credentials.api_key, base_url=BASE_URL, http_client=http, retry=retry or _NO_RETRY
            )
            yield AsyncLocalHITL(
                app=app,
                server=server,
                api_key=credentials.api_key,
                loop_id=credentials.loop_id,
                base_url=BASE_URL,
                client=client,
                reviewer=AsyncScriptedReviewer(http, credentials.reviewer_token, BASE_URL),
                http=http,
                credentials=credentials,
            )
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await server.deliverer.aclose()  # deliveries the scheduler left in flight
        server.close()


@contextlib.contextmanager
def hitl_or_local() -> Iterator[tuple[HITLClient, str, ScriptedReviewer | None]]:
    """``(client, loop_id, reviewer)``: an in-process local server and its
    :class:`ScriptedReviewer`, or, only when ``HITL_LIVE=1`` asks for it, the API that
    ``HITL_API_KEY``, ``HITL_BASE_URL`` and ``HITL_LOOP_ID`` name (HITL.sh, or a
    ``hitl-agent serve``), with no scripted reviewer: a person answers. The same code runs
    both ways::

        with hitl_or_local() as (client, loop_id, reviewer):
            created = client.requests.create(loop_id, ...)
            if reviewer is not None:          # offline: play the reviewer
                reviewer.respond(created.request_id, True)

    An exported ``HITL_API_KEY`` alone does not switch: a shell set up for ``hitl-agent serve``
    still runs offline, and nothing waits for a person nobody asked.

    Raises:
        ConfigError: ``HITL_LIVE=1`` but ``HITL_LOOP_ID`` is not set (or ``HITL_API_KEY``,
            from :class:`~hitl_agent.HITLClient`).
    """
    if os.environ.get("HITL_LIVE") == "1":
        loop_id = os.environ.get("HITL_LOOP_ID")
        if not loop_id:
            raise ConfigError(
                "HITL_LOOP_ID",
                "HITL_LIVE=1 asks for the real API, but no loop is named",
                "set HITL_LOOP_ID to the loop to ask in, or unset HITL_LIVE to run offline",
            )
        with HITLClient() as client:  # reads HITL_API_KEY and HITL_BASE_URL
            yield client, loop_id, None
    else:
        with local_hitl() as hitl:
            yield hitl.client, hitl.loop_id, hitl.reviewer
