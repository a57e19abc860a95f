"""The console's routes: the page, its static files, and the security headers they carry."""

from __future__ import annotations

from pathlib import Path

from starlette.responses import FileResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["CONTENT_SECURITY_POLICY", "STATIC_DIR", "console_routes"]

STATIC_DIR = Path(__file__).parent / "static"

#: The page runs only its own script and stylesheet and talks only to its own origin. Images
#: may come from any http(s) origin because an image request's ``image_url`` is loaded — on the
#: reviewer's click — from wherever the operator put it. Markdown never yields an <img>.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: http: data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    # The page holds a bearer token in sessionStorage; keep it out of shared caches.
    "cache-control": "no-store",
}


class _SecurityHeaders:
    """Adds the console's security headers to every response of the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))  # type: ignore[call-overload]
                present = {name.lower() for name, _ in raw}
                raw.extend(
                    (name.encode(), value.encode())
                    for name, value in _HEADERS.items()
                    if name.encode() not in present
                )
                message["headers"] = raw
            await send(message)

        await self.app(scope, receive, send_with_headers)  # type: ignore[arg-type]


async def _index_app(scope: Scope, receive: Receive, send: Send) -> None:
    page = FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")
    await page(scope, receive, send)


def console_routes() -> list[BaseRoute]:
    """The reviewer console's routes, to mount at ``/console``.

    ``/`` serves the page and ``/static/…`` its script and stylesheet. The page calls the
    reviewer API at ``../v1/reviewer/…`` relative to itself, so the console must be mounted
    next to ``/v1``.

    Returns:
        Routes for ``Mount("/console", routes=console_routes())``.
    """
    return [
        Route("/", _SecurityHeaders(_index_app), name="console"),
        Mount("/static", app=_SecurityHeaders(StaticFiles(directory=STATIC_DIR)), name="static"),
    ]
