"""LeaseKeeper: renew a resume claim for as long as the resume runs (invariant 2).

An approved action may take longer than any lease. Without renewal, another replica's sweep
or a duplicate callback would take the claim over after ``lease_seconds`` and resume the same
interrupt a second time while the first resume still runs. Each keeper is woken every
``interval`` real seconds and renews the claims whenever the resolver's *clock* has moved by
a third of the lease since the last renewal: time is the clock's (a FakeClock in tests, the
server's in production), the wake-ups only bound how late a renewal can be.

One daemon thread per process wakes every running keeper (issue 12: a thread started and
joined per resume cost about a tenth of the resume throughput). It lingers a few seconds
after the last keeper stops, so back-to-back resumes do not start it again each time. A slow
renewal delays the others' by as long; renewals are due every third of a lease (100 s by
default), so seconds of ledger latency leave every claim held.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..ledger import Ledger

__all__ = ["LeaseKeeper", "default_interval"]

log = logging.getLogger("hitl_agent.dispatch")


def default_interval(lease_seconds: float) -> float:
    """Real seconds between wake-ups: a third of the lease, at most one second."""
    return min(lease_seconds / 3, 1.0)


class LeaseKeeper:
    """Renews ``owner``'s claims on ``request_ids`` until :meth:`stop`.

    Args:
        ledger: where the claims live.
        owner: the claim owner (the resolver's id).
        request_ids: the claimed rows (a task's reviews are claimed together).
        clock: epoch seconds, the same clock the claims were taken with.
        lease_seconds: the lease each renewal grants from ``clock()``.
        interval: real seconds between wake-ups.
        stats: counters to bump (``lease_renewed``, ``lease_lost``).
    """

    def __init__(
        self,
        ledger: Ledger,
        owner: str,
        request_ids: Sequence[str],
        *,
        clock: Callable[[], float],
        lease_seconds: float,
        interval: float,
        stats: Counter[str],
    ) -> None:
        self.ledger = ledger
        self.owner = owner
        self.request_ids = tuple(request_ids)
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.interval = interval
        self.stats = stats
        self._stop = threading.Event()
        self._busy = threading.Lock()  # held while a renewal runs
        self._started = False
        self._last = clock()

    def start(self) -> LeaseKeeper:
        """Start renewing (idempotent); returns self."""
        if not self._started:
            self._started = True
            _renewals.add(self)
        return self

    def stop(self) -> None:
        """Stop renewing and wait for a renewal in flight (idempotent)."""
        self._stop.set()
        _renewals.remove(self)
        if not _renewals.is_renewer():
            with self._busy:  # a renewal in flight finishes before stop returns
                pass

    def _wake(self) -> None:
        """One wake-up (on the renewer thread): renew if the clock moved a third of the lease."""
        with self._busy:
            if self._stop.is_set():
                return
            now = self.clock()
            if now - self._last < self.lease_seconds / 3:
                return
            self.renew(now)

    def renew(self, now: float) -> None:
        """Renew every claim now; a lost claim is logged (the resume cannot be recalled)."""
        for request_id in self.request_ids:
            if self._stop.is_set():
                return
            try:
                held = self.ledger.renew(
                    request_id, self.owner, now=now, lease_seconds=self.lease_seconds
                )
            except Exception:
                log.exception("lease renewal failed request_id=%s", request_id)
                continue
            if held:
                self.stats["lease_renewed"] += 1
            else:
                self.stats["lease_lost"] += 1
                log.warning(
                    "resume claim lost while its resume runs request_id=%s owner=%s",
                    request_id,
                    self.owner,
                )
        self._last = now


class _Renewals:
    """The process's renewer thread and the keepers it wakes."""

    LINGER = 5.0  # real seconds the idle thread stays for the next keeper

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[LeaseKeeper, float] = {}  # keeper -> next wake-up (monotonic)
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def add(self, keeper: LeaseKeeper) -> None:
        with self._cond:
            if self._pid != os.getpid():  # a forked child has no renewer thread
                self._pid, self._thread, self._due = os.getpid(), None, {}
            self._due[keeper] = time.monotonic() + keeper.interval
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="hitl-agent-lease", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def remove(self, keeper: LeaseKeeper) -> None:
        with self._cond:
            self._due.pop(keeper, None)

    def is_renewer(self) -> bool:
        return threading.current_thread() is self._thread

    def _run(self) -> None:
        idle_since: float | None = None
        while True:
            with self._cond:
                now = time.monotonic()
                if not self._due:
                    idle_since = now if idle_since is None else idle_since
                    if now - idle_since >= self.LINGER:
                        self._thread = None
                        return
                    self._cond.wait(self.LINGER - (now - idle_since))
                    continue
                idle_since = None
                due = [keeper for keeper, at in self._due.items() if at <= now]
                for keeper in due:
                    self._due[keeper] = now + keeper.interval
                if not due:
                    self._cond.wait(max(0.0, min(self._due.values()) - now))
                    continue
            for keeper in due:
                try:
                    keeper._wake()
                except Exception:  # renew() logs its own errors; never lose the thread
                    log.exception("lease wake-up failed")


_renewals = _Renewals()
