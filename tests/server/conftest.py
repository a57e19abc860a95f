"""Fixtures for the local server's tests: an app on a FakeClock, raw HTTP helpers, and a
scripted callback receiver. Nothing leaves the process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from hitl_agent.server import Bootstrap, LocalHITLServer, create_app
from hitl_agent.testing import FakeClock

TABLES = ("loops", "loop_members", "requests", "feedback", "outbox", "users", "api_keys")


def request_body(**overrides: Any) -> dict[str, Any]:
    """A valid create-request body; override any field."""
    body: dict[str, Any] = {
        "processing_type": "time-sensitive",
        "type": "markdown",
        "priority": "medium",
        "request_text": "Delete the **prod** database?",
        "response_type": "single_select",
        "response_config": {"options": ["Approve", "Reject"]},
        "default_response": "reject",
        "timeout_seconds": 600,
        "platform": "api",
    }
    body.update(overrides)
    return body


@dataclass
class Receiver:
    """A callback endpoint: records every POST, answers from a script (then 200)."""

    script: list[int] = field(default_factory=list)
    calls: list[httpx.Request] = field(default_factory=list)
    hook: Callable[[httpx.Request], httpx.Response] | None = None
    """When set, answers instead of the script (after the call is recorded)."""

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if self.hook is not None:
            return self.hook(request)
        status = self.script.pop(0) if self.script else 200
        return httpx.Response(status)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handler))


@dataclass
class Env:
    """An app under test, entered in a TestClient, with its bootstrapped credentials."""

    app: Starlette
    server: LocalHITLServer
    http: TestClient
    creds: Bootstrap
    clock: FakeClock
    receiver: Receiver
    callbacks: httpx.AsyncClient
    closed: bool = False

    def close(self) -> None:
        """Stop the app as a process exit would (idempotent)."""
        if not self.closed:
            self.closed = True
            self.http.__exit__(None, None, None)
            self.server.close()
            asyncio.run(self.callbacks.aclose())

    def api(self, method: str, path: str, *, key: str | None = None, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {key or self.creds.api_key}"}
        return self.http.request(method, "/v1" + path, headers=headers, **kw)

    def rev(self, method: str, path: str, *, token: str | None = None, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {token or self.creds.reviewer_token}"}
        return self.http.request(method, "/v1/reviewer" + path, headers=headers, **kw)

    def create(self, *, key: str | None = None, loop_id: str | None = None, **fields: Any) -> str:
        response = self.api(
            "POST", f"/api/loops/{loop_id or self.creds.loop_id}/requests", key=key,
            json=request_body(**fields),
        )  # fmt: skip
        assert response.status_code == 201, response.json()
        return str(response.json()["data"]["request_id"])

    def get(self, request_id: str) -> dict[str, Any]:
        response = self.api("GET", f"/api/requests/{request_id}")
        assert response.status_code == 200, response.json()
        return dict(response.json()["data"]["request"])

    def tick(self) -> None:
        assert self.http.portal is not None
        self.http.portal.call(self.server.tick)

    def counts(self) -> dict[str, int]:
        with self.server.storage.read() as conn:
            return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}

    def outbox(self) -> list[dict[str, Any]]:
        with self.server.storage.read() as conn:
            return [dict(r) for r in conn.execute("SELECT * FROM outbox ORDER BY id").fetchall()]


MakeEnv = Callable[..., Env]


@pytest.fixture
def make_env(tmp_path: Path) -> Iterator[MakeEnv]:
    """Build Envs (all closed at teardown); kwargs go to create_app."""
    envs: list[Env] = []

    def make(db: str | Path | None = None, **kwargs: Any) -> Env:
        clock = kwargs.pop("clock", None) or FakeClock()
        receiver = kwargs.pop("receiver", None) or Receiver()
        callbacks = receiver.client()
        kwargs.setdefault("scheduler_interval", None)
        kwargs.setdefault("callback_base_delay", 0.0)
        app = create_app(
            db if db is not None else tmp_path / "hitl.db",
            clock=clock,
            callback_client=callbacks,
            **kwargs,
        )
        server: LocalHITLServer = app.state.hitl
        creds = server.bootstrap(api_key="key-one", reviewer_token="reviewer-one")
        http = TestClient(app)
        http.__enter__()
        envs.append(Env(app, server, http, creds, clock, receiver, callbacks))
        return envs[-1]

    yield make
    for made in reversed(envs):
        made.close()


@pytest.fixture
def env(make_env: MakeEnv) -> Env:
    """One app on a file database in tmp_path."""
    return make_env()
