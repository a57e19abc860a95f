"""The transport callbacks go through by default: resolve, check every address, pin the connection.

Checking a host name and then letting the HTTP stack resolve it again leaves a window in which
the name can re-resolve to a forbidden address (DNS rebinding). This transport resolves once,
checks every answer against the :class:`~._url_policy.CallbackPolicy`, and connects to the
checked address itself, keeping the ``Host`` header and the TLS server name (SNI and
certificate check) of the original host.
"""

from __future__ import annotations

import httpx2

from ._url_policy import CallbackPolicy

__all__ = ["PinnedCallbackTransport"]


class PinnedCallbackTransport(httpx2.AsyncBaseTransport):
    """An ``httpx2.AsyncHTTPTransport`` that only connects to addresses the policy allows."""

    def __init__(self, policy: CallbackPolicy) -> None:
        self.policy = policy
        # No pooled connections: the pool is keyed by address, and a TLS connection made for
        # one host name must never carry a request for another name on the same address.
        self._inner = httpx2.AsyncHTTPTransport(
            retries=0, limits=httpx2.Limits(max_keepalive_connections=0)
        )

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        host = request.url.raw_host.decode("ascii")
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        # The URL was checked when the request was created; check it again (the policy may
        # be stricter now), then the addresses the name resolves to right now.
        self.policy.check_url(str(request.url))
        addresses = await self.policy.resolve(host, port)
        if addresses[0] != host:
            request.url = request.url.copy_with(host=addresses[0])
            if request.url.scheme == "https":
                request.extensions = {**request.extensions, "sni_hostname": host}
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
