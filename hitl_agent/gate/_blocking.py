"""Blocking mode: one poll thread per process serves every waiting ``review()`` (invariant 7).

A blocked caller registers a future for its request id (an ``asyncio.Future`` for
``areview``). The hub's single daemon thread sweeps each keeper's dispatcher on that
dispatcher's own schedule (:meth:`Dispatcher.next_interval`: derived from the open rows and
the call budget) and the :class:`BlockingResumer` completes the futures; a served receiver
completes them too. Registering never sweeps: waits registered between two sweeps are served
by the next scheduled one, so 10,000 waits cost the sweeps of one, not 10,000 listings. The
thread exits when nobody waits.

Fail fast, never hang: sweeps that keep failing with an error no retry fixes (a rejected
key, a server that is not the HITL API, a ConfigError, a TypeError: the dispatcher's
:attr:`~hitl_agent.dispatch.Dispatcher.poll_error` policy) fail every wait on that
dispatcher with a :class:`PollingError` after three in a row, instead of leaving them to
their deadline. Outages, 5xx and 429s are retried on the schedule as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, TypeAlias

from .._poll_health import log_failed_sweep, polling_error

if TYPE_CHECKING:
    from .._exceptions import PollingError
    from ..decision import Decision
    from ..dispatch import Dispatcher
    from ..ledger import ReviewRecord

# A blocked thread's future, or an event loop's (see WaitHub.register_async).
_Waiter: TypeAlias = "Future[Decision] | asyncio.Future[Decision]"

__all__ = ["BlockingResumer", "WaitHub", "hub"]

log = logging.getLogger("hitl_agent.gate")


class WaitHub:
    """The process-wide registry of blocked reviews and its one poll thread.

    Args:
        clock: monotonic seconds the schedule is kept in.
        autostart: start the poll thread on the first wait; False leaves the sweeps to
            :meth:`step` (tests drive it on a FakeClock).
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, autostart: bool = True
    ) -> None:
        self.clock = clock
        self.autostart = autostart
        self._lock = threading.Lock()
        self._futures: defaultdict[str, list[_Waiter]] = defaultdict(list)
        self._sources: dict[int, tuple[Dispatcher, set[str]]] = {}
        self._due: dict[int, float] = {}
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self.sweeps = 0

    @property
    def poll_threads(self) -> int:
        """How many poll threads run now (0 or 1)."""
        thread = self._thread
        return 1 if thread is not None and thread.is_alive() else 0

    def register(self, dispatcher: Dispatcher, request_id: str) -> Future[Decision]:
        """A future completed with the decision for ``request_id`` (no sweep runs for it now:
        the dispatcher's next scheduled sweep covers it)."""
        future: Future[Decision] = Future()
        self._add(dispatcher, request_id, future)
        return future

    def register_async(self, dispatcher: Dispatcher, request_id: str) -> asyncio.Future[Decision]:
        """:meth:`register` for a caller in an event loop; call it on the loop's thread.

        The waiter is an ``asyncio.Future`` of the running loop, which :meth:`complete` sets
        through ``call_soon_threadsafe``: about 2 KB a wait less than a
        ``concurrent.futures.Future`` (a Condition with its lock and deque) bridged by
        ``asyncio.wrap_future`` (a second future and two chained callbacks), which matters
        with thousands of waits in one loop.
        """
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._add(dispatcher, request_id, future)
        return future

    def _add(self, dispatcher: Dispatcher, request_id: str, future: _Waiter) -> None:
        with self._lock:
            self._futures[request_id].append(future)
            key = id(dispatcher)
            entry = self._sources.setdefault(key, (dispatcher, set()))
            entry[1].add(request_id)
            if key not in self._due:
                # A dispatcher new to the hub gets its first sweep one schedule step from
                # now, which every wait registered meanwhile shares.
                self._due[key] = self.clock() + dispatcher.next_interval()
                self._wake.set()  # re-plan the sleep; this runs no sweep
            if self.autostart and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(
                    target=self._run, name="hitl-agent-wait-hub", daemon=True
                )
                self._thread.start()

    def forget(self, request_id: str, future: _Waiter) -> None:
        """Drop a waiter (its caller gave up)."""
        with self._lock:
            waiters = self._futures.get(request_id, [])
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self._drop(request_id)

    def _drop(self, request_id: str) -> None:
        self._futures.pop(request_id, None)
        for key, (_, ids) in list(self._sources.items()):
            ids.discard(request_id)
            if not ids:
                del self._sources[key]
                self._due.pop(key, None)

    def complete(self, request_id: str, decision: Decision) -> bool:
        """Complete every waiter of ``request_id``; False when nobody waits here."""
        with self._lock:
            waiters = self._futures.get(request_id, [])
            self._drop(request_id)
        for future in waiters:
            if isinstance(future, asyncio.Future):
                _set_soon(future, decision)
            elif not future.done():
                future.set_result(decision)
        return bool(waiters)

    def _fail(self, key: int, dispatcher: Dispatcher) -> None:
        """Fail every wait on ``dispatcher``: its sweeps keep failing persistently."""
        cause = dispatcher.health.cause
        assert cause is not None
        with self._lock:
            entry = self._sources.get(key)
            ids = sorted(entry[1]) if entry is not None else []
            waiters = [(rid, self._futures.get(rid, [])) for rid in ids]
            for rid in ids:
                self._drop(rid)
        for rid, futures in waiters:
            for future in futures:
                error = polling_error(cause, dispatcher.health.failures, rid)
                if isinstance(future, asyncio.Future):
                    _fail_soon(future, error)
                elif not future.done():
                    future.set_exception(error)
        if waiters:
            log.warning(
                "%d blocked review(s) stopped waiting: %s", len(waiters), type(cause).__name__
            )

    def wake(self) -> None:
        """Sweep every source now instead of at its scheduled time."""
        with self._lock:
            now = self.clock()
            for key in self._due:
                self._due[key] = now
        self._wake.set()

    @property
    def waiting(self) -> int:
        """Requests someone waits for."""
        with self._lock:
            return len(self._futures)

    def step(self) -> float | None:
        """Sweep the dispatchers that are due; seconds until the next is, None when idle."""
        with self._lock:
            now = self.clock()
            due = [
                (key, dispatcher)
                for key, (dispatcher, ids) in self._sources.items()
                if ids and self._due.get(key, now) <= now
            ]
        for key, dispatcher in due:
            health = dispatcher.health
            failures = health.failures
            try:
                dispatcher.poll_once()
            except Exception as exc:
                log_failed_sweep(log, "blocking-mode sweep failed", exc, health)
            self.sweeps += 1
            if health.failures > failures and health.failing:
                self._fail(key, dispatcher)  # this sweep failed again, past the limit
            interval = dispatcher.next_interval()
            with self._lock:
                if key in self._sources:
                    self._due[key] = self.clock() + interval
        with self._lock:
            if not self._due:
                return None
            return max(0.0, min(self._due.values()) - self.clock())

    def _run(self) -> None:
        while True:
            delay = self.step()
            with self._lock:
                if delay is None and not self._sources:
                    self._thread = None
                    return
            self._wake.wait(delay if delay is not None else 1.0)
            self._wake.clear()


