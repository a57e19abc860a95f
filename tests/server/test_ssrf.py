"""Callback targets (issue 8: M2, W6): refused at create by their text, and at delivery by the
addresses their host resolves to right then; the connection goes to the address checked."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from hitl_agent.server import create_app
from hitl_agent.testing import FakeClock

from .conftest import Env, MakeEnv, request_body

REFUSED = [
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://metadata.goog/x",
    "http://instance-data/latest",
    "http://10.0.0.1/hook",
    "http://172.16.5.4/hook",
    "http://192.168.1.10:8080/hook",
    "http://100.64.0.1/hook",
    "http://[fc00::1]/hook",
    "http://169.254.10.10/hook",
    "http://[fe80::1]/hook",
    "http://0.0.0.0/hook",
    "http://[::]/hook",
    "http://224.0.0.1/hook",
    "http://[::ffff:169.254.169.254]/hook",
    "http://[::ffff:10.0.0.1]/hook",
    "http://[64:ff9b::a9fe:a9fe]/hook",
    "http://2852039166/latest",  # 169.254.169.254 in decimal
    "http://0xa9fea9fe/latest",  # ... in hex
    "http://0251.0376.0251.0376/latest",  # ... in octal
    "http://2130706433/hook",  # 127.0.0.1 in decimal: the spelling itself is refused
    "http://0x7f.1/hook",
    "http://127.1/hook",
    "http://169.254.169.254./latest",  # trailing dot
    "http://user:secret@receiver.test/hook",  # userinfo would be sent as Basic auth
    "http://@receiver.test/hook",
    "http://receiver.test/hook\r\nX-Injected: 1",
    "http://receiver.test/hook\n",
    "http://receiver.test/ho ok",
    "http://receiver.test/hook\x00",
    "gopher://receiver.test/",
    "file:///etc/passwd",
]
ALLOWED = [
    "http://127.0.0.1:9/hook",
    "http://localhost:8000/hitl/abc",
    "http://[::1]:8000/hook",
    "https://hooks.example.com/hitl/tok",
    "HTTP://Receiver.TEST:80/hook",
    "https://bücher.example/hook",
]


@pytest.mark.parametrize("url", REFUSED)
def test_refused_callback_urls_get_a_400_and_nothing_is_stored(env: Env, url: str) -> None:
    before = env.counts()
    response = env.api(
        "POST", f"/api/loops/{env.creds.loop_id}/requests", json=request_body(callback_url=url)
    )
    body = response.json()
    assert (response.status_code, body["msg"]) == (400, "Validation failed"), body
    assert body["data"].startswith("callback_url")
    assert env.counts() == before


@pytest.mark.parametrize("url", ALLOWED)
def test_public_and_loopback_callback_urls_are_accepted(env: Env, url: str) -> None:
    env.create(callback_url=url)


def test_allow_private_opens_private_ranges_but_never_metadata(make_env: MakeEnv) -> None:
    env = make_env(allow_private_callbacks=True)
    for url in ("http://10.0.0.1/hook", "http://192.168.1.10/hook", "http://[fc00::1]/hook"):
        env.create(callback_url=url)
    for url in ("http://169.254.169.254/", "http://[fd00:ec2::254]/", "http://[fe80::1]/"):
        response = env.api(
            "POST", f"/api/loops/{env.creds.loop_id}/requests", json=request_body(callback_url=url)
        )
        assert response.status_code == 400, url


def test_refusals_say_why_and_never_echo_the_url() -> None:
    from hitl_agent.server._url_policy import CallbackPolicy, RefusedCallback

    policy = CallbackPolicy()
    with pytest.raises(RefusedCallback, match="metadata") as caught:
        policy.check_url("http://169.254.169.254/?token=hunter2")
    assert "hunter2" not in str(caught.value)
    with pytest.raises(RefusedCallback, match=r"non-canonical spelling of 169\.254\.169\.254"):
        policy.check_url("http://2852039166/")
    with pytest.raises(RefusedCallback, match="allow_private_callbacks"):
        policy.check_url("http://10.1.2.3/")
    assert CallbackPolicy(allow_private=True).check_url("http://10.1.2.3:81/") == ("10.1.2.3", 81)


# Delivery: the default client resolves, checks every address and connects to the checked one --


class _Listener:
    """A real HTTP server on 127.0.0.1 recording what reaches it."""

    def __init__(self) -> None:
        self.hits: list[dict[str, str]] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                self.rfile.read(length)
                listener.hits.append({"path": self.path, "host": self.headers["host"]})
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[_Listener]:
    made = _Listener()
    yield made
    made.close()


class _DNS:
    """socket.getaddrinfo with some names answered from a script (per call), the rest real."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.answers: dict[str, list[list[str]]] = {}
        self.lookups: list[str] = []
        real = socket.getaddrinfo

        def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            name = host.decode() if isinstance(host, bytes) else str(host)
            if name not in self.answers:
                return real(host, port, *args, **kwargs)
            self.lookups.append(name)
            script = self.answers[name]
            addresses = script.pop(0) if len(script) > 1 else script[0]
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (a, int(port or 0)),
                )
                for a in addresses
            ]

        monkeypatch.setattr(socket, "getaddrinfo", fake)


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> _DNS:
    return _DNS(monkeypatch)


