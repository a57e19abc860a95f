"""The HTTP stack: httpx2 by default, httpx when the caller hands us one of its clients.

Two HTTP libraries share every process this package runs in: langchain-core and langgraph-sdk
depend on ``httpx``, langsmith (which langchain-core pulls in) on ``httpx2``, the maintained
continuation of httpx with the same API. Starlette's ``TestClient`` is an ``httpx2.Client``
whenever httpx2 is installed. Their classes are not interchangeable: httpx2 refuses an
``httpx.Timeout`` (2.17+), and neither library catches the other's exceptions.

So the rule here is: objects of one library never reach the other. The client lets the
injected client build its own requests and sets the timeout as the plain mapping both
libraries' transports read (``request.extensions["timeout"]``), never as a ``Timeout``
object; every ``except`` names the error classes of both (:data:`HTTP_ERRORS` and friends).
What we create ourselves is httpx2: it is maintained, it is already installed with
langchain-core, and it is what Starlette, FastAPI and the model SDKs moved to.
"""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any, TypeAlias

import httpx
import httpx2

from ._exceptions import ConfigError

__all__ = [
    "HTTP_ERRORS",
    "NEVER_SENT_ERRORS",
    "STACKS",
    "TIMEOUT_ERRORS",
    "TRANSIENT_ERRORS",
    "AnyAsyncClient",
    "AnyClient",
    "AnyHeaders",
    "AnyRequest",
    "AnyResponse",
    "AnyTimeout",
    "check_client",
    "timeout_for",
]

DEFAULT_STACK: ModuleType = httpx2
STACKS: tuple[ModuleType, ...] = (httpx2, httpx)
"""Every HTTP library whose clients, requests and errors this package accepts."""

AnyClient: TypeAlias = httpx2.Client | httpx.Client
AnyAsyncClient: TypeAlias = httpx2.AsyncClient | httpx.AsyncClient
AnyRequest: TypeAlias = httpx2.Request | httpx.Request
AnyResponse: TypeAlias = httpx2.Response | httpx.Response
AnyHeaders: TypeAlias = httpx2.Headers | httpx.Headers
AnyTimeout: TypeAlias = httpx2.Timeout | httpx.Timeout


def _classes(name: str) -> tuple[type[Exception], ...]:
    return tuple(getattr(stack, name) for stack in STACKS)


HTTP_ERRORS = _classes("HTTPError") + _classes("InvalidURL") + _classes("StreamError")
"""Everything either library raises while sending (InvalidURL and StreamError are not
HTTPErrors)."""
TIMEOUT_ERRORS = _classes("TimeoutException")
NEVER_SENT_ERRORS = _classes("ConnectError") + _classes("ConnectTimeout") + _classes("PoolTimeout")
"""Failures that prove nothing was sent: safe to retry for every method."""
TRANSIENT_ERRORS = (
    _classes("TimeoutException") + _classes("NetworkError") + _classes("RemoteProtocolError")
)
"""Transport failures worth another try. UnsupportedProtocol, ProxyError and
LocalProtocolError are configuration or programming errors: repeating them changes nothing."""


def check_client(client: object, *, asynchronous: bool, field: str = "http_client") -> None:
    """Refuse what cannot send our requests: neither library's client nor a look-alike.

    A look-alike (a wrapper with ``build_request`` and ``send``, as tests and proxies write
    them) is accepted as it is; its ``send`` must be a coroutine function exactly when the
    client is the async one.
    """
    kind = "AsyncClient" if asynchronous else "Client"
    if any(isinstance(client, getattr(stack, kind)) for stack in STACKS):
        return
    send = getattr(client, "send", None)
    wrong_kind = any(
        isinstance(client, getattr(stack, "Client" if asynchronous else "AsyncClient"))
        for stack in STACKS
    )
    if (
        not wrong_kind
        and callable(send)
        and callable(getattr(client, "build_request", None))
        and inspect.iscoroutinefunction(send) == asynchronous
    ):
        return
    raise ConfigError(
        field,
        f"{type(client).__module__}.{type(client).__qualname__} is not an httpx2.{kind} "
        f"or httpx.{kind}",
        f"pass an httpx2.{kind} or httpx.{kind}"
        + ("" if asynchronous else " (Starlette's TestClient is one)"),
    )


def timeout_for(stack: ModuleType, timeout: AnyTimeout | float) -> Any:
    """``timeout`` as ``stack``'s own ``Timeout`` (a foreign one is refused by httpx2 2.17+)."""
    if isinstance(timeout, stack.Timeout):
        return timeout
    if isinstance(timeout, httpx2.Timeout | httpx.Timeout):
        return stack.Timeout(**timeout.as_dict())
    return stack.Timeout(timeout)
