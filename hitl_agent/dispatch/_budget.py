"""CallBudget: the hourly API quota as a budget every dispatcher call is charged against.

HITL.sh allows about 100 calls per hour per key. The budget keeps a sliding hour of spent
calls. Its limit is the one you pass, or else the server's own: it follows the last
``X-RateLimit-Limit`` the client saw, minus 10 % headroom for creates and for people using the
same key (90 of 100; 90 until a response said anything). It also stops when the server said
fewer than ``reserve`` calls remain in its window, and after a 429 it waits until the window's
``reset_at`` (a 429 with only ``Retry-After`` blocks for that long; ``fallback_backoff``
seconds when the server gave neither). Server timestamps are read on the server's clock
(:class:`ServerClock`), never ours.

Every HTTP attempt is charged, not every logical call (issue 20 F10): the client retries a
GET or a list up to twice on a 5xx or a dropped connection, and HITL.sh counts each. A caller
charges the first attempt with :meth:`CallBudget.try_spend` and makes the call under
:meth:`CallBudget.meter`, which charges each retry before it is sent and refuses one the
budget cannot pay for (the call then ends with the error it got).

Callback doorbells are coalesced here (invariant 6, issue 8 H3): a request's first doorbell
may fetch at once; another doorbell for it within ``doorbell_gap`` seconds fetches nothing and
is left for the next sweep (the gap doubles for each doorbell that did fetch, up to an hour).
A hundred forged-but-authenticated POSTs therefore cost about one GET, not the whole hour.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .._base_client import AttemptMeter
from .._server_clock import ServerClock

__all__ = ["CallBudget"]

_DEFAULT_LIMIT = 90
_HEADROOM = 0.1
_MAX_GAP = 3600.0


class CallBudget:
    """A thread-safe sliding-window call budget.

    Args:
        limit: calls allowed in any ``window`` seconds; None (the default) follows the server's
            ``X-RateLimit-Limit`` less 10 % (90 until the server has said).
        window: the window length (an hour).
        clock: epoch seconds; inject a FakeClock in tests.
        reserve: stop when the server says fewer than this many calls remain.
        fallback_backoff: seconds to pause after a 429 without ``reset_at``.
        doorbell_gap: seconds before a second doorbell for one request may fetch again.
    """

    def __init__(
        self,
        limit: int | None = None,
        *,
        window: float = 3600.0,
        clock: Callable[[], float] = time.time,
        reserve: int = 5,
        fallback_backoff: float = 60.0,
        doorbell_gap: float = 60.0,
    ) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self._explicit = limit
        self._learned: int | None = None
        self.window = window
        self.clock = clock
        self.reserve = reserve
        self.fallback_backoff = fallback_backoff
        self.doorbell_gap = doorbell_gap
        self.server_clock = ServerClock(clock)
        self._spent: deque[float] = deque()
        self.charged = 0
        """Calls charged since this budget was made (``hitl_api_calls_total``)."""
        self._blocked_until = 0.0
        self._lock = threading.Lock()
        # request id -> (our time before which another doorbell fetches nothing, its gap)
        self._doorbells: dict[str, tuple[float, float]] = {}
        self._rung: dict[str, None] = {}

    def __repr__(self) -> str:
        return f"CallBudget(limit={self.limit}, remaining={self.remaining()})"

    @property
    def limit(self) -> int:
        """Calls allowed per window: the explicit limit, else the server's less 10 %."""
        if self._explicit is not None:
            return self._explicit
        if self._learned is not None:
            return self._learned
        return _DEFAULT_LIMIT

    def observe(self, client: Any) -> None:
        """Learn the server's limit and clock from the client's last response."""
        self.server_clock.observe(client)
        if self._explicit is not None:
            return
        seen = getattr(getattr(client, "rate_limit", None), "limit", None)
        if isinstance(seen, int) and seen > 0:
            self._learned = max(1, math.floor(seen * (1 - _HEADROOM)))

    def _trim(self, now: float) -> None:
        while self._spent and self._spent[0] <= now - self.window:
            self._spent.popleft()

    def spent(self) -> int:
        """Calls charged in the current window."""
        with self._lock:
            self._trim(self.clock())
            return len(self._spent)

    def remaining(self) -> int:
        """Calls left in the current window (0 while blocked by a 429)."""
        with self._lock:
            now = self.clock()
            if now < self._blocked_until:
                return 0
            self._trim(now)
            return max(0, self.limit - len(self._spent))

    def _server_says_no(self, client: Any, n: int) -> bool:
        rate = getattr(client, "rate_limit", None)
        server_left = getattr(rate, "remaining", None)
        if not isinstance(server_left, int) or server_left - n >= self.reserve:
            return False
        reset_at = getattr(rate, "reset_at", None)
        # The figure is stale once its window has reset (judged by the server's clock).
        return isinstance(reset_at, datetime) and reset_at.timestamp() > self.server_clock.now()

    def try_spend(self, n: int = 1, *, client: Any = None, keep: int = 0) -> bool:
        """Charge ``n`` calls if they fit and leave ``keep`` unspent; False (nothing charged)
        otherwise."""
        if client is not None:
            self.observe(client)
        refused_by_server = self._server_says_no(client, n)
        with self._lock:
            now = self.clock()
            if now < self._blocked_until or refused_by_server:
                return False
            self._trim(now)
            if len(self._spent) + n + keep > self.limit:
                return False
            self._spent.extend([now] * n)
            self.charged += n
            return True

    def meter(self, *, client: Any = None, keep: int = 0) -> AttemptMeter:
        """A meter for one call whose first attempt :meth:`try_spend` charged: each retry the
        client wants to send is charged first (leaving ``keep``), or not sent.

        ::

            if budget.try_spend(1, client=client):
                with budget.meter(client=client) as meter:
                    client.requests.get(request_id)
        """
        return AttemptMeter(lambda: self.try_spend(1, client=client, keep=keep))

    def seconds_until(self, n: int = 1, *, keep: int = 0) -> float:
        """How long until ``n`` calls fit (leaving ``keep``); 0 when they fit now."""
        with self._lock:
            now = self.clock()
            self._trim(now)
            wait = max(0.0, self._blocked_until - now)
            excess = len(self._spent) + n + keep - self.limit
            if excess > 0:
                index = min(excess, len(self._spent)) - 1
                wait = max(wait, self._spent[index] + self.window - now) if index >= 0 else wait
            return wait

    def block_until(self, reset_at: datetime | None) -> None:
        """Stop spending until ``reset_at`` (a 429 said the quota is gone)."""
        with self._lock:
            now = self.clock()
            until = self.server_clock.to_local(reset_at.timestamp()) if reset_at else 0.0
            if until <= now:
                until = now + self.fallback_backoff
            self._blocked_until = max(self._blocked_until, until)

    # -- doorbells -------------------------------------------------------------------------

    def admit_doorbell(self, request_id: str) -> bool:
        """May a doorbell for ``request_id`` fetch now? False coalesces it into the next sweep."""
        with self._lock:
            now = self.clock()
            entry = self._doorbells.get(request_id)
            if entry is not None and now < entry[0]:
                self._rung[request_id] = None
                return False
            gap = self.doorbell_gap if entry is None else min(entry[1] * 2, _MAX_GAP)
            self._doorbells[request_id] = (now + gap, gap)
            self._rung.pop(request_id, None)
            if len(self._doorbells) > 10_000:
                self._prune(now)
            return True

    def _prune(self, now: float) -> None:
        for request_id, (until, _) in list(self._doorbells.items()):
            if until + _MAX_GAP < now:
                del self._doorbells[request_id]

    def ring_later(self, request_id: str) -> None:
        """Leave a coalesced doorbell for the next sweep (of whichever dispatcher owns it)."""
        with self._lock:
            self._rung[request_id] = None

    def take_rung(self) -> list[str]:
        """Request ids whose doorbells were coalesced since the last call, oldest first."""
        with self._lock:
            rung, self._rung = list(self._rung), {}
            return rung
