"""W1: every spelling of ``callback_url`` reaches the receiver, end to end.

The local server POSTs each callback over real HTTP (loopback) to a uvicorn server that runs
the receiver served alone or mounted in a Starlette app; polling is off, so a decision is
recorded only if the callback got through. Paths with and without a prefix, the root
included, in odd spellings.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from hitl_harness import Env
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from hitl_agent import ConfigError
from hitl_agent._callback_paths import callback_path_of, canonical_callback_url
from hitl_agent._tokens import derive_token
from hitl_agent.dispatch import Dispatcher
from hitl_agent.gate import Gatekeeper, ReviewSpec, ensure_request
from hitl_agent.ledger import SqliteLedger
from hitl_agent.testing import FakeClock, local_hitl


@contextmanager
def _serve(app: Any, sock: socket.socket) -> Iterator[None]:
    """Run ``app`` under uvicorn on an already bound socket, in a thread."""
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)


def _mounted(dispatcher: Dispatcher) -> Starlette:
    """The receiver inside an app of the user's, next to a route of its own."""

    async def health(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/healthz", health),
            Mount(dispatcher.receiver.path, app=dispatcher.asgi_app),
        ]
    )


# (callback_url template, receiver path it implies)
SPELLINGS = [
    ("http://127.0.0.1:{port}", ""),
    ("http://127.0.0.1:{port}/", ""),
    ("HTTP://127.0.0.1:{port}//", ""),
    ("http://127.0.0.1:{port}/hitl", "/hitl"),
    ("Http://127.0.0.1:{port}/hitl/", "/hitl"),
    ("http://127.0.0.1:{port}//hooks//hitl//", "/hooks/hitl"),
    ("http://127.0.0.1:{port}/hi%74l", "/hitl"),
]


@pytest.mark.parametrize("serving", ["alone", "mounted"])
@pytest.mark.parametrize(("template", "path"), SPELLINGS, ids=[s[0] for s in SPELLINGS])
def test_every_callback_url_spelling_is_received(
    tmp_path: Path, template: str, path: str, serving: str
) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    url = template.format(port=port)
    with (
        local_hitl(clock=FakeClock()) as hitl,
        SqliteLedger(tmp_path / "ledger.db") as ledger,
    ):
        ledger.setup()
        # No secret: the keeper generates one and keeps it in the ledger.
        keeper = Gatekeeper(
            client=hitl.client, loop_id=hitl.loop_id, ledger=ledger, callback_url=url
        )
        dispatcher = keeper.dispatcher()
        assert dispatcher.receiver.path == path
        row = ensure_request(keeper._target, hitl.client, "w1", ReviewSpec.build("Allow?"))
        assert row.request_id is not None
        (created,) = hitl.client.requests.iter(loop_id=hitl.loop_id)
        assert created.callback_url is not None
        base, _token = created.callback_url.rsplit("/", 1)
        assert base.startswith(f"http://127.0.0.1:{port}") and callback_path_of(base) == path
        app = dispatcher.asgi_app if serving == "alone" else _mounted(dispatcher)
        with _serve(app, sock):
            hitl.reviewer.respond(row.request_id, True)
            deadline = time.monotonic() + 15
            while (current := ledger.get("w1")) is not None and current.decision is None:
                assert time.monotonic() < deadline, "the callback never got through"
                hitl.tick_sync()  # the local server POSTs the callback over HTTP
                time.sleep(0.02)
        assert dispatcher.receiver.accepted == 1
        assert dispatcher.receiver.rejected == 0
        assert current is not None and current.decision is not None
        assert current.decision["approved"] is True


def test_root_callback_url_makes_a_root_receiver(env: Env) -> None:
    """The regression of W1: tokens at ``/<token>``, not ``/hitl/<token>``."""
    keeper = Gatekeeper(
        client=env.hitl.client,
        loop_id=env.hitl.loop_id,
        ledger=env.ledger,
        callback_url="http://127.0.0.1:8000",
        callback_secret="x" * 32,
    )
    row = ensure_request(keeper._target, env.hitl.client, "root", ReviewSpec.build("Ok?"))
    assert row.request_id is not None
    env.hitl.reviewer.respond(row.request_id, True)
    token = derive_token("x" * 32, "root")
    dispatcher = keeper.dispatcher()
    with TestClient(dispatcher.asgi_app) as client:
        assert client.post(f"/hitl/{token}", json={"request_id": row.request_id}).status_code == 404
        answer = client.post(f"/{token}", json={"request_id": row.request_id})
    assert answer.status_code == 202
    stored = env.ledger.get("root")
    assert stored is not None and stored.decision is not None


