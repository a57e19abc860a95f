"""Dispatcher: receiver + poller + resolver for one keeper, and a way to serve them.

::

    dispatcher = keeper.dispatcher(GraphResumer(graph))
    app = dispatcher.asgi_app                 # mount at the callback URL's path
    dispatcher.poll_once()                    # one budgeted sweep (cron, tests)
    dispatcher.next_interval()                # seconds until the next one is due
    dispatcher.serve(host="0.0.0.0", port=8000)   # receiver and poller together
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
from .._extras import require
from .._poll_health import PollHealth, log_failed_sweep
from ._budget import CallBudget
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
        self.callbacks = CallbackConfig(url=callback_url, path=receiver_path)
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
        )
        self.poll_on_startup = False

    def __repr__(self) -> str:
        return f"Dispatcher(path={self.receiver.path!r}, budget={self.budget!r})"

    @property
    def asgi_app(self) -> WebhookReceiver:
        """The callback receiver (a pure ASGI app)."""
        return self.receiver

    def resolve(self, request_id: str) -> list[Decision]:
        """Resolve one request now (a manual resume); the decisions this call delivered."""
        return self.resolver.resolve(request_id)

    async def aresolve(self, request_id: str) -> list[Decision]:
        """Async twin of :meth:`resolve`."""
        return await self.resolver.aresolve(request_id)

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

    async def apoll_once(self) -> list[Decision]:
        """Async twin of :meth:`poll_once`."""
        try:
            delivered = await self.poller.apoll_once()
        except Exception as exc:
            self._record(exc, answered=False)
            raise
        self._record(self.poller.error, answered=self.poller.answered > 0)
        return delivered

    def _record(self, error: BaseException | None, *, answered: bool) -> None:
        health = self.health
        was_failing = health.failing
        health.record(error, answered=answered)
        if health.failing and not was_failing:
            log.error("%s", health.error)
        elif was_failing and not health.failing:
            log.warning("poll sweeps get answers again")

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
            try:
                await self.apoll_once()
            except Exception as exc:
                log_failed_sweep(log, "poll sweep failed", exc, self.health)
            gap = self.next_interval() if interval is None else interval
            await asyncio.sleep(self.health.backoff(gap))

    async def _start_polling(self) -> None:
        if self.poll_on_startup and self._poll_task is None:
            self._poll_task = asyncio.create_task(self.run_poller())

    async def _stop_polling(self) -> None:
        task, self._poll_task = self._poll_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def serve(self, host: str = "127.0.0.1", port: int = 8000, *, poll: bool = True) -> None:
        """Run the receiver (uvicorn) and, unless ``poll=False``, the poller, until stopped."""
        (uvicorn,) = require("server", "dispatcher.serve()", "uvicorn")

        self.poll_on_startup = poll
        # No access log: every callback path carries a capability token.
        uvicorn.run(
            self.receiver, host=host, port=port, lifespan="on", log_level="info", access_log=False
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
                self.receiver,
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
