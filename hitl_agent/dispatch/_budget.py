"""CallBudget: the hourly API quota as a budget every dispatcher call is charged against.

HITL.sh allows about 100 calls per hour per key. The budget keeps a sliding hour of spent
calls (default limit 90, leaving headroom for creates and humans), also stops when the client
last saw ``X-RateLimit-Remaining`` at or below the reserve, and after a 429 waits until the
window's ``reset_at`` (or ``fallback_backoff`` seconds when the server gave none).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

__all__ = ["CallBudget"]


class CallBudget:
    """A thread-safe sliding-window call budget.

    Args:
        limit: calls allowed in any ``window`` seconds.
        window: the window length (an hour).
        clock: epoch seconds; inject a FakeClock in tests.
        reserve: stop when the server says fewer than this many calls remain.
        fallback_backoff: seconds to pause after a 429 without ``reset_at``.
    """

    def __init__(
        self,
        limit: int = 90,
        *,
        window: float = 3600.0,
        clock: Callable[[], float] = time.time,
        reserve: int = 5,
        fallback_backoff: float = 60.0,
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.limit = limit
        self.window = window
        self.clock = clock
        self.reserve = reserve
        self.fallback_backoff = fallback_backoff
        self._spent: deque[float] = deque()
        self._blocked_until = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CallBudget(limit={self.limit}, remaining={self.remaining()})"

    def _trim(self, now: float) -> None:
        while self._spent and self._spent[0] <= now - self.window:
            self._spent.popleft()

    def remaining(self) -> int:
        """Calls left in the current window (0 while blocked by a 429)."""
        with self._lock:
            now = self.clock()
            if now < self._blocked_until:
                return 0
            self._trim(now)
            return max(0, self.limit - len(self._spent))

    def try_spend(self, n: int = 1, *, client: Any = None) -> bool:
        """Charge ``n`` calls if all fit; False (nothing charged) otherwise."""
        rate = getattr(client, "rate_limit", None)
        server_left = getattr(rate, "remaining", None)
        with self._lock:
            now = self.clock()
            if now < self._blocked_until:
                return False
            if isinstance(server_left, int) and server_left - n < self.reserve:
                reset_at = getattr(rate, "reset_at", None)
                if isinstance(reset_at, datetime) and reset_at.timestamp() > now:
                    return False
            self._trim(now)
            if len(self._spent) + n > self.limit:
                return False
            self._spent.extend([now] * n)
            return True

    def block_until(self, reset_at: datetime | None) -> None:
        """Stop spending until ``reset_at`` (a 429 said the quota is gone)."""
        with self._lock:
            now = self.clock()
            until = reset_at.timestamp() if reset_at is not None else 0.0
            if until <= now:
                until = now + self.fallback_backoff
            self._blocked_until = max(self._blocked_until, until)
