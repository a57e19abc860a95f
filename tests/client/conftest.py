"""A harness that runs one scenario through the sync and the async client alike.

Each test is written once as an ``async def`` taking the ``mode`` fixture; the harness calls
the sync client directly and awaits the async one, so both clients face the same handler,
the same assertions and the same documented responses. It does so over both HTTP libraries the
client accepts (``stack``: httpx2, its default, and httpx): scenarios are written with httpx
objects, and for httpx2 the harness hands the client httpx2's own requests, responses and
transport errors, as a real httpx2 transport would.
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import httpx
import pytest

import hitl_agent._client
from hitl_agent import AsyncHITLClient, HITLClient, RetryPolicy

TEST_KEY = "hitl_live_TESTKEY0123456789abcdef"
BASE = "https://api.hitl.sh/v1"
LOOP_ID = "65f1234567890abcdef12345"
REQUEST_ID = "65f1234567890abcdef12348"
USER_ID = "65f1234567890abcdef12346"

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["httpx2", "httpx"])
def stack(request: pytest.FixtureRequest) -> ModuleType:
    """The HTTP library of the client under test."""
    return importlib.import_module(str(request.param))


def on_stack(stack: ModuleType, handler: Handler) -> Callable[[Any], Any]:
    """``handler`` (written with httpx objects) as a MockTransport handler of ``stack``."""
    if stack is httpx:
        return handler

    def translated(request: Any) -> Any:
        try:
            response = handler(request)
        except httpx.HTTPError as err:
            translated_err = getattr(stack, type(err).__name__)(str(err), request=request)
            translated_err.translated_from = err  # what the scenario raised, for its asserts
            raise translated_err from None
        return stack.Response(
            response.status_code,
            headers=list(response.headers.multi_items()),
            content=response.content,
        )

    return translated


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record backoff waits instead of sleeping, for both clients."""
    waited: list[float] = []

    def fake_sleep(seconds: float) -> None:
        waited.append(seconds)

    async def fake_async_sleep(seconds: float) -> None:
        waited.append(seconds)

    monkeypatch.setattr(hitl_agent._client, "_sleep", fake_sleep)
    monkeypatch.setattr(hitl_agent._client, "_async_sleep", fake_async_sleep)
    return waited


def envelope(data: Any = None, *, msg: str = "OK", error: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"error": error, "msg": msg}
    if data is not None:
        body["data"] = data
    return body


@dataclass
class Recorder:
    """A MockTransport handler answering from a queue, keeping every request it saw."""

    responses: list[httpx.Response | Exception | Handler]
    seen: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        # The last entry repeats, so "always 500" is a one-item list.
        item = self.responses[min(len(self.seen) - 1, len(self.responses) - 1)]
        if isinstance(item, Exception):
            raise item
        if isinstance(item, httpx.Response):
            return item
        return item(request)

    @property
    def last(self) -> httpx.Request:
        return self.seen[-1]

    def body(self, index: int = -1) -> Any:
        content = self.seen[index].content
        return json.loads(content) if content else None


def respond(
    status: int = 200, body: Any = None, *, headers: dict[str, str] | None = None
) -> httpx.Response:
    if isinstance(body, str | bytes):
        return httpx.Response(status, content=body, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


class Harness:
    """One client (sync or async) bound to a Recorder, with awaitable call helpers."""

    def __init__(
        self, mode: str, recorder: Recorder, stack: ModuleType = httpx, **kwargs: Any
    ) -> None:
        self.mode = mode
        self.recorder = recorder
        kwargs.setdefault("api_key", TEST_KEY)
        kwargs.setdefault("retry", RetryPolicy(initial_delay=0.0, max_delay=0.0))
        transport = stack.MockTransport(on_stack(stack, recorder))
        self.client: HITLClient | AsyncHITLClient
        if mode == "sync":
            self.client = HITLClient(http_client=stack.Client(transport=transport), **kwargs)
        else:
            self.client = AsyncHITLClient(
                http_client=stack.AsyncClient(transport=transport), **kwargs
            )

    async def call(self, dotted: str, *args: Any, **kwargs: Any) -> Any:
        """Call e.g. ``"requests.get"`` on the client, awaiting when it is the async one."""
        target: Any = self.client
        for part in dotted.split("."):
            target = getattr(target, part)
        result = target(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def iterate(self, take: int | None = None, **kwargs: Any) -> list[Any]:
        """Consume ``requests.iter(**kwargs)``, stopping after ``take`` items."""
        items: list[Any] = []
        iterator = self.client.requests.iter(**kwargs)
        if isinstance(iterator, Iterator):
            for item in iterator:
                items.append(item)
                if take is not None and len(items) >= take:
                    break
        else:
            async for item in iterator:
                items.append(item)
                if take is not None and len(items) >= take:
                    break
            await iterator.aclose()  # type: ignore[attr-defined]
        return items

    async def close(self) -> None:
        result = self.client.close()
        if inspect.isawaitable(result):
            await result


@pytest.fixture
def make(mode: str, stack: ModuleType) -> Iterator[Callable[..., Harness]]:
    """``make(*responses, **client_kwargs)`` builds a Harness for the current mode and stack."""
    made: list[Harness] = []

    def factory(*responses: httpx.Response | Exception | Handler, **kwargs: Any) -> Harness:
        harness = Harness(mode, Recorder(list(responses)), stack, **kwargs)
        made.append(harness)
        return harness

    yield factory
    for harness in made:
        http = harness.client._http
        if isinstance(http, stack.Client):
            http.close()