@pytest.mark.parametrize(
    ("url", "canonical", "path"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000", ""),
        ("HTTP://My.App:80/", "http://my.app", ""),
        ("https://MY.APP:443//hitl//", "https://my.app/hitl", "/hitl"),
        ("https://my.app:8443/a//b/", "https://my.app:8443/a/b", "/a/b"),
        ("https://my.app/hi%74l", "https://my.app/hi%74l", "/hitl"),
        ("http://[::1]:8000/x/", "http://[::1]:8000/x", "/x"),
        ("  https://my.app/hitl  ", "https://my.app/hitl", "/hitl"),
    ],
)
def test_callback_url_spellings_are_canonical(url: str, canonical: str, path: str) -> None:
    assert canonical_callback_url(url) == canonical
    assert callback_path_of(canonical_callback_url(url)) == path


@pytest.mark.parametrize(
    "url",
    [
        "ftp://my.app/hitl",
        "my.app/hitl",
        "https:///hitl",
        "https://my.app/hitl?x=1",
        "https://my.app/hitl?",
        "https://my.app/hitl#frag",
        "https://user:pw@my.app/hitl",
        "https://my.app:99999/hitl",
    ],
)
def test_bad_callback_urls_are_config_errors(env: Env, url: str) -> None:
    with pytest.raises(ConfigError, match="callback_url"):
        Gatekeeper(
            client=env.hitl.client,
            loop_id=env.hitl.loop_id,
            ledger=env.ledger,
            callback_url=url,
            callback_secret="x" * 32,
        )


def test_a_receiver_path_that_disagrees_with_callback_url_refuses_to_start(env: Env) -> None:
    keeper = Gatekeeper(
        client=env.hitl.client,
        loop_id=env.hitl.loop_id,
        ledger=env.ledger,
        callback_url="http://127.0.0.1:8000/",
        callback_secret="x" * 32,
    )
    with pytest.raises(ConfigError, match="callback_path") as raised:
        keeper.dispatcher(callback_path="/hitl")
    assert "'/hitl'" in str(raised.value) and "http://127.0.0.1:8000" in str(raised.value)
    # Equivalent spellings agree.
    assert keeper.dispatcher(callback_path="/").receiver.path == ""
    assert keeper.dispatcher(callback_path="").receiver.path == ""
    with pytest.raises(ConfigError, match=r"callback_path.*https://my\.app/hitl"):
        Dispatcher(
            ledger=env.ledger,
            client=env.hitl.client,
            resumer=keeper._blocking.resolver.resumer,
            loop_id=env.hitl.loop_id,
            callback_url="https://my.app/hitl",
            callback_path="/hooks",
        )
    with pytest.raises(ConfigError, match="callback_url"):
        Dispatcher(
            ledger=env.ledger,
            client=env.hitl.client,
            resumer=keeper._blocking.resolver.resumer,
            loop_id=env.hitl.loop_id,
            callback_url="my.app/hitl",
        )
    same = Dispatcher(
        ledger=env.ledger,
        client=env.hitl.client,
        resumer=keeper._blocking.resolver.resumer,
        loop_id=env.hitl.loop_id,
        callback_url="https://my.app//hitl/",
        callback_path="hitl/",
    )
    assert same.receiver.path == "/hitl"


def test_a_404_callback_is_a_warning_without_the_token(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """A receiver at /hitl getting the root spelling: visible in the log, token redacted."""
    token = derive_token("y" * 32, "k")
    dispatcher = env.keeper.dispatcher()
    with (
        caplog.at_level(logging.WARNING, logger="hitl_agent.dispatch"),
        TestClient(dispatcher.asgi_app) as client,
    ):
        assert client.post(f"/{token}", json={"request_id": "r"}).status_code == 404
        assert client.post(f"/hitl/{token}", json={"request_id": "r"}).status_code == 404
        for _ in range(5):  # a flood is throttled, not logged line by line
            client.post(f"/{token}", json={"request_id": "r"})
    messages = [r.getMessage() for r in caplog.records if r.name == "hitl_agent.dispatch"]
    assert any("not under this receiver's path '/hitl'" in m for m in messages), messages
    assert any("unknown request or wrong token" in m for m in messages), messages
    assert len(messages) == 2
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    assert token not in caplog.text
