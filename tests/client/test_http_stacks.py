"""The two HTTP libraries in one process: httpx2 (the default) and httpx, never mixed.

The rest of tests/client runs every scenario over both (the ``stack`` fixture); this file
holds what is about the libraries themselves: which one is the default, timeouts and clients
of one library handed to the other, Starlette's TestClient whichever library it is built on.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from types import ModuleType
from typing import Any

import httpx
import httpx2
import pytest
from starlette.testclient import TestClient

from hitl_agent import AsyncHITLClient, ConfigError, HITLClient
from hitl_agent.server import create_app
from hitl_agent.testing import local_hitl

from . import documented as doc
from .conftest import TEST_KEY, respond

STACKS = [httpx2, httpx]


def _recording_client(stack: ModuleType, seen: list[Any]) -> Any:
    def handler(request: Any) -> Any:
        seen.append(request)
        answer = respond(200, doc.KEY_VALID)
        return stack.Response(answer.status_code, json=answer.json())

    return stack.Client(transport=stack.MockTransport(handler))


def test_the_default_client_is_httpx2() -> None:
    with HITLClient(api_key=TEST_KEY) as sync:
        assert isinstance(sync._http, httpx2.Client)
    assert isinstance(AsyncHITLClient(api_key=TEST_KEY)._http, httpx2.AsyncClient)


@pytest.mark.parametrize("stack", STACKS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("timeout_stack", STACKS, ids=lambda m: f"timeout-{m.__name__}")
def test_a_timeout_of_either_library_reaches_either_client(
    stack: ModuleType, timeout_stack: ModuleType
) -> None:
    # httpx2 2.17 refuses an httpx.Timeout outright: the client converts, never forwards.
    seen: list[Any] = []
    given = timeout_stack.Timeout(3.0, connect=1.0)
    HITLClient(api_key=TEST_KEY, timeout=given, http_client=_recording_client(stack, seen)).test()
    HITLClient(api_key=TEST_KEY, timeout=7.5, http_client=_recording_client(stack, seen)).test()
    assert isinstance(seen[0], stack.Request)
    assert seen[0].extensions["timeout"] == given.as_dict()
    assert seen[1].extensions["timeout"] == httpx2.Timeout(7.5).as_dict()


@pytest.mark.parametrize(
    ("client_cls", "given"),
    [
        (HITLClient, httpx2.AsyncClient()),
        (HITLClient, httpx.AsyncClient()),
        (AsyncHITLClient, httpx2.Client()),
        (HITLClient, object()),
    ],
    ids=["sync-given-httpx2-async", "sync-given-httpx-async", "async-given-sync", "not-a-client"],
)
def test_a_client_of_the_wrong_kind_is_a_config_error(client_cls: type, given: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        client_cls(api_key=TEST_KEY, http_client=given)
    assert caught.value.field == "http_client"
    assert "httpx2" in caught.value.fix


def test_starlette_testclient_is_a_client_as_it_is() -> None:
    app = create_app(":memory:")
    server = app.state.hitl
    try:
        credentials = server.bootstrap()
        with TestClient(app, base_url="http://testserver") as http:
            client = HITLClient(
                credentials.api_key, base_url="http://testserver/v1", http_client=http
            )
            assert client.test().email
            assert [loop.id for loop in client.loops.list()] == [credentials.loop_id]
    finally:
        server.close()


def test_local_hitl_on_an_httpx2_testclient() -> None:
    with local_hitl() as hitl:
        assert isinstance(hitl.http, httpx2.Client)
        created = hitl.client.requests.create(
            hitl.loop_id,
            request_text="Ship?",
            response_type="boolean",
            default_response=False,
            timeout_seconds=600,
        )
        hitl.reviewer.respond(created.request_id, True)
        assert hitl.client.requests.get(created.request_id).response_value is True


def test_local_hitl_on_an_httpx_testclient() -> None:
    # Starlette builds TestClient on httpx when httpx2 cannot be imported (older installs):
    # a fresh interpreter imports it that way, then runs the same round trip.
    script = textwrap.dedent(
        """
        import sys, warnings
        warnings.simplefilter("ignore")  # Starlette deprecates its httpx fallback
        import httpx, httpx2
        sys.modules["httpx2"] = None
        import starlette.testclient
        sys.modules["httpx2"] = httpx2
        from hitl_agent.testing import local_hitl
        with local_hitl() as hitl:
            assert isinstance(hitl.http, httpx.Client), type(hitl.http).__mro__
            created = hitl.client.requests.create(
                hitl.loop_id, request_text="Ship?", response_type="boolean",
                default_response=False, timeout_seconds=600)
            hitl.reviewer.respond(created.request_id, True)
            print(hitl.client.requests.get(created.request_id).response_value)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "True"
