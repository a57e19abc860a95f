"""LeaseKeeper: renew a resume claim for as long as the resume runs (invariant 2).

An approved action may take longer than any lease. Without renewal, another replica's sweep
or a duplicate callback would take the claim over after ``lease_seconds`` and resume the same
interrupt a second time while the first resume still runs. The keeper is a daemon thread
that wakes every ``interval`` real seconds and renews the claims whenever the resolver's
*clock* has moved by a third of the lease since the last renewal: time is the clock's (a
FakeClock in tests, the server's in production), the wake-ups only bound how late a
renewal can be.
"""

from __future__ import annotations

import logging
import threading
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
        self._thread: threading.Thread | None = None
        self._last = clock()

    def start(self) -> LeaseKeeper:
        """Start renewing (idempotent); returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="hitl-agent-lease", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop renewing and wait for a renewal in flight (idempotent)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            now = self.clock()
            if now - self._last < self.lease_seconds / 3:
                continue
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
