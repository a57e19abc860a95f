"""``hitl-agent worker --checkpointer postgresql://…`` through PostgreSQL resets and outages
(issue 20 F2, issue 24 item 3), on the worker's own wiring (``open_worker``, what the command
runs) against the real PostgreSQL on 127.0.0.1:5432.

* Connection kills: every backend of the worker (ledger and checkpointer, found by their
  ``application_name``) is terminated between answers; each next approved review must still
  be resumed. Before the fix the checkpointer was one connection opened once
  (``PostgresSaver.from_conn_string``): every resume after the first kill failed.
* An outage (a TCP proxy in front of PostgreSQL that refuses everything): the worker logs it
  once at ERROR over many recovery steps, ``/readyz`` answers 503 naming the checkpointer (no
  password), and when the database returns it says so once, resumes the approval it could
  not resume before, and ``/readyz`` answers 200.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from hitl_agent.cli import main
from hitl_agent.cli._worker import Worker, open_worker
from hitl_agent.gate import Gatekeeper
from hitl_agent.testing import LocalHITL, local_hitl

pytestmark = pytest.mark.postgres

PASSWORD = "pw-must-never-show-9f3c"  # the local server trusts loopback: libpq never sends it

GRAPH_MODULE = """
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

from hitl_agent.decision import Decision

KEEPER: Any = None  # the agent side's Gatekeeper (set by the test; shares the ledger)
EFFECTS: list[int] = []


class S(TypedDict, total=False):
    amount: int
    decision: dict
    done: bool


def gate(state: S) -> dict:
    decision = KEEPER.review(
        f"Refund ${state['amount']}?",
        response_type="single_select",
        response_config={"options": ["Approve", "Reject"]},
        default_response="reject",
    )
    return {"decision": decision.model_dump(mode="json")}


def act(state: S) -> dict:
    if Decision.model_validate(state["decision"]).approved:
        EFFECTS.append(state["amount"])
    return {"done": True}


def build(checkpointer: Any) -> Any:
    builder = StateGraph(S)
    builder.add_node("gate", gate)
    builder.add_node("act", act)
    builder.add_edge(START, "gate")
    builder.add_edge("gate", "act")
    builder.add_edge("act", END)
    return builder.compile(checkpointer=checkpointer)
"""


@pytest.fixture
def pg() -> Iterator[dict[str, str]]:
    """A fresh schema and an application_name marking this test's connections."""
    from pg_support import PG_URL, require_postgres

    require_postgres()
    import psycopg

    schema = f"hitl_worker_{uuid.uuid4().hex[:10]}"
    app_name = f"hitl-test-{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield {"base": PG_URL, "schema": schema, "app": app_name}
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _with_password(url: str, host_port: str | None = None) -> str:
    # postgresql://postgres@127.0.0.1:5432/test -> postgresql://postgres:PW@HOST:PORT/test
    scheme, rest = url.split("://", 1)
    user, _, tail = rest.partition("@")
    hostport, _, path = tail.partition("/")
    return f"{scheme}://{user}:{PASSWORD}@{host_port or hostport}/{path.split('?')[0]}"


def _urls(pg: dict[str, str], host_port: str | None = None) -> tuple[str, str]:
    base = _with_password(pg["base"], host_port)
    checkpointer = f"{base}?application_name={pg['app']}&options=-csearch_path%3D{pg['schema']}"
    ledger = f"{base}?schema={pg['schema']}&application_name={pg['app']}"
    return checkpointer, ledger


def _kill_backends(pg: dict[str, str]) -> int:
    """Terminate every backend of this test (the brief's pg_terminate_backend, narrowed to
    our application_name so that other tests sharing the database are not hit), and wait
    until they are gone."""
    import psycopg

    with psycopg.connect(pg["base"], autocommit=True) as admin:
        pids = [
            row[0]
            for row in admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND application_name = %s",
                (pg["app"],),
            ).fetchall()
        ]
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            left = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)
            ).fetchone()
            if left is not None and left[0] == 0:
                break
            time.sleep(0.01)
    return len(pids)