def _set_soon(future: asyncio.Future[Decision], decision: Decision) -> None:
    """Set an event-loop waiter from any thread (asyncio futures are not thread-safe)."""
    with contextlib.suppress(RuntimeError):  # its loop is closed: nobody is left to wait
        future.get_loop().call_soon_threadsafe(_set_if_pending, future, decision)


def _set_if_pending(future: asyncio.Future[Decision], decision: Decision) -> None:
    if not future.done():  # cancelled meanwhile (a timeout), or completed by another copy
        future.set_result(decision)


def _fail_soon(future: asyncio.Future[Decision], error: PollingError) -> None:
    """:func:`_set_soon` for an error."""
    with contextlib.suppress(RuntimeError):
        future.get_loop().call_soon_threadsafe(_fail_if_pending, future, error)


def _fail_if_pending(future: asyncio.Future[Decision], error: PollingError) -> None:
    if not future.done():
        future.set_exception(error)


hub = WaitHub()
"""The process's hub."""


class BlockingResumer:
    """Delivers decisions of thread-less rows to callers blocked in this process."""

    def __init__(self, wait_hub: WaitHub | None = None) -> None:
        self.hub = wait_hub or hub

    def resume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool:
        """Complete the waiters of the row's request; False when none waits here."""
        if record.thread_id is not None:
            return False
        delivered = False
        for decision in decisions:
            delivered = self.hub.complete(decision.request_id, decision) or delivered
        return delivered

    async def aresume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool:
        """Same as :meth:`resume` (it never blocks)."""
        return self.resume(record, decisions)

    def finished(self, record: ReviewRecord) -> bool:
        """Never: a blocking review may be waited on again (the same key, another process)."""
        return False

    async def afinished(self, record: ReviewRecord) -> bool:
        """Same as :meth:`finished`."""
        return False

    def proceed(self, record: ReviewRecord) -> bool:
        """Never: a blocked caller has nothing to drive on (it runs its own action)."""
        return False

    async def aproceed(self, record: ReviewRecord) -> bool:
        """Same as :meth:`proceed`."""
        return False
