"""The local server's size and shape limits, in one place (documented in docs/server.md).

HITL.sh documents ``request_text`` <= 2000 characters (checked by the request model); it
documents no body or ``context`` limit, so these are ours: large enough for any real review,
small enough that one caller cannot fill the database or the memory of whoever lists requests.
"""

from __future__ import annotations

from typing import Any

from .._exceptions import ConfigError
from ._errors import ServerError, validation_error
from ._util import dumps

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_CALLBACK_URL_LENGTH",
    "MAX_CONTEXT_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_PAGE_BYTES",
    "MAX_URL_LENGTH",
    "check_request_sizes",
    "too_large",
]

MAX_BODY_BYTES = 256 * 1024
"""Any request body; a larger one gets 413 before it is read past the limit."""
MAX_JSON_DEPTH = 32
"""Nesting of arrays/objects in any JSON body (``context`` sits at depth 2)."""
MAX_CONTEXT_BYTES = 64 * 1024
"""``context`` as compact UTF-8 JSON."""
MAX_CALLBACK_URL_LENGTH = 2048
"""``callback_url`` in characters."""
MAX_URL_LENGTH = 2048
"""Each media URL (``image_url``, ``file_url``, ``video_url``, ``audio_url``) in characters."""
_MAX_SHORT_TEXT = 256
"""``file_type``, ``file_name``, ``platform``, ``platform_version``."""
MAX_PAGE_BYTES = 2 * 1024 * 1024
"""A list page stops early (``has_more`` stays true) once its stored bodies pass this size."""


_FIELD_LIMITS: dict[str, int] = {
    "callback_url": MAX_CALLBACK_URL_LENGTH,
    **dict.fromkeys(("image_url", "file_url", "video_url", "audio_url"), MAX_URL_LENGTH),
    **dict.fromkeys(("file_type", "file_name", "platform", "platform_version"), _MAX_SHORT_TEXT),
}


def too_large(limit: int, what: str = "the body") -> ServerError:
    """413 naming the limit."""
    return ServerError(
        413,
        "Request body too large",
        f"{what} is larger than the {limit}-byte limit ({limit // 1024} KiB); send less",
    )


def _size_problem(field: str, problem: str, fix: str) -> ServerError:
    return validation_error(ConfigError(field, problem, fix))


def check_request_sizes(body: Any) -> None:
    """400 ``Validation failed`` naming the field when a create body's field is too large.

    Runs before the model, so that a huge or odd value is refused by its size alone.
    """
    if not isinstance(body, dict):
        return
    context = body.get("context")
    if context is not None:
        try:
            size = len(dumps(context).encode("utf-8"))
        except (TypeError, ValueError):
            size = 0  # not JSON-encodable: the model names the problem
        if size > MAX_CONTEXT_BYTES:
            raise _size_problem(
                "context",
                f"{size} bytes of JSON exceeds the {MAX_CONTEXT_BYTES}-byte limit",
                "keep context to identifiers and small values; store large data elsewhere",
            )
    for field, limit in _FIELD_LIMITS.items():
        value = body.get(field)
        if isinstance(value, str) and len(value) > limit:
            raise _size_problem(
                field,
                f"{len(value)} characters exceeds the {limit}-character limit",
                f"send at most {limit} characters",
            )
