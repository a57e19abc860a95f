"""LeaseKeeper: renew a resume claim for as long as the resume runs (invariant 2).

An approved action may take longer than any lease. Without renewal, another replica's sweep
or a duplicate callback would take the claim over after ``lease_seconds`` and resume the same
interrupt a second time while the first resume still runs. Each keeper is woken every
``interval`` real seconds and renews the claims whenever the resolver's *clock* has moved by
a third of the lease since the last renewal (a FakeClock in tests); the wake-ups only bound
how late a renewal can be.

The ledger judges the lease on its own clock (issue 19, F6), so this process's clock only
paces the renewals. It is not trusted to run forward: a clock that stepped back (NTP)
renews at once instead of waiting for the old time to come round again, and the keeper's own
view of how long its lease has left counts only forward movement (:meth:`LeaseKeeper.expired`).

A renewal that fails (a ledger outage) is retried after 1 s, 2 s, 4 s … (at most a
thirtieth of the lease, 10 s of a 300 s lease), not a third of a lease later: the claim
must be renewed again before it runs out once the ledger answers (issue 19, F7). Until a
renewal lands, :meth:`LeaseKeeper.expired` says whether the lease may have run out, and
:attr:`LeaseKeeper.lost` whether another owner has the claim, so the resolver can refuse to
start the action under a claim it may no longer hold.

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
        clock: epoch seconds: paces the renewals and measures the lease's age (the ledger
            judges the lease itself on its own clock).
        lease_seconds: the lease each renewal grants.
        interval: real seconds between wake-ups.
        stats: counters to bump (``lease_renewed``, ``lease_lost``, ``lease_renew_failed``).
        claimed_at: ``clock()`` just before the claims were requested (default: now); the
            lease is counted from there.
    """

    #: The first retry of a failed renewal, in clock seconds (at most the cap below).
    RETRY_FIRST = 1.0
    #: The longest wait between retries, as a fraction of the lease.
    RETRY_CAP_SHARE = 1 / 30

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
        claimed_at: float | None = None,
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
        self._state = threading.Lock()  # guards the fields below; never held across IO
        self._started = False
        now = clock()
        start = now if claimed_at is None else min(claimed_at, now)
        self._last = start  # when the last renewal that landed (or the claim) was sent
        self._lost_ids: set[str] = set()  # claims another owner took (or that left resuming)
        self._retry = 0.0  # the wait before the next retry of a failed renewal (0: none)
        self._retry_at: float | None = None  # when to retry (clock time)
        # The lease's age, counted on the clock's forward movement only: a clock stepped
        # back never makes the lease look younger than it is.
        self._seen = now
        self._age = now - start

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

    @property
    def lost(self) -> bool:
        """True once a renewal found a claim gone (another owner took it over, or the row
        left ``resuming``). Final: the resume must not start its action."""
        with self._state:
            return bool(self._lost_ids)

    def expired(self, now: float | None = None) -> bool:
        """Whether this process can no longer be sure it holds every claim: :attr:`lost`, or
        no renewal (nor the claim) has landed within the lease as this keeper measures it:
        the clock's forward movement since the last one that landed was sent, never less
        than the ledger's own view of the lease. ``now``: the caller's ``clock()`` reading
        (default: read it). The resolver checks this before starting the action; it never
        waits for a renewal in flight."""
        return self.remaining(now) <= 0.0

    def remaining(self, now: float | None = None) -> float:
        """Clock seconds the lease surely has left (0 when lost or possibly run out)."""
        with self._state:
            self._observe(self.clock() if now is None else now)
            if self._lost_ids:
                return 0.0
            return max(0.0, self.lease_seconds - self._age)

    def _observe(self, now: float) -> None:
        """Age the lease by the clock's forward movement since the last reading."""
        if now > self._seen:
            self._age += now - self._seen
        self._seen = now

    def _due(self, now: float) -> bool:
        if now < self._last:
            # The clock stepped back. The ledger's lease is not on this clock: waiting for
            # the old time to come round again would let it run out (issue 19, F6).
            return True
        if self._retry_at is not None:  # a failed renewal: retry on the backoff schedule
            return now >= self._retry_at
        return now - self._last >= self.lease_seconds / 3

    def _wake(self) -> None:
        """One wake-up (on the renewer thread): renew when due (see :meth:`_due`)."""
        with self._busy:
            if self._stop.is_set():
                return
            now = self.clock()
            with self._state:
                self._observe(now)
                due = self._due(now)
            if due:
                self._renew(now)

    def renew(self, now: float) -> None:
        """Renew every claim now; a lost claim is logged (the resume cannot be recalled)."""
        with self._busy:
            with self._state:
                self._observe(now)
            self._renew(now)

    def _renew(self, now: float) -> None:
        with self._state:
            todo = [rid for rid in self.request_ids if rid not in self._lost_ids]
            retrying = bool(self._retry)
        failed = False
        for request_id in todo:
            if self._stop.is_set():
                return
            try:
                held = self.ledger.renew(
                    request_id, self.owner, now=now, lease_seconds=self.lease_seconds
                )
            except Exception:
                failed = True
                self.stats["lease_renew_failed"] += 1
                # Once per outage, not once per retry: the retries come every few seconds.
                if not retrying:
                    log.exception(
                        "lease renewal failed request_id=%s; retrying with backoff", request_id
                    )
                continue
            if held:
                self.stats["lease_renewed"] += 1
            else:
                with self._state:
                    self._lost_ids.add(request_id)
                self.stats["lease_lost"] += 1
                log.warning(
                    "resume claim lost while its resume runs request_id=%s owner=%s",
                    request_id,
                    self.owner,
                )
        with self._state:
            if failed:
                # Retry soon, backing off, and keep counting the lease from the last
                # renewal that landed (``_last`` stays): the ledger may not have this one.
                cap = self.lease_seconds * self.RETRY_CAP_SHARE
                self._retry = min(cap, self._retry * 2 if self._retry else self.RETRY_FIRST)
                self._retry_at = now + self._retry
                return
            self._retry, self._retry_at = 0.0, None
            # Every held claim now runs a full lease from a moment after ``now`` on the
            # ledger's clock; the forward movement seen since ``now`` is already its age.
            self._last = now
            self._age = max(0.0, self._seen - now)
        if retrying:
            log.warning("lease renewal works again owner=%s", self.owner)


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
