"""ServerClock: the API server's time, learned from its responses, for deadlines and reconcile.

Deadlines (``timeout_at``) and ``created_at`` are the server's timestamps. Comparing them with
our own clock breaks as soon as the two disagree: a client clock 10 minutes ahead fails a review
closed 10 minutes early, and a reconcile that stops at "older than our intent" stops before the
request it looks for. So every comparison with a server timestamp uses this clock instead.

It learns from the ``Date`` header of each response (``client.server_date``) and, when a server
sends none, from ``X-RateLimit-Reset`` (the window resets at most an hour after now, so
``reset - 3600`` is a lower bound). Either way the estimate errs *late* (an observation read
after its response arrived only makes the server look earlier), so a deadline judged by it is
never passed early. With no observation at all it falls back to our own clock: nothing was
ever heard from the server, so nothing says our clock is wrong.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

__all__ = ["ServerClock", "server_now_bound"]

_HOUR = 3600.0
_KEEP = 16


def server_now_bound(client: Any) -> float | None:
    """A lower bound on the server's time at the client's last response (epoch seconds).

    The ``Date`` of that response (to the second, rounded down), else the start of the quota
    window that ``X-RateLimit-Reset`` ends, else None.
    """
    date = getattr(client, "server_date", None)
    if isinstance(date, datetime):
        return date.timestamp()
    reset_at = getattr(getattr(client, "rate_limit", None), "reset_at", None)
    if isinstance(reset_at, datetime) and reset_at.timestamp() > _HOUR:
        return reset_at.timestamp() - _HOUR
    return None


class ServerClock:
    """Our clock, corrected by the offset the server's responses show.

    Args:
        clock: our epoch seconds.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._offsets: deque[float] = deque(maxlen=_KEEP)
        self._seen: object = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ServerClock(offset={self.offset()!r})"

    def observe(self, client: Any) -> None:
        """Learn from the client's last response (call it right after an API call)."""
        marker = (getattr(client, "server_date", None), getattr(client, "rate_limit", None))
        with self._lock:
            if marker == self._seen:
                return  # the same response again: reading it later would only blur it
            self._seen = marker
            bound = server_now_bound(client)
            if bound is not None:
                self._offsets.append(self.clock() - bound)

    def offset(self) -> float | None:
        """Our clock minus the server's (seconds), or None before any observation.

        The smallest recent offset wins: each observation can only overstate it.
        """
        with self._lock:
            return min(self._offsets) if self._offsets else None

    def now(self) -> float:
        """The server's time now (a lower bound), or our clock before any observation."""
        offset = self.offset()
        local = self.clock()
        return local if offset is None else local - offset

    def to_local(self, server_time: float) -> float:
        """A server timestamp on our clock."""
        offset = self.offset()
        return server_time if offset is None else server_time + offset

    def to_server(self, local_time: float) -> float:
        """One of our timestamps on the server's clock."""
        offset = self.offset()
        return local_time if offset is None else local_time - offset
