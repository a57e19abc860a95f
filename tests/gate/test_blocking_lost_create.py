"""Issue 20 F8: a blocking review with the default (random) key settles its own lost create.

Nobody can call again with a random key, so "the next call reconciles" never happened: the
caller's retry made a second request (the reviewer saw two) and the first intent row stayed
``intent`` for ever. Now ``review()``/``areview()`` list the loop for the key they stamped
before they return or raise:

* the server stored the request (its response was lost): the review waits on it, one request;
* the loop holds none (the create never arrived): the intent is discarded and the error says
  nothing was created and to pass ``key=``;
* the listing cannot tell (it fails too): the intent is discarded, the error says what to do.

No intent row outlives the review in any case. Sync and async twins run the same scenarios.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import httpx2
import pytest
from create_faults import AsyncFaults, Faults
from hitl_harness import Env

from hitl_agent import (
    AmbiguousCreateError,
    APIConnectionError,
    AsyncHITLClient,
    HITLClient,
    RetryPolicy,
    ReviewTimeoutError,
)
from hitl_agent.gate import Gatekeeper
from hitl_agent.ledger import SqliteLedger
from hitl_agent.testing import FakeClock, alocal_hitl

NO_RETRY = RetryPolicy(max_retries=0)


@pytest.fixture
def faulty(env: Env) -> Iterator[tuple[Faults, Gatekeeper]]:
    faults = Faults(env.hitl.http)
    client = HITLClient(
        env.hitl.api_key,
        base_url=env.hitl.base_url,
        http_client=cast(httpx.Client, faults),
        retry=NO_RETRY,
    )
    # poll_interval: no sweep runs within these tests' short waits (nothing to answer here).
    keeper = Gatekeeper(
        client=client, loop_id=env.hitl.loop_id, ledger=env.ledger, clock=env.clock,
        poll_interval=60.0,
    )  # fmt: skip
    yield faults, keeper


def _keys(requests: list[Any]) -> list[str]:
    return [(r.context or {}).get("hitl_agent", {}).get("key") for r in requests]


def test_a_lost_create_is_found_and_waited_on(env: Env, faulty: tuple[Faults, Gatekeeper]) -> None:
    faults, keeper = faulty
    faults.lose = True
    # Before: APIConnectionError, an intent row for ever, and the caller's retry asked twice.
    with pytest.raises(ReviewTimeoutError):
        keeper.review("Refund $40?", mode="block", wait_timeout=0.01)
    (request,) = env.requests()
    rows = env.ledger.list_open()
    assert [(r.state, r.request_id) for r in rows] == [("pending", request.id)]
    assert _keys([request]) == [rows[0].key] and faults.calls.count("POST") == 1


def test_a_create_that_never_arrived_leaves_nothing(
    env: Env, faulty: tuple[Faults, Gatekeeper]
) -> None:
    faults, keeper = faulty
    faults.drop = True
    with pytest.raises(AmbiguousCreateError, match="nothing was created") as caught:
        keeper.review("Refund $40?", mode="block", wait_timeout=0.01)
    assert caught.value.created is False and "key=" in str(caught.value)
    assert env.requests() == [] and env.ledger.list_open() == []
    with pytest.raises(ReviewTimeoutError):  # the retry the error asks for: one request
        keeper.review("Refund $40?", mode="block", wait_timeout=0.01)
    assert len(env.requests()) == 1


def test_a_listing_that_cannot_tell_discards_the_intent(
    env: Env, faulty: tuple[Faults, Gatekeeper]
) -> None:
    faults, keeper = faulty
    faults.lose = True
    faults.down = True
    with pytest.raises(AmbiguousCreateError, match="could not tell") as caught:
        keeper.review("Refund $40?", mode="block", wait_timeout=0.01)
    err = caught.value
    assert err.created is None and "key=" in str(err) and "InternalServerError" in str(err)
    assert err.key.startswith("blk|") and err.key in str(err)
    assert env.ledger.list_open() == []  # no intent row outlives the review
    faults.down = False
    assert _keys(env.requests()) == [err.key]  # the one request, named by the error


def test_an_explicit_key_keeps_its_intent_for_the_next_call(
    env: Env, faulty: tuple[Faults, Gatekeeper]
) -> None:
    """With ``key=`` the retry reconciles (unchanged): the intent stays for it."""
    faults, keeper = faulty
    faults.lose = True
    with pytest.raises(APIConnectionError) as caught:
        keeper.review("Refund $40?", key="order-1234", mode="block", wait_timeout=0.01)
    assert not isinstance(caught.value, AmbiguousCreateError)
    assert [r.state for r in env.ledger.list_open()] == ["intent"]
    with pytest.raises(ReviewTimeoutError):
        keeper.review("Refund $40?", key="order-1234", mode="block", wait_timeout=0.01)
    (request,) = env.requests()
    assert [(r.state, r.request_id) for r in env.ledger.list_open()] == [("pending", request.id)]


# -- the async twin (an AsyncHITLClient, so the async path really runs) ---------------------


def _run_async(tmp_path: Path, fault: str) -> tuple[str, list[str | None], list[tuple[str, Any]]]:
    """One ``areview`` whose create meets ``fault``: what it raised, the keys of the server's
    requests and the ledger's open rows (state, request id)."""

    async def main() -> tuple[str, list[str | None], list[tuple[str, Any]]]:
        clock = FakeClock()
        async with alocal_hitl(clock=clock) as hitl:
            ledger = SqliteLedger(tmp_path / "ledger.db", synchronous="OFF")
            ledger.setup()
            faults = AsyncFaults(hitl.http)
            setattr(faults, fault, True)
            if fault == "down":
                faults.lose = True
            async_client = AsyncHITLClient(
                hitl.api_key,
                base_url=hitl.base_url,
                http_client=cast(httpx2.AsyncClient, faults),
                retry=NO_RETRY,
            )
            keeper = Gatekeeper(
                client=HITLClient("unused", base_url="http://127.0.0.1:9/v1"),
                async_client=async_client, loop_id=hitl.loop_id, ledger=ledger, clock=clock,
                poll_interval=60.0,
            )  # fmt: skip
            try:
                await keeper.areview("Refund $40?", mode="block", wait_timeout=0.01)
                raised = "nothing"
            except ReviewTimeoutError:
                raised = "ReviewTimeoutError"
            except AmbiguousCreateError as err:
                raised = f"AmbiguousCreateError created={err.created}"
                assert "key=" in str(err)
            faults.down = False
            requests = [r async for r in hitl.client.requests.iter(loop_id=hitl.loop_id)]
            rows = [(r.state, r.request_id) for r in ledger.list_open()]
            ledger.close()
            return raised, _keys(requests), rows

    return asyncio.run(main())


def test_the_async_twin_finds_a_lost_create(tmp_path: Path) -> None:
    raised, keys, rows = _run_async(tmp_path, "lose")
    assert raised == "ReviewTimeoutError" and len(keys) == 1
    assert [state for state, _ in rows] == ["pending"]


def test_the_async_twin_leaves_nothing_when_the_create_never_arrived(tmp_path: Path) -> None:
    assert _run_async(tmp_path, "drop") == ("AmbiguousCreateError created=False", [], [])


def test_the_async_twin_discards_the_intent_when_it_cannot_tell(tmp_path: Path) -> None:
    raised, keys, rows = _run_async(tmp_path, "down")
    assert raised == "AmbiguousCreateError created=None" and len(keys) == 1 and rows == []