@pytest.fixture
def graph_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    import importlib
    import sys

    name = f"pg_worker_graph_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(GRAPH_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(name)
    yield module
    sys.modules.pop(name, None)


@contextmanager
def _worker(hitl: LocalHITL, module: Any, checkpointer: str, ledger: str) -> Iterator[Worker]:
    with (
        open_worker(
            graph_target=f"{module.__name__}:build",
            checkpointer=checkpointer,
            ledger=ledger,
            loop_id=hitl.loop_id,
            client=hitl.client,
        ) as worker,
        Gatekeeper(client=hitl.client, loop_id=hitl.loop_id, ledger=ledger) as keeper,
    ):
        module.KEEPER = keeper
        yield worker


def _park(worker: Worker, thread_id: str, amount: int) -> str:
    config = {"configurable": {"thread_id": thread_id}}
    result = worker.graph.invoke({"amount": amount}, config)
    (interrupt,) = result["__interrupt__"]
    return str(interrupt.value["hitl_agent"]["request_id"])


def test_resumes_go_on_after_every_connection_is_killed(
    pg: dict[str, str], graph_module: Any
) -> None:
    checkpointer, ledger = _urls(pg)
    rounds, kills = 6, 0
    with local_hitl() as hitl, _worker(hitl, graph_module, checkpointer, ledger) as worker:
        # The wiring under test: a checked pool, not one connection for the worker's life.
        assert worker.checkpointer.pool is not None
        for n in range(rounds):
            request_id = _park(worker, f"t{n}", 100 + n)
            kills += _kill_backends(pg)  # between the park and the answer
            hitl.reviewer.respond(request_id, "approve")
            kills += _kill_backends(pg)  # between the answer and the sweep
            # Even rounds: the poll sweep (worker --once); odd: the recovery step after a
            # decision recorded (as a callback's resolve records it) before the kill.
            if n % 2 == 0:
                delivered = worker.dispatcher.poll_once()
            else:
                row = worker.keeper.ledger.get_by_request_id(request_id)
                assert row is not None
                assert worker.dispatcher.resolver.record(row, hitl.client.requests.get(request_id))
                kills += _kill_backends(pg)
                delivered = worker.dispatcher.recover_once()
            assert [d.outcome for d in delivered] == ["approved"], (n, delivered)
        assert [100 + n for n in range(rounds)] == graph_module.EFFECTS
        states = {
            worker.keeper.ledger.get_by_request_id(d.request_id).state  # type: ignore[union-attr]
            for d in delivered
        }
        assert states == {"resumed"}
        assert worker.dispatcher.readiness.outages == 0  # a reset is not an outage
    assert kills >= 3 * rounds  # each kill hit at least the ledger or checkpointer pool


