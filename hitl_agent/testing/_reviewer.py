"""Reviewers driven by a test script through the reviewer API."""

from __future__ import annotations

from typing import Any

import httpx
import httpx2

from ..server import ServerError

__all__ = ["AsyncScriptedReviewer", "ScriptedReviewer"]


def _data(response: Any) -> Any:
    body = response.json()
    if response.status_code >= 400 or body.get("error") is True:
        raise ServerError(response.status_code, body.get("msg", ""), body.get("data"))
    return body.get("data")


class ScriptedReviewer:
    """A reviewer whose moves a test makes: ``queue()``, ``claim()``, ``release()``,
    ``respond()``. Calls the reviewer API over ``http``; a refusal raises
    :class:`~hitl_agent.server.ServerError` with the API's status, ``msg`` and ``data``.

    Args:
        http: a sync HTTP client pointed at the local server (a starlette ``TestClient``).
        token: the reviewer's bearer token.
        base_url: the server's ``/v1`` URL.
    """

    def __init__(self, http: Any, token: str, base_url: str = "http://testserver/v1") -> None:
        self._http = http
        self._headers = {"Authorization": f"Bearer {token}"}
        self._base = base_url.rstrip("/") + "/reviewer"

    def __repr__(self) -> str:
        return f"ScriptedReviewer(base_url={self._base!r})"

    def _call(self, method: str, path: str, json: Any = None) -> Any:
        return _data(
            self._http.request(method, self._base + path, json=json, headers=self._headers)
        )

    def queue(self) -> list[dict[str, Any]]:
        """Open requests in this reviewer's loops, critical first then oldest."""
        return list(self._call("GET", "/queue")["requests"])

    def get(self, request_id: str) -> dict[str, Any]:
        """One request of this reviewer's loops."""
        return dict(self._call("GET", f"/requests/{request_id}")["request"])

    def claim(self, request_id: str) -> dict[str, Any]:
        """Claim a request."""
        return dict(self._call("POST", f"/requests/{request_id}/claim")["request"])

    def release(self, request_id: str) -> dict[str, Any]:
        """Give a claim back."""
        return dict(self._call("POST", f"/requests/{request_id}/release")["request"])

    def respond(self, request_id: str, value: Any) -> dict[str, Any]:
        """Answer a request with ``value`` (validated against its response config)."""
        body = {"response_data": value}
        return dict(self._call("POST", f"/requests/{request_id}/respond", body)["request"])


class AsyncScriptedReviewer:
    """:class:`ScriptedReviewer` over an ``httpx2.AsyncClient`` (or an ``httpx`` one); every
    method is awaited."""

    def __init__(
        self,
        http: httpx2.AsyncClient | httpx.AsyncClient,
        token: str,
        base_url: str = "http://testserver/v1",
    ) -> None:
        self._http = http
        self._headers = {"Authorization": f"Bearer {token}"}
        self._base = base_url.rstrip("/") + "/reviewer"

    def __repr__(self) -> str:
        return f"AsyncScriptedReviewer(base_url={self._base!r})"

    async def _call(self, method: str, path: str, json: Any = None) -> Any:
        response = await self._http.request(
            method, self._base + path, json=json, headers=self._headers
        )
        return _data(response)

    async def queue(self) -> list[dict[str, Any]]:
        """Open requests in this reviewer's loops, critical first then oldest."""
        return list((await self._call("GET", "/queue"))["requests"])

    async def get(self, request_id: str) -> dict[str, Any]:
        """One request of this reviewer's loops."""
        return dict((await self._call("GET", f"/requests/{request_id}"))["request"])

    async def claim(self, request_id: str) -> dict[str, Any]:
        """Claim a request."""
        return dict((await self._call("POST", f"/requests/{request_id}/claim"))["request"])

    async def release(self, request_id: str) -> dict[str, Any]:
        """Give a claim back."""
        return dict((await self._call("POST", f"/requests/{request_id}/release"))["request"])

    async def respond(self, request_id: str, value: Any) -> dict[str, Any]:
        """Answer a request with ``value``."""
        body = {"response_data": value}
        return dict((await self._call("POST", f"/requests/{request_id}/respond", body))["request"])
