"""The embedded local HITL server: HITL.sh's API, persisted in SQLite, with reviewers.

    from hitl_agent.server import create_app
    app = create_app("hitl.db")                  # an ASGI app (Starlette)
    creds = app.state.hitl.bootstrap()           # API key, loop, reviewer token
    # uvicorn.run(app, port=8765)  or  hitl-agent serve

See ``docs/server.md``. Needs the ``server`` extra (``pip install 'hitl-agent[server]'``).
"""

from .._extras import MissingExtraError

try:
    import markdown_it  # noqa: F401  (what the `server` extra installs)
    import starlette  # noqa: F401
except ImportError as err:
    raise MissingExtraError("server", "The local HITL server", err.name or "starlette") from err

from ._accounts import Caller, KeyAccount, ReviewerAccount
from ._app import create_app
from ._errors import ServerError
from ._server import Bootstrap, LocalHITLServer, render_request_html
from ._signing import SIGNATURE_HEADER, sign, verify

__all__ = [
    "SIGNATURE_HEADER",
    "Bootstrap",
    "Caller",
    "KeyAccount",
    "LocalHITLServer",
    "ReviewerAccount",
    "ServerError",
    "create_app",
    "render_request_html",
    "sign",
    "verify",
]
