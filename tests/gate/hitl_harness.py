"""Shared fixtures for the gate, dispatch and langgraph tests: a local HITL server whose
callbacks are delivered in-process into a dispatcher, a SQLite ledger and a keeper."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest

from hitl_agent import HITLClient, RetryPolicy
from hitl_agent.dispatch import Dispatcher
from hitl_agent.gate import Gatekeeper
from hitl_agent.ledger import Ledger, SqliteLedger
from hitl_agent.testing import FakeClock, LocalHITL, local_hitl

CALLBACK_URL = "http://app.test/hitl"
SECRET = "test-callback-secret-0123456789abcdef"


class Forwarder:
    """An ASGI app that forwards to whatever dispatcher is plugged in later (or 503s)."""

    def __init__(self) -> None:
        self.target: Any = None
        self.deliveries = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.deliveries += 1
        if self.target is None:
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await self.target(scope, receive, send)


class CountingTransport(httpx.BaseTransport):
    """Counts API calls (by method and path) on their way to the TestClient's transport."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path))
        return self.inner.handle_request(request)


@dataclass
class Env:
    hitl: LocalHITL
    keeper: Gatekeeper
    ledger: Ledger
    clock: FakeClock
    forwarder: Forwarder
    tmp_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def plug(self, dispatcher: Dispatcher) -> Dispatcher:
        """Deliver the server's callbacks into ``dispatcher``."""
        self.forwarder.target = dispatcher.asgi_app
        return dispatcher

    def tick(self) -> None:
        """One server pass: timeouts and callbacks (delivered into the plugged dispatcher)."""
        self.hitl.tick_sync()

    def requests(self) -> list[Any]:
        """Every request on the server (count creates with it)."""
        return list(self.hitl.client.requests.iter(loop_id=self.hitl.loop_id))

    def only_request_id(self) -> str:
        requests = self.requests()
        assert len(requests) == 1, requests
        return str(requests[0].id)


def make_env(tmp_path: Path, **keeper_kwargs: Any) -> Iterator[Env]:
    clock = keeper_kwargs.get("clock") or FakeClock()
    forwarder = Forwarder()
    callback_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=forwarder))
    with local_hitl(clock=clock, callback_client=callback_client) as hitl:
        # The ledger judges resume leases on the harness's one clock (issue 19, F6).
        ledger = SqliteLedger(tmp_path / "ledger.db", clock=clock)
        ledger.setup()
        kwargs: dict[str, Any] = {
            "client": hitl.client,
            "loop_id": hitl.loop_id,
            "ledger": ledger,
            "callback_url": CALLBACK_URL,
            "callback_secret": SECRET,
            "clock": clock,
            "poll_interval": 0.02,
        }
        kwargs.update(keeper_kwargs)
        keeper = Gatekeeper(**kwargs)
        try:
            yield Env(hitl, keeper, ledger, clock, forwarder, tmp_path)
        finally:
            portal = hitl.http.portal
            assert portal is not None
            portal.call(callback_client.aclose)
            ledger.close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from make_env(tmp_path)


def add_reviewer(env: Env, email: str, loops: list[str] | None = None) -> Any:
    """Another reviewer account on the local server (member of ``loops``, default the
    harness's loop), and a ScriptedReviewer answering as them."""
    from hitl_agent.testing import ScriptedReviewer

    token = f"token-{email}-0123456789"
    env.hitl.server.add_reviewer(email, token, loops or [env.hitl.loop_id], name=email[:3])
    return ScriptedReviewer(env.hitl.http, token, env.hitl.base_url)


def all_requests(env: Env) -> list[Any]:
    """Every request on the server, any loop, oldest first."""
    return sorted(env.hitl.client.requests.iter(), key=lambda r: (r.created_at, r.id))


