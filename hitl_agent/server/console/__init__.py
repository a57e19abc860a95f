"""The reviewer console of the local server, and the safe markdown it shows.

``render_markdown`` turns a request's untrusted markdown into inert HTML (no links, no images,
no script, invisible characters made visible); the server fills each queue item's
``request_html`` with it, and ``timeout_note`` with the line saying what a timeout does.
``console_routes`` serves the web console, mounted at ``/console``::

    from starlette.routing import Mount
    from hitl_agent.server.console import console_routes, render_markdown

    routes = [..., Mount("/console", routes=console_routes())]
    render_markdown("**Delete** [prod](javascript:x)")  # inert HTML
"""

from ._render import MAX_RENDER_CHARS as MAX_RENDER_CHARS
from ._render import render_markdown as render_markdown
from ._render import reveal_invisible as reveal_invisible
from ._routes import CONTENT_SECURITY_POLICY as CONTENT_SECURITY_POLICY
from ._routes import console_routes as console_routes
from ._timeout import default_label as default_label
from ._timeout import timeout_note as timeout_note

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "MAX_RENDER_CHARS",
    "console_routes",
    "default_label",
    "render_markdown",
    "reveal_invisible",
    "timeout_note",
]
