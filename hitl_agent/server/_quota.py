"""The hourly call quota per API key, in windows that reset at the top of each hour.

Every authenticated call counts, errors included (HITL.sh counts calls, not successes); a
call refused with 429 does not. Cancelling a pending request gives one call back.

Every authenticated response carries ``X-RateLimit-Limit / -Remaining / -Reset``, as HITL.sh
sends them. A server without a rate limit says so with :data:`NO_QUOTA_LIMIT` (remaining
stays at that figure), so clients that size their polling from the headers poll fast.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ._util import iso

__all__ = ["NO_QUOTA_LIMIT", "QuotaState", "consume", "current", "refund", "unlimited"]

_HOUR = 3600

NO_QUOTA_LIMIT = 100_000
"""The ``X-RateLimit-Limit`` a server without a rate limit sends: "no quota to speak of"."""


@dataclass(frozen=True)
class QuotaState:
    """The figures behind the ``X-RateLimit-*`` headers and the 429 body."""

    limit: int
    used: int
    reset: int

    @property
    def remaining(self) -> int:
        """Calls left in this window."""
        return max(0, self.limit - self.used)

    def headers(self) -> dict[str, str]:
        """``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (unix seconds)."""
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }

    def exceeded_data(self) -> dict[str, object]:
        """The documented 429 ``data``."""
        return {
            "usage_count": self.used,
            "usage_limit": self.limit,
            "remaining": self.remaining,
            "reset_at": iso(self.reset),
        }


def _window(now: float) -> int:
    return int(now // _HOUR) * _HOUR


def consume(
    conn: sqlite3.Connection, api_key_id: str, now: float, limit: int
) -> tuple[bool, QuotaState]:
    """Count one call; False (and nothing counted) when the window is spent."""
    window = _window(now)
    row = conn.execute(
        "SELECT count FROM usage WHERE api_key_id = ? AND window_start = ?", (api_key_id, window)
    ).fetchone()
    used = 0 if row is None else int(row["count"])
    if used >= limit:
        return False, QuotaState(limit, used, window + _HOUR)
    conn.execute(
        "INSERT INTO usage (api_key_id, window_start, count) VALUES (?, ?, 1) "
        "ON CONFLICT (api_key_id, window_start) DO UPDATE SET count = count + 1",
        (api_key_id, window),
    )
    # Old windows are never read again; drop them so the table stays one row per key.
    conn.execute(
        "DELETE FROM usage WHERE api_key_id = ? AND window_start < ?", (api_key_id, window)
    )
    return True, QuotaState(limit, used + 1, window + _HOUR)


def refund(conn: sqlite3.Connection, api_key_id: str, now: float) -> None:
    """Give one call back to the current window."""
    conn.execute(
        "UPDATE usage SET count = MAX(0, count - 1) WHERE api_key_id = ? AND window_start = ?",
        (api_key_id, _window(now)),
    )


def current(conn: sqlite3.Connection, api_key_id: str, now: float, limit: int) -> QuotaState:
    """The window's figures without counting a call."""
    window = _window(now)
    row = conn.execute(
        "SELECT count FROM usage WHERE api_key_id = ? AND window_start = ?", (api_key_id, window)
    ).fetchone()
    return QuotaState(limit, 0 if row is None else int(row["count"]), window + _HOUR)


def unlimited(now: float) -> QuotaState:
    """The headers' figures when no rate limit is set: nothing is counted."""
    return QuotaState(NO_QUOTA_LIMIT, 0, _window(now) + _HOUR)