class _Live:
    """The local server with its real default callback client (no injected transport)."""

    def __init__(self, tmp_path: Path, **kwargs: Any) -> None:
        self.app = create_app(
            tmp_path / "ssrf.db", clock=FakeClock(), scheduler_interval=None, **kwargs
        )
        self.server = self.app.state.hitl
        self.creds = self.server.bootstrap(api_key="key-ssrf", reviewer_token="rev-ssrf")
        self.http = TestClient(self.app)
        self.http.__enter__()

    def create_and_answer(self, callback_url: str) -> str:
        headers = {"Authorization": f"Bearer {self.creds.api_key}"}
        created = self.http.post(
            f"/v1/api/loops/{self.creds.loop_id}/requests",
            headers=headers,
            json=request_body(callback_url=callback_url),
        )
        assert created.status_code == 201, created.json()
        request_id = str(created.json()["data"]["request_id"])
        answered = self.http.post(
            f"/v1/reviewer/requests/{request_id}/respond",
            headers={"Authorization": f"Bearer {self.creds.reviewer_token}"},
            json={"response_data": "approve"},
        )
        assert answered.status_code == 200
        return request_id

    def tick(self) -> None:
        assert self.http.portal is not None
        self.http.portal.call(self.server.tick)

    def outbox(self, request_id: str) -> dict[str, Any]:
        with self.server.storage.read() as conn:
            row = conn.execute("SELECT * FROM outbox WHERE request_id = ?", (request_id,))
            return dict(row.fetchone())

    def close(self) -> None:
        self.http.__exit__(None, None, None)
        self.server.close()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[_Live]:
    made = _Live(tmp_path)
    yield made
    made.close()


def test_a_name_that_resolves_to_a_forbidden_address_is_refused_at_delivery(
    live: _Live, dns: _DNS, listener: _Listener
) -> None:
    dns.answers["metadata-proxy.test"] = [["169.254.169.254"]]
    dns.answers["mixed.test"] = [["127.0.0.1", "10.0.0.7"]]  # every answer is checked
    refused = [
        live.create_and_answer(f"http://metadata-proxy.test:{listener.port}/hook"),
        live.create_and_answer(f"http://mixed.test:{listener.port}/hook"),
    ]
    live.tick()
    for request_id in refused:
        row = live.outbox(request_id)
        assert (row["state"], row["last_error"]) == ("failed", "refused by the callback URL policy")
        assert row["attempts"] == 1  # a refusal is final, not retried
    assert listener.hits == []


def test_dns_rebinding_gets_nowhere_the_checked_address_is_the_one_connected(
    live: _Live, dns: _DNS, listener: _Listener
) -> None:
    # The first answer is fine; any later lookup would say 10.0.0.1 (a rebinding attacker).
    dns.answers["rebind.test"] = [["127.0.0.1"], ["10.0.0.1"]]
    request_id = live.create_and_answer(f"http://rebind.test:{listener.port}/hitl/tok")
    live.tick()
    assert live.outbox(request_id)["state"] == "delivered"
    assert listener.hits == [{"path": "/hitl/tok", "host": f"rebind.test:{listener.port}"}]
    assert dns.lookups == ["rebind.test"]  # resolved once, by the check; connected to that
    # Now the name points inside: a second delivery to it is refused, not sent.
    dns.answers["rebind.test"] = [["10.0.0.1"]]
    second = live.create_and_answer(f"http://rebind.test:{listener.port}/hitl/tok2")
    live.tick()
    assert live.outbox(second)["state"] == "failed"
    assert len(listener.hits) == 1


def test_loopback_names_and_literals_are_delivered(live: _Live, listener: _Listener) -> None:
    ids = [
        live.create_and_answer(f"http://127.0.0.1:{listener.port}/a"),
        live.create_and_answer(f"http://localhost:{listener.port}/b"),
    ]
    live.tick()
    assert [live.outbox(i)["state"] for i in ids] == ["delivered", "delivered"]
    assert sorted(h["path"] for h in listener.hits) == ["/a", "/b"]


def test_resolution_is_checked_with_the_same_policy(dns: _DNS) -> None:
    from hitl_agent.server._url_policy import CallbackPolicy, RefusedCallback

    dns.answers["office.test"] = [["10.0.0.5"]]
    dns.answers["v6.test"] = [["::ffff:169.254.169.254"]]
    assert asyncio.run(CallbackPolicy(allow_private=True).resolve("office.test", 80)) == [
        "10.0.0.5"
    ]
    with pytest.raises(RefusedCallback, match="private-network"):
        asyncio.run(CallbackPolicy().resolve("office.test", 80))
    with pytest.raises(RefusedCallback, match="metadata"):
        asyncio.run(CallbackPolicy(allow_private=True).resolve("v6.test", 80))