class Proxy:
    """A TCP proxy in front of PostgreSQL that can refuse everything (an outage)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.accepted = 0
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self.accepted += 1
            with self._lock:
                self._pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def down(self) -> None:
        self.up = False
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.down()
        self.listener.close()


def _readyz(worker: Worker) -> tuple[int, dict[str, Any], str]:
    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=worker.dispatcher.health_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://worker") as http:
            return await http.get("/readyz")

    response = asyncio.run(get())
    return response.status_code, response.json(), response.text


def test_an_outage_is_logged_once_reported_and_caught_up(
    pg: dict[str, str],
    graph_module: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = Proxy(("127.0.0.1", 5432))
    checkpointer, _ = _urls(pg, host_port=f"127.0.0.1:{proxy.port}")
    ledger = f"sqlite:///{tmp_path}/ledger.db"
    steps = 50
    try:
        with local_hitl() as hitl, _worker(hitl, graph_module, checkpointer, ledger) as worker:
            dispatcher = worker.dispatcher
            dispatcher.readiness.probe_timeout = 0.5
            request_id = _park(worker, "outage", 7)
            dispatcher.recover_once()
            assert _readyz(worker)[0] == 200

            proxy.down()
            # A callback accepted during the outage records the decision (the ledger is up).
            hitl.reviewer.respond(request_id, "approve")
            row = worker.keeper.ledger.get_by_request_id(request_id)
            assert row is not None
            assert dispatcher.resolver.record(row, hitl.client.requests.get(request_id))
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="hitl_agent"):
                for _ in range(steps):
                    assert dispatcher.recover_once() == []
                status, body, text = _readyz(worker)
                ours = [r for r in caplog.records if r.name.startswith("hitl_agent")]
                errors = [r for r in ours if r.levelno >= logging.ERROR]
                assert len(errors) == 1, [r.getMessage() for r in ours]
                assert "checkpointer" in errors[0].getMessage()
                assert [r for r in ours if r.levelno >= logging.WARNING] == errors
                assert status == 503
                assert body["ready"] is False and body["failed"] == ["checkpointer"]
                assert body["checks"]["ledger"] == "ok" and body["checks"]["recovery"] == "ok"
                assert PASSWORD not in text
                assert all(PASSWORD not in r.getMessage() for r in caplog.records)
                assert graph_module.EFFECTS == []

                proxy.restore()
                caplog.clear()
                deadline = time.monotonic() + 15  # the pool's reconnect backs off 1 s, 2 s
                delivered: list[Any] = []
                while not delivered and time.monotonic() < deadline:
                    delivered = dispatcher.recover_once()
                    if not delivered:
                        time.sleep(0.05)
                assert [d.outcome for d in delivered] == ["approved"]
                assert graph_module.EFFECTS == [7]
                recovered = [r for r in caplog.records if r.name.startswith("hitl_agent")]
                assert [(r.levelname, "answers again" in r.getMessage()) for r in recovered] == [
                    ("INFO", True)
                ]
            status, body, _ = _readyz(worker)
            assert status == 200 and body["ready"] is True, body
            assert dispatcher.readiness.outages == 1
    finally:
        proxy.close()


def test_once_exits_1_in_one_line_when_the_checkpointer_does_not_answer(
    pg: dict[str, str], graph_module: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = Proxy(("127.0.0.1", 5432))
    checkpointer, _ = _urls(pg, host_port=f"127.0.0.1:{proxy.port}")
    try:
        with local_hitl() as hitl:
            import hitl_agent._client as client_module

            monkeypatch.setattr(client_module, "HITLClient", lambda *a, **k: hitl.client)
            args = ["worker", "--graph", f"{graph_module.__name__}:build"]
            args += ["--checkpointer", checkpointer, "--loop-id", hitl.loop_id]
            args += ["--ledger", f"sqlite:///{tmp_path}/l.db", "--once"]
            ok = CliRunner().invoke(main, args)
            assert ok.exit_code == 0, ok.output
            assert "resumed 0 review(s)" in ok.output
            # Down at start-up: the pool cannot open; one line, exit 1, no password.
            proxy.down()
            monkeypatch.setattr("hitl_agent.cli._checkpointer.POOL_TIMEOUT", 1.0)
            down = CliRunner().invoke(main, [*args, "--no-poll"])
    finally:
        proxy.close()
    assert down.exit_code == 1, down.output
    assert "--checkpointer: PostgreSQL did not answer" in down.output
    assert len(down.output.strip().splitlines()) == 1
    assert PASSWORD not in down.output


def test_a_dead_connection_is_replaced_without_the_pools_backoff(pg: dict[str, str]) -> None:
    """The pool's own ``check=`` sleeps about 1 s after a failed check (then 2 s, 4 s…)
    while the saver holds its lock: under a kill a second nothing was resumed. The worker's
    pool discards the dead connection and borrows the next one at once."""
    from hitl_agent.cli._checkpointer import open_checkpointer

    checkpointer, _ = _urls(pg)
    with open_checkpointer(checkpointer) as opened:
        worst = 0.0
        for _ in range(3):
            opened.probe()  # a pooled connection, idle
            assert _kill_backends(pg) >= 1
            started = time.monotonic()
            opened.probe()  # borrows the dead one first
            worst = max(worst, time.monotonic() - started)
            saved = opened.saver.get_tuple({"configurable": {"thread_id": "none"}})
            assert saved is None
    assert worst < 0.8, f"a borrow after a kill took {worst:.2f} s"
