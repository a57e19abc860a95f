"""The one error the server's logic raises; the HTTP layer turns it into an envelope."""

from __future__ import annotations

from typing import Any

from .._exceptions import ConfigError

__all__ = ["ServerError", "validation_error"]


class ServerError(Exception):
    """A refused operation, carrying what the API answers: status, ``msg`` and ``data``.

    Python callers of :class:`~hitl_agent.server.LocalHITLServer` (the console, tests) catch
    this too; ``status`` is the HTTP status the API would send.

    Attributes:
        status: the HTTP status code, e.g. 400, 403, 404, 409.
        msg: the documented ``msg`` string, e.g. ``"Request not found"``.
        data: the envelope's ``data``: a string naming the field and the fix, or an object.
    """

    def __init__(self, status: int, msg: str, data: Any = None) -> None:
        super().__init__(f"{status} {msg}" + (f": {data}" if isinstance(data, str) else ""))
        self.status = status
        self.msg = msg
        self.data = data


def validation_error(err: ConfigError, msg: str = "Validation failed") -> ServerError:
    """A 400 whose ``data`` is the ConfigError's sentence: the field, the problem, the fix."""
    return ServerError(400, msg, str(err))
