"""A clock that moves only when told to."""

from __future__ import annotations

import threading

__all__ = ["FakeClock"]


class FakeClock:
    """Epoch seconds that stand still until :meth:`advance`; pass it as ``clock=``.

    Args:
        start: the initial time; defaults to 2026-01-01T00:00:00Z.

    Example::

        clock = FakeClock()
        clock.advance(600)        # ten minutes later, instantly
        clock() == clock.now()
    """

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        """The current fake time in epoch seconds."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (never backwards); return the new time."""
        if seconds < 0:
            raise ValueError(f"seconds: {seconds} is negative. Fix: a clock only moves forward")
        with self._lock:
            self._now += seconds
            return self._now

    def __call__(self) -> float:
        return self.now()

    def __repr__(self) -> str:
        return f"FakeClock(now={self.now()!r})"
