"""W4: a create whose connection never opened leaves no orphan ``intent`` row.

A blocking review's key is random, so an intent kept after a ConnectError is an orphan that
nothing ever reconciles. The connection never opened, so nothing reached the server (and the
client retries a create only after such errors): the intent is discarded, and a retry with
the same explicit key creates exactly once. An ambiguous failure (the POST left) still keeps
its intent for reconciliation.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import httpx
import httpx2
import pytest
from hitl_harness import Env

from hitl_agent import (
    APIConnectionError,
    APITimeoutError,
    AsyncHITLClient,
    HITLClient,
    RetryPolicy,
)
from hitl_agent.gate import Gatekeeper, ReviewSpec, ensure_request

FAST = RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.001)


@pytest.fixture
def dead_url() -> Iterator[str]:
    """A loopback port that refuses connections (bound, then closed)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    yield f"http://127.0.0.1:{port}/v1"


def _keeper(env: Env, client: HITLClient, **kwargs: object) -> Gatekeeper:
    return Gatekeeper(
        client=client,
        loop_id=env.hitl.loop_id,
        ledger=env.ledger,
        callback_url="http://app.test/hitl",
        callback_secret="s" * 32,
        clock=env.clock,
        **kwargs,  # type: ignore[arg-type]
    )


def test_blocking_review_connect_error_leaves_no_row(env: Env, dead_url: str) -> None:
    with HITLClient("k", base_url=dead_url, retry=FAST) as dead:
        keeper = _keeper(env, dead)
        for _ in range(3):
            with pytest.raises(APIConnectionError) as raised:
                keeper.review("Refund $5?", mode="block", wait_timeout=1)
            assert isinstance(raised.value.__cause__, httpx2.ConnectError)  # the default stack
    assert env.ledger.list_open() == []


def test_async_blocking_review_connect_error_leaves_no_row(env: Env, dead_url: str) -> None:
    async def main() -> None:
        async with AsyncHITLClient("k", base_url=dead_url, retry=FAST) as dead:
            with HITLClient("k", base_url=dead_url, retry=FAST) as sync_dead:
                keeper = _keeper(env, sync_dead, async_client=dead)
                with pytest.raises(APIConnectionError):
                    await keeper.areview("Refund $6?", mode="block", wait_timeout=1)

    asyncio.run(main())
    assert env.ledger.list_open() == []


def test_retry_with_the_same_key_creates_once(env: Env, dead_url: str) -> None:
    spec = ReviewSpec.build("Refund $7?")
    with (
        HITLClient("k", base_url=dead_url, retry=FAST) as dead,
        pytest.raises(APIConnectionError),
    ):
        ensure_request(env.keeper._target, dead, "same-key", spec)
    assert env.ledger.get("same-key") is None
    row = ensure_request(env.keeper._target, env.hitl.client, "same-key", spec)
    assert row.state == "pending" and row.request_id == env.only_request_id()


def test_an_ambiguous_create_still_keeps_its_intent(env: Env) -> None:
    """The POST left and no answer came: the request may exist, so the intent stays."""

    def read_timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    with (
        httpx.Client(transport=httpx.MockTransport(read_timeout)) as http,
        HITLClient("k", base_url="http://mock/v1", http_client=http, retry=FAST) as client,
        pytest.raises(APITimeoutError),
    ):
        ensure_request(env.keeper._target, client, "ambiguous", ReviewSpec.build("Go?"))
    row = env.ledger.get("ambiguous")
    assert row is not None and row.state == "intent"
