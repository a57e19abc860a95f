"""Dispatcher: receiver + poller + resolver for one keeper, and a way to serve them.

::

    dispatcher = keeper.dispatcher(GraphResumer(graph))
    app = dispatcher.asgi_app                 # mount at the callback URL's path
    dispatcher.poll_once()                    # one budgeted sweep (cron, tests)
    dispatcher.next_interval()                # seconds until the next one is due
    dispatcher.recover_once()                 # the ledger-only step: no API call
    dispatcher.serve(host="0.0.0.0", port=8000)   # receiver, recovery and poller together
    dispatcher.health_app                     # the receiver plus GET /healthz and /readyz
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from .._callback_paths import check_callback_path
from .._config import CallbackConfig, PollConfig, from_keywords, unset_if_none
from .._exceptions import ConfigError
from .._extras import require
from .._poll_health import PollHealth, log_failed_sweep
from ..ledger import LedgerError
from ..observability._metrics import LedgerMetrics, ResumeStats, resume_source
from ..observability._tracing import TracingResumer, tracing_available
from ._budget import CallBudget
from ._health import HealthRoutes, Readiness
from ._poller import Poller
from ._receiver import WebhookReceiver
from ._resolver import Resolver, Resumer

if TYPE_CHECKING:
    from .._client import HITLClient
    from .._exceptions import PollingError
    from ..decision import Decision
    from ..ledger import Ledger, ReviewRecord

__all__ = ["CompositeResumer", "Dispatcher"]

log = logging.getLogger("hitl_agent.dispatch")

_API_SILENCE = 60.0  # seconds without an answer from HITL.sh before /readyz says so


class CompositeResumer:
    """Routes rows without a thread to ``blocking`` and rows with one to ``graph``."""

    def __init__(self, blocking: Resumer | None, graph: Resumer | None) -> None:
        self.blocking = blocking
        self.graph = graph

    def _pick(self, record: ReviewRecord) -> Resumer | None:
        return self.blocking if record.thread_id is None else self.graph

    def resume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool:
        """Deliver through the matching resumer; False when there is none."""
        target = self._pick(record)
        return target.resume(record, decisions) if target is not None else False

    async def aresume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool:
        """Async twin of :meth:`resume`."""
        target = self._pick(record)
        return await target.aresume(record, decisions) if target is not None else False

    def finished(self, record: ReviewRecord) -> bool:
        """Ask the matching resumer; False when there is none."""
        target = self._pick(record)
        return target.finished(record) if target is not None else False

    async def afinished(self, record: ReviewRecord) -> bool:
        """Async twin of :meth:`finished`."""
        target = self._pick(record)
        return await target.afinished(record) if target is not None else False

    def proceed(self, record: ReviewRecord) -> bool:
        """Drive on through the matching resumer; False when there is none (or it cannot)."""
        target = self._pick(record)
        proceed = getattr(target, "proceed", None)
        return bool(proceed(record)) if proceed is not None else False

    async def aproceed(self, record: ReviewRecord) -> bool:
        """Async twin of :meth:`proceed`."""
        target = self._pick(record)
        aproceed = getattr(target, "aproceed", None)
        return bool(await aproceed(record)) if aproceed is not None else False


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Dispatcher:
    """Everything that turns answers into resumes, sharing one resolve path.

    Args:
        ledger: the gates' ledger.
        client: the HITL client (its key's quota is what the budget protects).
        resumer: where decisions go (``GraphResumer(graph)``, a blocking resumer, ...).
        loop_id: the loop whose rows this dispatcher polls.
        callbacks: a :class:`~hitl_agent.CallbackConfig`: ``url``, the base URL the
            requests' callbacks go to, and ``path``, where the receiver answers. The receiver
            answers under the URL's path (the root included: ``""``, tokens at
            ``/<token>``); ``path`` then defaults to it, and one that disagrees is a
            ConfigError (every callback would be a 404). Without a URL, ``path`` defaults to
            ``/hitl``. Its ``secret`` is not used here.
        polling: a :class:`~hitl_agent.PollConfig`: ``interval``, the shortest gap between
            sweeps in :meth:`serve` (default: 1 s; the schedule comes from the open rows and
            the budget, :meth:`Poller.next_interval`: fast while the budget is fresh, never
            faster than it allows); ``budget``, the call budget (default: 90 calls per
            sliding hour); ``deadline_grace``, seconds past a deadline before a row is
            decided fail-closed (300).
        clock: epoch seconds.
        lease_seconds: how long a resume claim lasts.
        row_filter: which open rows this dispatcher polls for (default: all of the loop's).
        webhooks: callbacks are expected (a callback URL is set): the derived schedule
            skips its early burst and leaves half the budget to the doorbells' GETs.
        recovery_interval: seconds between the served dispatcher's recovery steps
            (:meth:`recover_once`: decided rows and expired claims, from the ledger alone),
            which run whether or not it polls.
        callback_url, callback_path: the flat spellings of ``callbacks``' ``url`` and
            ``path``.
        budget, poll_interval, deadline_grace: the flat spellings of ``polling``'s
            ``budget``, ``interval`` and ``deadline_grace``. A setting given both flat and
            in its group is a ConfigError.
    """

    def __init__(
        self,
        *,
        ledger: Ledger,
        client: HITLClient,
        resumer: Resumer,
        loop_id: str | None,
        callbacks: CallbackConfig | None = None,
        polling: PollConfig | None = None,
        clock: Callable[[], float] = time.time,
        lease_seconds: float = 300.0,
        row_filter: Callable[[ReviewRecord], bool] | None = None,
        webhooks: bool = False,
        recovery_interval: float = 5.0,
        # The flat spellings of callbacks= and polling= (accepted as before):
        callback_url: str | None = None,
        callback_path: str | None = None,
        budget: CallBudget | None = None,
        poll_interval: float | None = None,
        deadline_grace: float | None = None,
    ) -> None:
        callbacks = from_keywords(
            CallbackConfig,
            callbacks,
            "callbacks",
            {
                "callback_url": ("url", unset_if_none(callback_url)),
                "callback_path": ("path", unset_if_none(callback_path)),
            },
        )
        polling = from_keywords(
            PollConfig,
            polling,
            "polling",
            {
                "budget": ("budget", unset_if_none(budget)),
                "poll_interval": ("interval", unset_if_none(poll_interval)),
                "deadline_grace": ("deadline_grace", unset_if_none(deadline_grace)),
            },
        )
        callback_url, callback_path = callbacks.url, callbacks.path
        budget, poll_interval = polling.budget, polling.interval
        deadline_grace = polling.deadline_grace
        receiver_path = check_callback_path(callback_url, callback_path)
        self.budget = budget or CallBudget(clock=clock)
        self.resolver = Resolver(
            ledger=ledger,
            client=client,
            resumer=resumer,
            budget=self.budget,
            clock=clock,
            owner=_owner(),
            lease_seconds=lease_seconds,
        )
        self.poller = Poller(
            self.resolver,
            loop_id=loop_id,
            deadline_grace=deadline_grace,
            fail_closed_after_outage=polling.fail_closed_after_outage,
            row_filter=row_filter,
            poll_interval=poll_interval,
            webhooks=webhooks,
        )
        self.poll_interval = poll_interval
        self.polling = PollConfig(
            poll_interval, self.budget, deadline_grace, polling.fail_closed_after_outage
        )
        """The polling settings in use (``budget`` is the one this dispatcher spends)."""
        self.callbacks = CallbackConfig(
            url=callback_url,
            path=receiver_path,
            signing_secret=callbacks.signing_secret,
            trust_signed_bodies=callbacks.trust_signed_bodies,
        )
        """The callback settings in use (``path``: where the receiver answers)."""
        self.health = PollHealth()
        """Persistent sweep failures in a row (see :attr:`poll_error`)."""
        self._poll_task: asyncio.Task[None] | None = None
        self.receiver = WebhookReceiver(
            ledger=ledger,
            resolver=self.resolver,
            path=receiver_path,
            on_startup=self._start_polling,
            on_shutdown=self._stop_polling,
            signing_secret=callbacks.signing_secret,
            trust_signed_bodies=callbacks.trust_signed_bodies,
        )
        self.poll_on_startup: bool | None = None
        """Set by :meth:`serve`, :meth:`running` (and ``hitl-agent bridge``): a bool starts
        the recovery loop with the ASGI lifespan, True the poll loop too. None (an app mounted
        in yours) starts no background task."""
        if recovery_interval <= 0:
            raise ConfigError(
                "recovery_interval", f"{recovery_interval} is not positive", "pass e.g. 5.0"
            )
        self.recovery_interval = recovery_interval
        self.readiness = Readiness(clock=clock, stale_after=max(120.0, 10 * recovery_interval))
        """What ``/readyz`` reports: the stores' probes (the ledger's here; ``hitl-agent
        worker`` adds the checkpointer's) and when the recovery step last ran."""
        self.readiness.add("ledger", lambda: ledger.list_open(limit=1))
        self._api_silent_since: float | None = None
        self._api_error = ""
        self.readiness.signals["hitl"] = self._api_reach
        # Resumes counted by source as the resolver counts them (no hook in the resolver).
        self.resolver.stats = ResumeStats(self.resolver.stats)
        if tracing_available():  # hitl.resume / hitl.review spans (docs/observability.md)
            self.resolver.resumer = TracingResumer(self.resolver.resumer, ledger)
        self.metrics = LedgerMetrics(
            ledger, budget=self.budget, client=client, stats=self.resolver.stats, clock=clock
        )
        """What ``GET /metrics`` serves (docs/observability.md)."""
        self._recovery_task: asyncio.Task[None] | None = None
        self._recovery_failed: set[str] = set()

    def __repr__(self) -> str:
        return f"Dispatcher(path={self.receiver.path!r}, budget={self.budget!r})"

    @property
    def asgi_app(self) -> WebhookReceiver:
        """The callback receiver (a pure ASGI app)."""
        return self.receiver

    @property
    def health_app(self) -> HealthRoutes:
        """The receiver with ``GET /healthz`` (alive) and ``GET /readyz`` (200 when the ledger
        and checkpointer answer and the recovery step ran recently; else 503 naming what
        failed) and ``GET /metrics`` (Prometheus) in front: what :meth:`serve`,
        :meth:`running` and ``hitl-agent worker`` serve. Mount it instead of
        :attr:`asgi_app` to get the routes in your app."""
        return HealthRoutes(self.receiver, self.readiness, self.metrics)

    @resume_source("manual")
    def resolve(self, request_id: str) -> list[Decision]:
        """Resolve one request now (a manual resume); the decisions this call delivered."""
        return self.resolver.resolve(request_id)

    @resume_source("manual")
    async def aresolve(self, request_id: str) -> list[Decision]:
        """Async twin of :meth:`resolve`."""
        return await self.resolver.aresolve(request_id)

    @resume_source("poll")
    def poll_once(self) -> list[Decision]:
        """One budgeted sweep; the decisions it delivered. Its outcome is recorded in
        :attr:`health` (see :attr:`poll_error`)."""
        try:
            delivered = self.poller.poll_once()
        except Exception as exc:
            self._record(exc, answered=False)
            raise
        self._record(self.poller.error, answered=self.poller.answered > 0)
        return delivered

    @resume_source("poll")
    async def apoll_once(self) -> list[Decision]:
        """Async twin of :meth:`poll_once`."""
        try:
            delivered = await self.poller.apoll_once()
        except Exception as exc:
            self._record(exc, answered=False)
            raise
        self._record(self.poller.error, answered=self.poller.answered > 0)
        return delivered

    def _api_reach(self) -> str:
        """``/readyz``'s ``hitl`` check: "ok" unless the sweeps' API calls have got no answer
        for a minute or more (any error: a refused connection counts), or keep failing in a
        way retrying cannot fix (:attr:`poll_error`). Read from the sweeps: no extra call."""
        if self.health.error is not None:
            return f"polling fails: {self.health.error}"
        since = self._api_silent_since
        silent = 0.0 if since is None else self.resolver.clock() - since
        if silent >= _API_SILENCE:
            return f"no answer from HITL.sh for {silent:.0f} s ({self._api_error})"
        return "ok"

    def _record(self, error: BaseException | None, *, answered: bool) -> None:
        if answered:
            self._api_silent_since = None
        elif error is not None and not isinstance(error, LedgerError):
            self._api_error = type(error).__name__
            if self._api_silent_since is None:
                self._api_silent_since = self.resolver.clock()
        if isinstance(error, LedgerError):
            # Our own store is out, not the API: no polling failure (no backoff that would
            # outlast the outage); readiness says so, once per outage.
            self.readiness.mark_failed("ledger", error)
            return
        health = self.health
        was_failing = health.failing
        health.record(error, answered=answered)
        if health.failing and not was_failing:
            log.error("%s", health.error)
        elif was_failing and not health.failing:
            log.warning("poll sweeps get answers again")

    # -- recovery: the ledger alone -------------------------------------------------------

    def _recoverable(self) -> list[str]:
        """Request ids the ledger alone says are ready: ``decided`` rows, and ``resuming``
        rows whose claim's lease ran out (their worker died mid-resume)."""
        now = self.resolver.clock()
        poller = self.poller
        ready: list[str] = []
        for row in self.resolver.ledger.list_open(limit=poller.max_rows):
            if row.request_id is None:
                continue
            if not poller.mine(row):
                continue
            expired = row.lease_until is None or row.lease_until <= now
            if row.state == "decided" or (row.state == "resuming" and expired):
                ready.append(row.request_id)
        return ready

    @resume_source("recovery")
    def recover_once(self) -> list[Decision]:
        """The recovery step: deliver what the ledger alone shows ready (``decided`` rows,
        ``resuming`` rows whose lease expired), with no API call; the decisions delivered.

        It runs on its own schedule in every served mode (``serve(poll=False)``, ``hitl-agent
        worker --no-poll`` included) and at start-up: a decision whose callback was accepted
        by a worker that died is resumed without any listing. It first probes the stores
        (:attr:`readiness`); while one does not answer it attempts nothing and logs nothing
        beyond the outage's one ERROR line.
        """
        if self.readiness.check():
            self.readiness.ran()
            return []
        try:
            ids = self._recoverable()
        except Exception as exc:
            self.readiness.mark_failed("ledger", exc)
            self.readiness.ran()
            return []
        delivered: list[Decision] = []
        for rid in ids:
            self.readiness.ran()
            failed = self.resolver.stats["resume_failed"]
            try:
                got = self.resolver.deliver(rid)
            except Exception as exc:
                if self._recovery_error(rid, exc, self.readiness.check()):
                    break
                continue
            delivered += got
            if self.resolver.stats["resume_failed"] > failed and self.readiness.check():
                break  # a store went out mid-step: the rest waits for it
            self._recovery_failed.discard(rid)
        self.readiness.ran()
        return delivered

    @resume_source("recovery")
    async def arecover_once(self) -> list[Decision]:
        """Async twin of :meth:`recover_once` (ledger work and probes in worker threads)."""
        if await self.readiness.acheck():
            self.readiness.ran()
            return []
        try:
            ids = await asyncio.to_thread(self._recoverable)
        except Exception as exc:
            self.readiness.mark_failed("ledger", exc)
            self.readiness.ran()
            return []
        delivered: list[Decision] = []
        for rid in ids:
            self.readiness.ran()
            failed = self.resolver.stats["resume_failed"]
            try:
                got = await self.resolver.adeliver(rid)
            except Exception as exc:
                if self._recovery_error(rid, exc, await self.readiness.acheck()):
                    break
                continue
            delivered += got
            if self.resolver.stats["resume_failed"] > failed and await self.readiness.acheck():
                break  # a store went out mid-step: the rest waits for it
            self._recovery_failed.discard(rid)
        self.readiness.ran()
        return delivered

    def _recovery_error(self, rid: str, exc: Exception, failing: dict[str, str]) -> bool:
        """A delivery raised: stop the step when a store is out (readiness logged it once);
        else warn once per request (a row that keeps failing is not logged every tick)."""
        if failing:
            return True
        if rid not in self._recovery_failed:
            self._recovery_failed.add(rid)
            log.warning("recovery of request_id=%s failed; retried every step", rid, exc_info=exc)
        return False

    async def run_recovery(self, interval: float | None = None) -> None:
        """:meth:`arecover_once` every ``interval`` seconds (default
        :attr:`recovery_interval`) until cancelled; the first one at once (start-up)."""
        while True:
            try:
                await self.arecover_once()
            except Exception:
                log.exception("recovery step failed")
            await asyncio.sleep(self.recovery_interval if interval is None else interval)

    @property
    def poll_error(self) -> PollingError | None:
        """Why sweeps stopped being worth waiting on: a :class:`PollingError` once the latest
        ``health.limit`` (3) sweeps or more all failed with an error no retry fixes (a
        rejected key, a server that is not the HITL API, a ConfigError, a bug; its
        ``__cause__``). None otherwise, outages and 429s included (those are retried); a
        sweep that gets an answer clears it."""
        return self.health.error

    def next_interval(self) -> float:
        """Seconds until the next sweep (fixed, or derived from the open rows and budget)."""
        return self.poller.next_interval()

    async def run_poller(self, interval: float | None = None) -> None:
        """Sweep on the schedule until cancelled (every ``interval`` seconds when given).

        A sweep that fails transiently (an outage, a 5xx, a 429) is logged and the schedule
        goes on. Persistent failures (a rejected key, a bug: see :attr:`poll_error`) stretch
        the gap, doubling with each one in a row up to 5 minutes; the third in a row is
        logged once at ERROR and :attr:`poll_error` holds it until a sweep gets an answer
        again. The loop never stops on its own: a receiver keeps taking callbacks, and a
        key fixed at HITL.sh (a 403) is picked up by the next sweep.
        """
        while True:
            if self.readiness.failing and await self.readiness.acheck():
                # A store is out (logged once, by readiness): a sweep could record nothing
                # and resume nothing. Ask again at the recovery step's pace.
                await asyncio.sleep(self.recovery_interval)
                continue
            try:
                await self.apoll_once()
            except LedgerError as exc:
                self.readiness.mark_failed("ledger", exc)
            except Exception as exc:
                log_failed_sweep(log, "poll sweep failed", exc, self.health)
            gap = self.next_interval() if interval is None else interval
            await asyncio.sleep(self.health.backoff(gap))

    async def _start_polling(self) -> None:
        if self.poll_on_startup is None:
            return  # mounted in the user's app: no background task unless asked for
        # Recovery runs in every served mode: without polling too, or a decision whose
        # callback a dead worker accepted would stay stranded (issue 20 F4).
        if self._recovery_task is None:
            self._recovery_task = asyncio.create_task(self.run_recovery())
        if self.poll_on_startup and self._poll_task is None:
            self._poll_task = asyncio.create_task(self.run_poller())

    async def _stop_polling(self) -> None:
        tasks = [self._poll_task, self._recovery_task]
        self._poll_task = self._recovery_task = None
        for task in tasks:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def serve(self, host: str = "127.0.0.1", port: int = 8000, *, poll: bool = True) -> None:
        """Run the receiver with ``/healthz`` and ``/readyz`` (:attr:`health_app`, uvicorn)
        and the recovery loop and, unless ``poll=False``, the poller, until stopped.
        ``poll=False`` means no API listing; the ledger-only recovery still runs."""
        (uvicorn,) = require("server", "dispatcher.serve()", "uvicorn")

        self.poll_on_startup = poll
        # No access log: every callback path carries a capability token.
        uvicorn.run(
            self.health_app, host=host, port=port, lifespan="on", log_level="info", access_log=False
        )

    @contextlib.contextmanager
    def running(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        poll: bool = True,
        startup_timeout: float = 15.0,
    ) -> Iterator[Dispatcher]:
        """:meth:`serve` in a background thread for the ``with`` block (agent and receiver in
        one process, as in the quickstart); stopped, and the poller cancelled, on exit.

        Raises:
            RuntimeError: the server did not start within ``startup_timeout`` (e.g. the port
                is taken).
        """
        (uvicorn,) = require("server", "dispatcher.running()", "uvicorn")
        self.poll_on_startup = poll
        server = uvicorn.Server(
            uvicorn.Config(
                self.health_app,
                host=host,
                port=port,
                lifespan="on",
                log_level="warning",
                access_log=False,  # callback paths carry capability tokens
            )
        )
        failed: list[BaseException] = []

        def run() -> None:
            try:
                server.run()
            except BaseException as exc:  # uvicorn exits (SystemExit) when it cannot bind
                failed.append(exc)

        thread = threading.Thread(target=run, name=f"hitl-dispatcher:{port}", daemon=True)
        thread.start()
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                thread.join(timeout=5)
                why = f" ({type(failed[0]).__name__}: {failed[0]})" if failed else ""
                raise RuntimeError(
                    f"the dispatcher did not start on {host}:{port}{why}; is the port taken?"
                )
            time.sleep(0.01)
        try:
            yield self
        finally:
            server.should_exit = True
            thread.join(timeout=10)
