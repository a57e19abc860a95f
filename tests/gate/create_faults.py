"""HTTP clients of the local server that lose creates, for the reconciliation tests.

Wrap the local server's ``TestClient`` (or its ``httpx2.AsyncClient``) and pass the wrapper
as a client's ``http_client``:

* ``lose``: the next create reaches the server, which stores the request, and its response is
  lost (a connection reset): the client cannot tell it was created;
* ``drop``: the next create fails with a read error before it reaches the server (to the
  client, the same unclear failure; nothing was stored);
* ``down``: every GET answers 503 without reaching the server;
* ``fail_gets``: that many next GETs answer 503 without reaching the server.
"""

from __future__ import annotations

from typing import Any

import httpx
import httpx2


class Faults:
    """The sync wrapper; ``calls`` lists every request's method."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.lose = False
        self.drop = False
        self.down = False
        self.fail_gets = 0
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _before(self, request: Any) -> Any:
        self.calls.append(request.method)
        stack = httpx2 if isinstance(request, httpx2.Request) else httpx
        if self.drop and request.method == "POST":
            self.drop = False
            raise stack.ReadError("connection reset before the server read it", request=request)
        if request.method == "GET" and self.fail_gets > 0:
            self.fail_gets -= 1
            return stack.Response(503, json={"error": True, "msg": "busy"}, request=request)
        if self.down and request.method == "GET":
            return stack.Response(503, json={"error": True, "msg": "down"}, request=request)
        return None

    def _after(self, request: Any) -> None:
        if self.lose and request.method == "POST":
            self.lose = False
            stack = httpx2 if isinstance(request, httpx2.Request) else httpx
            raise stack.ReadError("connection reset after the server answered", request=request)

    def send(self, request: Any, **kwargs: Any) -> Any:
        refused = self._before(request)
        if refused is not None:
            return refused
        response = self.inner.send(request, **kwargs)
        self._after(request)
        return response


class AsyncFaults(Faults):
    """The async wrapper (an ``httpx2.AsyncClient`` or ``httpx.AsyncClient`` inside)."""

    async def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        refused = self._before(request)
        if refused is not None:
            return refused
        response = await self.inner.send(request, **kwargs)
        self._after(request)
        return response
