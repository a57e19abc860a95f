"""The API key itself: what ``GET /test`` says about it, and the rate-limit figures."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from pydantic import Field

from .base import HITLModel

__all__ = ["KeyInfo", "RateLimit"]


class RateLimit(HITLModel):
    """The hourly quota of an API key, from a body or from ``X-RateLimit-*`` headers."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: datetime | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimit | None:
        """The figures in ``X-RateLimit-Limit/Remaining/Reset``, or None when absent."""
        limit = _int(headers.get("x-ratelimit-limit"))
        remaining = _int(headers.get("x-ratelimit-remaining"))
        reset = _int(headers.get("x-ratelimit-reset"))
        if limit is None and remaining is None and reset is None:
            return None
        reset_at = datetime.fromtimestamp(reset, tz=UTC) if reset is not None else None
        return cls(limit=limit, remaining=remaining, reset_at=reset_at)


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


class KeyInfo(HITLModel):
    """What ``GET /v1/test`` says about the key."""

    api_key_id: str | None = None
    user_id: str | None = None
    email: str | None = None
    account_status: str | None = None
    rate_limit: RateLimit | None = None
    permissions: list[str] = Field(default_factory=list)
