"""Capability tokens stay on the dispatcher's side: what exports and reviewers see instead.

A gate's request carries ``callback_url = {receiver}/{token}``; whoever holds the token can
deliver that request's callback. The dispatcher needs it; nobody else does: not a reviewer,
not a JSON or CSV export that ends up in a ticket or a spreadsheet. :func:`redact_callback_url`
keeps where callbacks go (scheme, host, the receiver's path) and replaces what grants access:
the last path segment (the token), any ``user:password@`` and any query or fragment.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["REDACTED", "redact_callback_url", "redact_record"]

REDACTED = "<redacted>"
"""What stands in for a capability: a token segment, credentials, a query."""


def redact_callback_url(url: Any) -> Any:
    """``url`` without its capability parts; anything but a non-empty string is returned as is.

    ``https://app.example/hitl/3f9a…`` → ``https://app.example/hitl/<redacted>``;
    ``https://u:p@host/cb?key=s`` → ``https://<redacted>@host/<redacted>?<redacted>``. A value
    that does not parse as a URL is replaced whole.
    """
    if not isinstance(url, str) or not url:
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return REDACTED
    if not parts.scheme or not parts.netloc:
        return REDACTED
    netloc = host if port is None else f"{host}:{port}"
    if ":" in host:  # IPv6 literal
        netloc = f"[{host}]" if port is None else f"[{host}]:{port}"
    if parts.username is not None or parts.password is not None:
        netloc = f"{REDACTED}@{netloc}"
    segments = parts.path.rstrip("/").split("/")
    path = "/".join([*segments[:-1], REDACTED]) if len(segments) > 1 else "/" + REDACTED
    query = REDACTED if parts.query else ""
    fragment = REDACTED if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, path, query, fragment))


def redact_record(record: dict[str, Any]) -> dict[str, Any]:
    """A copy of a request's JSON object with ``callback_url`` redacted (the rest unchanged)."""
    if record.get("callback_url"):
        return {**record, "callback_url": redact_callback_url(record["callback_url"])}
    return dict(record)
