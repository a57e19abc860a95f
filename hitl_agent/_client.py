"""HITLClient and AsyncHITLClient: send described calls, retry them safely, parse the answers.

    with HITLClient(api_key="...", base_url="http://127.0.0.1:8765/v1") as client:
        created = client.requests.create(loop_id, request_text="Ship it?",
                                         response_type="boolean", default_response=False,
                                         timeout_seconds=600)
        request = client.requests.get(created.request_id)

The async client is the same surface with ``await``/``async for``.
"""

from __future__ import annotations

import asyncio
import time
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

import httpx2

from ._base_client import APICall, BaseClient
from ._http import HTTP_ERRORS, AnyAsyncClient, AnyClient, AnyTimeout
from ._retry import RetryPolicy
from .models.account import KeyInfo

if TYPE_CHECKING:
    from .resources.loops import AsyncLoops, Loops
    from .resources.requests import AsyncRequests, Requests
    from .resources.uploads import AsyncUploads, Uploads
    from .resources.workflows import AsyncWorkflows, Workflows

__all__ = ["AsyncHITLClient", "HITLClient"]

T = TypeVar("T")
# Module-level so tests can make backoff instant without patching the stdlib for everyone.
_sleep = time.sleep
_async_sleep = asyncio.sleep


def _key_check() -> APICall[KeyInfo]:
    return APICall("GET", "/test", KeyInfo.model_validate)


class HITLClient(BaseClient):
    """The synchronous HITL.sh client.

    Args:
        api_key: the API key; defaults to ``HITL_API_KEY``.
        base_url: defaults to ``HITL_BASE_URL``, else ``https://api.hitl.sh/v1``.
        timeout: seconds or a ``Timeout`` of httpx2 or httpx (default 30 s, 5 s to connect).
        retry: the :class:`RetryPolicy` (default: 2 retries, never re-sending a create
            that may have arrived).
        http_client: an ``httpx2.Client`` or ``httpx.Client`` to send through (Starlette's
            ``TestClient`` too; its transport is the test seam); the caller keeps ownership of
            it. Without one, the client opens an ``httpx2.Client`` (docs/client.md says why).
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | AnyTimeout | None = None,
        retry: RetryPolicy | None = None,
        http_client: AnyClient | None = None,
    ) -> None:
        super().__init__(api_key, base_url=base_url, timeout=timeout, retry=retry)
        self._owns_http = http_client is None
        self._bind(http_client if http_client is not None else httpx2.Client(), asynchronous=False)

    @cached_property
    def requests(self) -> Requests:
        """Review requests: create, get, update, list, iter, cancel, add_feedback."""
        from .resources.requests import Requests

        return Requests(self)

    @cached_property
    def loops(self) -> Loops:
        """Loops: create, list, get, update, delete, members, remove_member."""
        from .resources.loops import Loops

        return Loops(self)

    @cached_property
    def workflows(self) -> Workflows:
        """Workflows: trigger (HITL.sh's successor to creating requests in a loop)."""
        from .resources.workflows import Workflows

        return Workflows(self)

    @cached_property
    def uploads(self) -> Uploads:
        """Uploads: image, document (files HITL.sh hosts for a request)."""
        from .resources.uploads import Uploads

        return Uploads(self)

    def test(self) -> KeyInfo:
        """Check the key: ``GET /test`` returns its owner, status and rate limit."""
        return self._execute(_key_check())

    def _execute(self, call: APICall[T]) -> T:
        attempt = 0
        while True:
            request = self._build_request(call)
            self._count_attempt()  # every attempt is charged, a retry included
            try:
                response = self._http.send(request)
            except HTTP_ERRORS as err:
                delay = self.retry.delay_after_error(call.method, err, attempt)
                if delay is None or not self._admit_retry():
                    raise self._wrap_transport_error(err, request) from err
            else:
                delay = self.retry.delay_after_response(
                    call.method, response, attempt, now=self._now()
                )
                if delay is None:
                    return self._parse_response(call, response)
                self._observe(response)  # first: the budget may judge the retry by it
                if not self._admit_retry():
                    return self._parse_response(call, response)
                response.close()
            attempt += 1
            _sleep(delay)

    def close(self) -> None:
        """Close the HTTP connection pool, unless it was passed in."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> HITLClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncHITLClient(BaseClient):
    """The asynchronous HITL.sh client; same arguments as :class:`HITLClient`."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | AnyTimeout | None = None,
        retry: RetryPolicy | None = None,
        http_client: AnyAsyncClient | None = None,
    ) -> None:
        super().__init__(api_key, base_url=base_url, timeout=timeout, retry=retry)
        self._owns_http = http_client is None
        self._bind(
            http_client if http_client is not None else httpx2.AsyncClient(), asynchronous=True
        )

    @cached_property
    def requests(self) -> AsyncRequests:
        """Review requests: create, get, update, list, iter, cancel, add_feedback."""
        from .resources.requests import AsyncRequests

        return AsyncRequests(self)

    @cached_property
    def loops(self) -> AsyncLoops:
        """Loops: create, list, get, update, delete, members, remove_member."""
        from .resources.loops import AsyncLoops

        return AsyncLoops(self)

    @cached_property
    def workflows(self) -> AsyncWorkflows:
        """Workflows: trigger (HITL.sh's successor to creating requests in a loop)."""
        from .resources.workflows import AsyncWorkflows

        return AsyncWorkflows(self)

    @cached_property
    def uploads(self) -> AsyncUploads:
        """Uploads: image, document (files HITL.sh hosts for a request)."""
        from .resources.uploads import AsyncUploads

        return AsyncUploads(self)

    async def test(self) -> KeyInfo:
        """Check the key: ``GET /test`` returns its owner, status and rate limit."""
        return await self._execute(_key_check())

    async def _execute(self, call: APICall[T]) -> T:
        attempt = 0
        while True:
            request = self._build_request(call)
            self._count_attempt()  # every attempt is charged, a retry included
            try:
                response = await self._http.send(request)
            except HTTP_ERRORS as err:
                delay = self.retry.delay_after_error(call.method, err, attempt)
                if delay is None or not self._admit_retry():
                    raise self._wrap_transport_error(err, request) from err
            else:
                delay = self.retry.delay_after_response(
                    call.method, response, attempt, now=self._now()
                )
                if delay is None:
                    return self._parse_response(call, response)
                self._observe(response)  # first: the budget may judge the retry by it
                if not self._admit_retry():
                    return self._parse_response(call, response)
                await response.aclose()
            attempt += 1
            await _async_sleep(delay)

    async def close(self) -> None:
        """Close the HTTP connection pool, unless it was passed in."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncHITLClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
