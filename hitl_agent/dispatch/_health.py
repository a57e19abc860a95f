"""Readiness of a served dispatcher, and the ``/healthz`` / ``/readyz`` routes that show it.

A worker that cannot reach its ledger or its checkpointer cannot resume anything. Before this
existed it said so once per sweep and per row (tens of thousands of lines an outage) while
looking healthy from outside. Now:

* :class:`Readiness` runs a trivial query against each store (``probes``: the ledger's, and
  the checkpointer's that ``hitl-agent worker`` adds), each with a timeout, and logs each
  store's outage **once** at ERROR when it starts and once at INFO when it ends;
* the dispatcher's recovery step asks it first and does nothing (and logs nothing) while a
  store is out, so nothing is attempted against a dead database; it catches up by itself on
  the first tick after the store answers again;
* :class:`HealthRoutes` answers ``GET /healthz`` (the process is alive: always 200) and
  ``GET /readyz`` (200 when every store answered just now and the recovery step ran
  recently; else 503 with a JSON body naming what failed) in front of the callback receiver,
  and ``GET /metrics`` (the Prometheus text exposition, :mod:`hitl_agent.observability`) when
  the dispatcher's metrics are given.

Every reason shown or logged passes through :func:`scrub`: no password of a connection URL.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from ..observability import LedgerMetrics

__all__ = ["HealthRoutes", "Readiness", "scrub"]

log = logging.getLogger("hitl_agent.dispatch")

Probe = Callable[[], object]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# ``scheme://user:secret@host`` and ``password=secret`` (libpq keyword form), wherever they
# appear in a driver's message.
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
_KEYWORD_PASSWORD = re.compile(r"(?i)(password\s*=\s*)('[^']*'|\S+)")


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with every URL password, ``password=`` value and each of ``secrets`` masked,
    on one line (a reason for a log line or a JSON body)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _URL_PASSWORD.sub(r"\1***@", text)
    text = _KEYWORD_PASSWORD.sub(r"\1***", text)
    return " ".join(text.split())


def url_secrets(*urls: str | None) -> tuple[str, ...]:
    """The passwords inside connection URLs (raw and percent-decoded), for :func:`scrub`."""
    found: list[str] = []
    for url in urls:
        if not url or "://" not in url:
            continue
        try:
            password = urlsplit(url).password
        except ValueError:
            continue
        if password:
            found += [password, unquote(password)]
    return tuple(found)


def _reason(exc: BaseException, secrets: tuple[str, ...]) -> str:
    text = str(exc)
    first = text.strip().splitlines()[0] if text.strip() else ""
    return scrub(f"{type(exc).__name__}: {first}" if first else type(exc).__name__, secrets)


class Readiness:
    """Can this dispatcher do its work right now? (see the module docstring)

    Args:
        clock: epoch seconds (the dispatcher's; a FakeClock in tests).
        stale_after: seconds after the recovery step's latest run at which ``/readyz`` says
            it has stopped.
        probe_timeout: real seconds a probe may take before its store counts as unreachable.
        secrets: strings never shown (the passwords of the connection URLs).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        stale_after: float = 60.0,
        probe_timeout: float = 5.0,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self.clock = clock
        self.stale_after = stale_after
        self.probe_timeout = probe_timeout
        self.secrets = secrets
        self.probes: dict[str, Probe] = {}
        """Name (``ledger``, ``checkpointer``) → a callable that runs a trivial query."""
        self.signals: dict[str, Callable[[], str]] = {}
        """Name (``hitl``) → what the process already knows, without a call: "ok" or why not
        (HITL.sh's reachability, from the poller's own calls: a probe would spend quota)."""
        self.failing: dict[str, str] = {}
        """The stores that did not answer at the latest check, with why (scrubbed)."""
        self.last_run: float | None = None
        """When (``clock``) the recovery step last completed a tick; None: never."""
        self.outages = 0
        """Outages logged so far (each once, at ERROR)."""
        self._lock = threading.Lock()
        # One probe in flight per store: a store that hangs is not asked again (a thread
        # each) until its first probe returns.
        self._inflight: dict[str, tuple[concurrent.futures.Future[object], float]] = {}

    def __repr__(self) -> str:
        return f"Readiness(probes={sorted(self.probes)}, failing={sorted(self.failing)})"

    def add(self, name: str, probe: Probe, *, secrets: tuple[str, ...] = ()) -> None:
        """Check ``probe`` (a trivial query of one store) as ``name``; ``secrets`` are never
        shown in its reasons."""
        self.probes[name] = probe
        self.secrets = tuple(dict.fromkeys(self.secrets + secrets))

    def _start(self, name: str, probe: Probe) -> tuple[concurrent.futures.Future[object], float]:
        """The store's probe in flight (started now unless one still runs) and until when
        (``time.monotonic``) it may take."""
        with self._lock:
            future, deadline = self._inflight.get(name, (None, 0.0))
            if future is not None and not future.done():
                return future, deadline
            future = concurrent.futures.Future()
            deadline = time.monotonic() + self.probe_timeout
            self._inflight[name] = (future, deadline)
        thread = threading.Thread(
            target=_run_into, args=(probe, future), name=f"hitl-probe-{name}", daemon=True
        )
        thread.start()
        return future, deadline

    def check(self) -> dict[str, str]:
        """Probe every store (at most ``probe_timeout`` each, concurrently); log each store
        that stopped or started answering, once; the stores failing now, with why."""
        started = {name: self._start(name, probe) for name, probe in self.probes.items()}
        results: dict[str, str | None] = {}
        for name, (future, deadline) in started.items():
            try:
                # A probe still hanging from an earlier check is not waited on past its own
                # deadline: a hung store is reported at once, not after a timeout per check.
                future.result(timeout=max(0.0, deadline - time.monotonic()))
                results[name] = None
            except concurrent.futures.TimeoutError:
                results[name] = f"no answer within {self.probe_timeout:g} s"
            except Exception as exc:
                results[name] = _reason(exc, self.secrets)
        return self._update(results)

    async def acheck(self) -> dict[str, str]:
        """Async twin of :meth:`check`. The probes run in threads of their own, never in the
        loop's default executor: during an outage that one fills up with ledger calls that
        wait for the database, and a readiness check queued behind them would never say so."""
        started = {name: self._start(name, probe) for name, probe in self.probes.items()}
        results: dict[str, str | None] = {}
        for name, (future, deadline) in started.items():
            # shield: a timed-out wait must not cancel the probe other checks share; and the
            # outcome is always retrieved (no "exception was never retrieved" line later).
            wrapped = asyncio.wrap_future(future)
            wrapped.add_done_callback(_retrieve)
            waiter = asyncio.shield(wrapped)
            try:
                await asyncio.wait_for(waiter, timeout=max(0.0, deadline - time.monotonic()))
                results[name] = None
            except TimeoutError:
                results[name] = f"no answer within {self.probe_timeout:g} s"
            except Exception as exc:
                results[name] = _reason(exc, self.secrets)
        return self._update(results)

    def _update(self, results: dict[str, str | None]) -> dict[str, str]:
        with self._lock:
            for name, reason in results.items():
                was = self.failing.get(name)
                if reason is None:
                    if was is not None:
                        del self.failing[name]
                        log.info("%s answers again: recovery catches up now", name)
                    continue
                self.failing[name] = reason
                if was is None:
                    self.outages += 1
                    log.error(
                        "the worker cannot reach its %s (%s); nothing is resumed until it "
                        "answers again, and /readyz answers 503",
                        name,
                        reason,
                    )
            return dict(self.failing)

    def mark_failed(self, name: str, exc: BaseException) -> None:
        """Record a store failure seen outside a probe (a query of the recovery step), with
        the same once-per-outage log line."""
        self._update({name: _reason(exc, self.secrets)})

    def ran(self) -> None:
        """The recovery step completed a tick now."""
        self.last_run = self.clock()

    def report(self, failing: dict[str, str]) -> tuple[bool, dict[str, Any]]:
        """``/readyz``'s verdict and body, from a fresh :meth:`check`'s result."""
        checks: dict[str, str] = {name: failing.get(name, "ok") for name in self.probes}
        checks.update({name: signal() for name, signal in self.signals.items()})
        if self.last_run is None:
            checks["recovery"] = "has not run (it starts with the served worker)"
        else:
            age = self.clock() - self.last_run
            checks["recovery"] = "ok" if age <= self.stale_after else f"last ran {age:.0f} s ago"
        ready = all(value == "ok" for value in checks.values())
        failed = {name: value for name, value in checks.items() if value != "ok"}
        body: dict[str, Any] = {"ready": ready, "checks": checks}
        if failed:
            body["failed"] = sorted(failed)
        return ready, body


def _retrieve(future: asyncio.Future[object]) -> None:
    if not future.cancelled():
        future.exception()


def _run_into(probe: Probe, future: concurrent.futures.Future[object]) -> None:
    try:
        result = probe()
    except BaseException as exc:
        future.set_exception(exc)
    else:
        future.set_result(result)


class HealthRoutes:
    """``GET /healthz`` and ``GET /readyz`` (and ``GET /metrics`` when ``metrics`` is given)
    in front of ``app`` (everything else, lifespan included, goes to ``app``): what
    :meth:`Dispatcher.serve` and ``hitl-agent worker`` serve. Mounted under a prefix, the
    routes are under it too."""

    def __init__(
        self, app: ASGIApp, readiness: Readiness, metrics: LedgerMetrics | None = None
    ) -> None:
        self.app = app
        self.readiness = readiness
        self.metrics = metrics

    def __repr__(self) -> str:
        return f"HealthRoutes({self.app!r})"

    def __getattr__(self, name: str) -> Any:
        # The receiver's attributes (path, accepted, ...) stay reachable through the wrapper.
        if name == "app":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope.get("path", "")
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            if path in ("/healthz", "/readyz"):
                await self._answer(path, scope, send)
                return
            if path == "/metrics" and self.metrics is not None:
                from ..observability._metrics import serve_metrics

                await serve_metrics(self.metrics, scope, send)
                return
        await self.app(scope, receive, send)

    async def _answer(self, path: str, scope: Scope, send: Send) -> None:
        if scope.get("method") != "GET":
            await _respond(send, 405, {"error": True, "msg": "method not allowed"})
            return
        if path == "/healthz":
            await _respond(send, 200, {"alive": True})
            return
        ready, body = self.readiness.report(await self.readiness.acheck())
        await _respond(send, 200 if ready else 503, body)


async def _respond(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
        (b"cache-control", b"no-store"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
