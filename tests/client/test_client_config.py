"""Client construction: key and URL sources, injected transports, timeouts, lifecycle, secrecy."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from hitl_agent import (
    AsyncHITLClient,
    AuthenticationError,
    ConfigError,
    HITLClient,
    NotFoundError,
)

from . import documented as doc
from .conftest import TEST_KEY, respond

CLIENTS = [HITLClient, AsyncHITLClient]


@pytest.mark.parametrize("cls", CLIENTS)
def test_key_and_url_come_from_the_environment(
    cls: type[HITLClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HITL_API_KEY", "hitl_live_from_env")
    monkeypatch.setenv("HITL_BASE_URL", "http://127.0.0.1:8765/v1/")
    client = cls()
    assert client.base_url == "http://127.0.0.1:8765/v1"
    assert client._headers()["Authorization"] == "Bearer hitl_live_from_env"


@pytest.mark.parametrize("cls", CLIENTS)
def test_arguments_win_over_the_environment(
    cls: type[HITLClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HITL_API_KEY", "hitl_live_from_env")
    monkeypatch.setenv("HITL_BASE_URL", "http://127.0.0.1:8765/v1")
    client = cls(api_key="hitl_live_arg", base_url="https://dev.api.hitl.sh/v1")
    assert client.base_url == "https://dev.api.hitl.sh/v1"
    assert client._headers()["Authorization"] == "Bearer hitl_live_arg"


@pytest.mark.parametrize("cls", CLIENTS)
def test_default_base_url_is_the_public_api(cls: type[HITLClient]) -> None:
    assert cls(api_key=TEST_KEY).base_url == "https://api.hitl.sh/v1"


@pytest.mark.parametrize("cls", CLIENTS)
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "api_key"),
        ({"api_key": ""}, "api_key"),
        ({"api_key": "hitl_live_abc\n"}, "api_key"),
        ({"api_key": "hitl live"}, "api_key"),
        ({"api_key": TEST_KEY, "base_url": "api.hitl.sh/v1"}, "base_url"),
    ],
)
def test_bad_configuration_is_a_config_error(
    cls: type[HITLClient], kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        cls(**kwargs)
    assert caught.value.field == field
    assert caught.value.fix
    assert TEST_KEY not in str(caught.value)


@pytest.mark.parametrize("cls", CLIENTS)
def test_repr_never_shows_the_key(cls: type[HITLClient]) -> None:
    client = cls(api_key=TEST_KEY)
    assert TEST_KEY not in repr(client)
    assert "https://api.hitl.sh/v1" in repr(client)


def test_timeout_is_sent_with_every_request() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return respond(200, doc.KEY_VALID)

    http = httpx.Client(transport=httpx.MockTransport(handler))
    HITLClient(api_key=TEST_KEY, timeout=7.5, http_client=http).test()
    HITLClient(api_key=TEST_KEY, http_client=http).test()
    custom = httpx.Timeout(3.0, connect=1.0)
    HITLClient(api_key=TEST_KEY, timeout=custom, http_client=http).test()
    timeouts = [r.extensions["timeout"] for r in seen]
    assert timeouts[0] == httpx.Timeout(7.5).as_dict()
    assert timeouts[1] == httpx.Timeout(30.0, connect=5.0).as_dict()
    assert timeouts[2] == custom.as_dict()


def test_sync_context_manager_closes_its_own_pool_only() -> None:
    with HITLClient(api_key=TEST_KEY) as owned:
        pass
    assert owned._http.is_closed

    injected = httpx.Client(transport=httpx.MockTransport(lambda r: respond(200, doc.KEY_VALID)))
    with HITLClient(api_key=TEST_KEY, http_client=injected) as client:
        client.test()
    assert not injected.is_closed
    injected.close()


@pytest.mark.anyio
async def test_async_context_manager_closes_its_own_pool_only() -> None:
    async with AsyncHITLClient(api_key=TEST_KEY) as owned:
        pass
    assert owned._http.is_closed

    injected = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: respond(200, doc.KEY_VALID))
    )
    async with AsyncHITLClient(api_key=TEST_KEY, http_client=injected) as client:
        await client.test()
    assert not injected.is_closed
    await injected.aclose()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- The key never reaches a log line, through a real socket and httpx's own loggers ---------


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/v1/test":
            status, body = 401, doc.UNAUTHORIZED
        elif self.path.startswith("/v1/api/requests/"):
            status, body = 404, doc.NOT_FOUND
        else:
            status, body = 200, doc.LOOPS_LIST
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-RateLimit-Remaining", "42")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def local_http() -> Iterator[str]:
    """A plain HTTP server on 127.0.0.1, so httpx and httpcore run their real code paths."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _all_log_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        f"{record.name} {record.getMessage()} {record.args!r} {record.__dict__!r}"
        for record in caplog.records
    )


def test_no_key_in_any_log_line_of_a_real_exchange(
    local_http: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # root: hitl_agent, httpx2 and httpcore2 alike
    with HITLClient(api_key=TEST_KEY, base_url=local_http) as client:
        assert len(client.loops.list()) == 2
        with pytest.raises(AuthenticationError) as auth:
            client.test()
        with pytest.raises(NotFoundError) as missing:
            client.requests.get(doc.REQUEST_ID)
    text = _all_log_text(caplog)
    assert {"hitl_agent", "httpx2", "httpcore2.http11"} <= {r.name for r in caplog.records}
    assert "/v1/api/loops" in text  # the log does describe the calls
    assert TEST_KEY not in text
    for err in (auth.value, missing.value):
        assert TEST_KEY not in str(err) and TEST_KEY not in repr(err)
    assert client.rate_limit is not None and client.rate_limit.remaining == 42


@pytest.mark.anyio
async def test_no_key_in_any_log_line_of_a_real_async_exchange(
    local_http: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with AsyncHITLClient(api_key=TEST_KEY, base_url=local_http) as client:
        assert len(await client.loops.list()) == 2
        with pytest.raises(AuthenticationError):
            await client.test()
    text = _all_log_text(caplog)
    assert "httpcore" in text and TEST_KEY not in text


def test_no_key_in_logs_of_a_refused_connection(caplog: pytest.LogCaptureFixture) -> None:
    from hitl_agent import APIConnectionError, RetryPolicy

    caplog.set_level(logging.DEBUG)
    # Port 9 (discard) on loopback is closed on test machines: the connection is refused.
    client = HITLClient(
        api_key=TEST_KEY, base_url="http://127.0.0.1:9/v1", retry=RetryPolicy(max_retries=0)
    )
    with pytest.raises(APIConnectionError) as caught:
        client.loops.list()
    client.close()
    assert TEST_KEY not in _all_log_text(caplog)
    assert TEST_KEY not in str(caught.value)
