"""What the reliability matrices share (T1 crash matrix, T2 webhook storm, T3 races).

* :class:`HITLServer` / :func:`serve_hitl`: the local HITL server on a loopback port (uvicorn
  in a thread, SQLite file), so agent processes that are killed never take it down with them.
* :func:`open_store`: where one backend keeps the ledger, the checkpoints and the action's
  effects (``sqlite``: three files; ``postgres``: one fresh schema, dropped afterwards).
* :class:`Stress`: how big the matrices are. Default: a small seeded sample.
  ``HITL_STRESS=full`` (``make stress``): the full matrices. ``HITL_SEED`` replays a run.
* :func:`record_summary`: the counts each matrix measured, printed at the end of the session
  (and appended to ``$HITL_RELIABILITY_REPORT`` as JSON lines when that is set).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from crash_agent import CALLBACK_URL, SECRET, Store, build_graph
from pg_support import require_postgres

from hitl_agent import HITLClient, RetryPolicy
from hitl_agent.dispatch import CallBudget
from hitl_agent.gate import CONTEXT_KEY, Gatekeeper
from hitl_agent.server import create_app
from hitl_agent.testing import ScriptedReviewer

FULL = os.environ.get("HITL_STRESS") == "full"
SEED = int(os.environ.get("HITL_SEED", "20240917"))

SUMMARIES: list[dict[str, Any]] = []


@dataclass(frozen=True)
class Stress:
    full: bool
    seed: int

    def pick(self, default: int, full: int) -> int:
        return full if self.full else default


def record_summary(summary: dict[str, Any]) -> None:
    """Keep a matrix's counts for the end-of-session report."""
    SUMMARIES.append(summary)
    target = os.environ.get("HITL_RELIABILITY_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(summary) + "\n")


# -- the local HITL server ----------------------------------------------------------------


@dataclass
class HITLServer:
    """A running local server: API key, loop, a client and a reviewer over real HTTP."""

    base_url: str
    api_key: str
    loop_id: str
    client: HITLClient
    reviewer: ScriptedReviewer
    app: Any
    http: Any = None

    def add_reviewer(self, email: str) -> ScriptedReviewer:
        """Another reviewer account of the server's loop (a distinct identity for a quorum)."""
        token = f"token-{email}-0123456789"
        self.app.state.hitl.add_reviewer(email, token, [self.loop_id], name=email.split("@")[0])
        return ScriptedReviewer(self.http, token, self.base_url)

    def requests_for(self, thread_id: str) -> list[Any]:
        """Every request on the server whose stamped correlation key belongs to ``thread_id``."""
        prefix = f"lg|{thread_id}|"
        return [
            request
            for key, requests in self.requests_by_key().items()
            if key.startswith(prefix)
            for request in requests
        ]

    def requests_by_key(self) -> dict[str, list[Any]]:
        """All requests of the loop, grouped by correlation key (one list call per 100)."""
        grouped: dict[str, list[Any]] = {}
        for request in self.client.requests.iter(loop_id=self.loop_id):
            stamp = (request.context or {}).get(CONTEXT_KEY)
            if isinstance(stamp, dict):
                grouped.setdefault(str(stamp.get("key")), []).append(request)
        return grouped


def serve_asgi(app: Any) -> tuple[Any, threading.Thread, int]:
    """Run ``app`` with uvicorn in a daemon thread on 127.0.0.1:<free port>.

    The socket is made with ``IPPROTO_TCP``: asyncio sets ``TCP_NODELAY`` only on accepted
    sockets whose ``proto`` is TCP, and with ``proto == 0`` every response written in two
    pieces waited ≈ 40 ms for the client's delayed ACK (bench/bench_loopback.py).
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", lifespan="on", timeout_keep_alive=30, backlog=2048
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the uvicorn server did not start")
        time.sleep(0.01)
    return server, thread, port


def stop_asgi(server: Any, thread: threading.Thread) -> None:
    """Stop a server started by :func:`serve_asgi`."""
    server.should_exit = True
    thread.join(30)


@contextlib.contextmanager
def serve_hitl(db: Path) -> Iterator[HITLServer]:
    """The local HITL server on 127.0.0.1:<free port>, outliving every agent process."""
    app = create_app(db, scheduler_interval=None)  # callbacks are delivered by the tests
    creds = app.state.hitl.bootstrap()
    server, thread, port = serve_asgi(app)
    base_url = f"http://127.0.0.1:{port}/v1"
    http = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=64))
    client = HITLClient(
        creds.api_key, base_url=base_url, http_client=http, retry=RetryPolicy(max_retries=0)
    )
    try:
        yield HITLServer(
            base_url=base_url,
            api_key=creds.api_key,
            loop_id=creds.loop_id,
            client=client,
            reviewer=ScriptedReviewer(http, creds.reviewer_token, base_url),
            app=app,
            http=http,
        )
    finally:
        http.close()
        stop_asgi(server, thread)
        app.state.hitl.close()


# -- backends -----------------------------------------------------------------------------


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def open_store(backend: str, directory: Path) -> Store:
    """A fresh, set-up store for ``backend`` (sqlite: files in ``directory``; postgres: a
    new schema). Call ``drop()`` when done."""
    if backend == "sqlite":
        directory.mkdir(parents=True, exist_ok=True)
        store = Store("sqlite", str(directory))
    else:
        require_postgres()
        store = Store("postgres", f"hitl_rel_{uuid.uuid4().hex[:12]}")
    store.setup()
    return store


def open_replica(
    stack: contextlib.ExitStack, server: HITLServer, store: Store, *, budget: int, pool: int
) -> tuple[Any, Any]:
    """One dispatcher replica's keeper and graph: its own client, ledger and checkpointer,
    all closed by ``stack``. The local server has no rate limit, so ``budget`` is large."""
    http = stack.enter_context(httpx.Client(timeout=60))
    client = HITLClient(
        server.api_key,
        base_url=server.base_url,
        http_client=http,
        retry=RetryPolicy(max_retries=0),
    )
    ledger = store.ledger(max_size=pool)
    stack.callback(ledger.close)
    conn, saver = store.saver()
    stack.callback(conn.close)
    keeper = Gatekeeper(
        client=client,
        loop_id=server.loop_id,
        ledger=ledger,
        callback_url=CALLBACK_URL,
        callback_secret=SECRET,
        budget=CallBudget(limit=budget),
    )
    return keeper, build_graph(keeper, saver, store.effects())