def backend_env(kind: str, tmp_path: Path, **keeper_kwargs: Any) -> Iterator[tuple[Env, str]]:
    """:func:`make_env` with its ledger on ``kind`` (``sqlite`` or ``postgres``, a schema of
    its own, dropped afterwards), judged by the harness's clock; and the ledger's URL."""
    import uuid

    from hitl_agent.ledger import PostgresLedger

    clock = FakeClock()
    schema = None
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'backend.db'}"
        store: Ledger = SqliteLedger(tmp_path / "backend.db", clock=clock)
    else:
        from pg_support import PG_URL, require_postgres

        require_postgres()
        schema = f"hitl_{uuid.uuid4().hex[:10]}"
        url = f"{PG_URL}?schema={schema}"
        store = PostgresLedger(PG_URL, schema=schema, clock=clock)
    store.setup()
    try:
        for env in make_env(tmp_path, ledger=store, clock=clock, **keeper_kwargs):
            env.clock, env.ledger = clock, store
            yield env, url
    finally:
        store.close()
        if schema is not None:
            import psycopg

            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def refund_graph(
    env: Env,
    saver: Any,
    effects: list[str],
    runs: list[str] | None = None,
    **review: Any,
) -> Any:
    """START -> gate (review) -> act (records a side effect only when approved) -> END.

    ``review`` adds keyword arguments to the gate's ``keeper.review`` (priority, context, ...).
    """
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    from hitl_agent.decision import Decision

    class State(TypedDict, total=False):
        amount: int
        decision: dict[str, Any]
        done: bool

    def gate(state: State) -> dict[str, Any]:
        if runs is not None:
            runs.append("gate")
        decision = env.keeper.review(
            f"Refund ${state['amount']}?",
            response_type="single_select",
            response_config={"options": ["Approve", "Reject"]},
            default_response="reject",
            **review,
        )
        return {"decision": decision.model_dump(mode="json")}

    def act(state: State) -> dict[str, Any]:
        if Decision.model_validate(state["decision"]).approved:
            effects.append(f"refund {state['amount']}")
        return {"done": True}

    builder = StateGraph(State)
    builder.add_node("gate", gate)
    builder.add_node("act", act)
    builder.add_edge(START, "gate")
    builder.add_edge("gate", "act")
    builder.add_edge("act", END)
    return builder.compile(checkpointer=saver)


def sqlite_saver(path: Path) -> tuple[Any, Any]:
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(path, check_same_thread=False)
    return conn, SqliteSaver(conn)


Fault = Callable[[httpx2.Request], httpx2.Response]


class Switch(httpx2.BaseTransport):
    """Forwards to the local server while ``fault`` is None; else lets ``fault`` answer."""

    def __init__(self, inner: httpx2.BaseTransport) -> None:
        self.inner = inner
        self.fault: Fault | None = None
        self.calls = 0

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        self.calls += 1
        if self.fault is None:
            return self.inner.handle_request(request)
        return self.fault(request)


@contextlib.contextmanager
def switched_client(env: Env) -> Iterator[tuple[Switch, HITLClient]]:
    """A client of the local server whose transport a test can switch to a fault."""
    transport = Switch(env.hitl.http._transport)
    with (
        httpx2.Client(transport=transport, base_url="http://testserver") as http,
        HITLClient(
            env.hitl.api_key,
            base_url=env.hitl.base_url,
            http_client=http,
            retry=RetryPolicy(max_retries=0),
        ) as client,
    ):
        yield transport, client


LEDGER_READS = ("get", "get_by_request_id", "list_task", "list_open")


def count_ledger_reads(env: Env, monkeypatch: pytest.MonkeyPatch, in_node: list[bool]) -> list[str]:
    """The names of the ledger reads made while ``in_node`` holds a true value, in order."""
    reads: list[str] = []
    for name in LEDGER_READS:
        method = getattr(env.ledger, name)

        def counted(*args: Any, _name: str = name, _method: Any = method, **kw: Any) -> Any:
            if in_node:
                reads.append(_name)
            return _method(*args, **kw)

        monkeypatch.setattr(env.ledger, name, counted)
    return reads
