"""Where callbacks arrive: ``callback_url`` spellings, receiver paths, and 404 warnings.

A request's callback is ``{callback_url}/{token}``; the receiver must answer exactly under
``callback_url``'s path, the root included (``http://host:8000`` puts tokens at
``/<token>``). Both sides use one canonical form, so every spelling of a URL (upper-case
scheme or host, an explicit default port, trailing or doubled slashes, percent-encoding)
reaches the receiver, and a receiver path that disagrees with the URL is refused up front
instead of answering every callback with a silent 404.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from ._exceptions import ConfigError

__all__ = [
    "NotFoundLog",
    "callback_path_of",
    "canonical_callback_url",
    "check_callback_path",
    "normalize_path",
    "token_in",
]

log = logging.getLogger("hitl_agent.dispatch")

_SLASHES = re.compile(r"/{2,}")
# One 404 warning per kind per this many seconds: a scanner must not flood the app's log.
_WARN_EVERY = 10.0


def normalize_path(path: str) -> str:
    """A receiver path in canonical form: percent-decoded, ``//`` collapsed, no trailing
    slash; the root is ``""`` (tokens then live at ``/<token>``)."""
    path = _SLASHES.sub("/", "/" + unquote(path).strip("/"))
    return "" if path == "/" else path


def callback_path_of(callback_url: str) -> str:
    """The receiver path a ``callback_url`` implies (see :func:`normalize_path`).

    ``http://host:8000``, ``http://host:8000/`` and ``HTTP://HOST:80//`` all give ``""``;
    ``https://my.app/hitl/``, ``https://my.app//hitl`` and ``https://my.app/hi%74l`` give
    ``"/hitl"``.
    """
    return normalize_path(urlsplit(callback_url).path)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_callback_url(callback_url: str) -> str:
    """``callback_url`` as requests carry it: lower-case scheme and host, no default port,
    ``//`` collapsed, no trailing slash (the root is the bare origin, ``http://host:8000``).

    The receiver compares paths in the same canonical form, so every spelling of one URL
    reaches it (and a Starlette ``Mount`` at ``dispatcher.receiver.path`` matches).

    Raises:
        ConfigError: not an absolute http(s) URL, or it has a query, a fragment or userinfo.
    """
    parts = urlsplit(callback_url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (
        scheme not in _DEFAULT_PORTS
        or not parts.hostname
        or parts.query
        or parts.fragment
        or "?" in callback_url
        or "#" in callback_url
        or port == -1
    ):
        raise ConfigError(
            "callback_url",
            f"{callback_url!r} is not an absolute http(s) URL without a query or fragment",
            "pass e.g. https://my.app/hitl (or http://127.0.0.1:8000 to receive at the root)",
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            "callback_url",
            "carries userinfo (user:password@), which would be sent to HITL.sh and back",
            "drop the credentials: the per-request token in the URL authenticates callbacks",
        )
    host = parts.hostname
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    path = _SLASHES.sub("/", parts.path).rstrip("/")
    return urlunsplit((scheme, netloc, path, "", ""))


def check_callback_path(callback_url: str | None, callback_path: str | None) -> str:
    """The receiver path for ``callback_url``, refusing a ``callback_path`` that disagrees.

    Raises:
        ConfigError: ``callback_url`` is malformed (see :func:`canonical_callback_url`), or
            ``callback_path`` is not where it sends callbacks.
    """
    if callback_url is None:
        return normalize_path("/hitl" if callback_path is None else callback_path)
    implied = callback_path_of(canonical_callback_url(callback_url))
    if callback_path is not None and normalize_path(callback_path) != implied:
        raise ConfigError(
            "callback_path",
            f"the receiver would answer under {normalize_path(callback_path) or '/'!r}, but "
            f"callback_url {callback_url!r} sends callbacks under {implied or '/'!r}, so every "
            "callback would be a 404",
            "drop callback_path (the receiver then follows callback_url), or change "
            "callback_url to the path the receiver is mounted at",
        )
    return implied


def token_in(prefix: str, scope: MutableMapping[str, Any], max_token: int) -> str | None:
    """The token segment (at most ``max_token`` characters) of a callback path under
    ``prefix``, or None."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    # Starlette's Mount (and uvicorn's --root-path) keep the full path in ``path``; other
    # servers strip the mount point into ``root_path``. Either way, compare the full path.
    if root and not path.startswith(root):
        path = root + path
    path = _SLASHES.sub("/", path)
    if not path.startswith(prefix + "/"):
        return None
    token = path[len(prefix) + 1 :]
    if not token or "/" in token or len(token) > max_token:
        return None
    return token


class NotFoundLog:
    """Warns about callbacks answered 404, never with their path (it carries the token)."""

    def __init__(self, receiver_path: str) -> None:
        self.receiver_path = receiver_path
        self._warned: dict[str, tuple[float, int]] = {}

    def __call__(self, reason: str) -> None:
        """Log one 404 of kind ``reason`` (throttled per kind)."""
        now = time.monotonic()
        last, suppressed = self._warned.get(reason, (-_WARN_EVERY, 0))
        if now - last < _WARN_EVERY:
            self._warned[reason] = (last, suppressed + 1)
            return
        self._warned[reason] = (now, 0)
        more = f" ({suppressed} more since the last warning)" if suppressed else ""
        if reason == "not found":
            log.warning(
                "callback answered 404: its path is not under this receiver's path %r%s. If "
                "this is HITL.sh calling, callback_url's path and where the receiver is served "
                "disagree",
                self.receiver_path or "/",
                more,
            )
        else:
            log.warning("callback answered 404: unknown request or wrong token%s", more)
