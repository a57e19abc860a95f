"""Gatekeeper: create-once (intent, reconcile, refusal), tokens, blocking mode, config errors."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import NoReturn

import httpx
import pytest
from hitl_harness import SECRET, Env

from hitl_agent import APITimeoutError, BadRequestError, ConfigError
from hitl_agent._hooks import set_hook
from hitl_agent._tokens import derive_token, token_hash
from hitl_agent.gate import (
    Gatekeeper,
    ReviewMismatchError,
    ReviewSpec,
    ReviewTimeoutError,
    ensure_request,
)


def test_ambiguous_create_keeps_the_intent_and_the_next_call_reconciles(env: Env) -> None:
    spec = ReviewSpec.build("Transfer?")

    def lose_the_response(name: str) -> None:
        if name == "gate.after_create":  # the POST arrived, the answer was lost
            raise APITimeoutError()

    set_hook(lose_the_response)
    try:
        with pytest.raises(APITimeoutError):
            ensure_request(env.keeper._target, env.hitl.client, "k1", spec)
    finally:
        set_hook(None)
    assert env.ledger.get("k1").state == "intent"  # type: ignore[union-attr]
    row = ensure_request(env.keeper._target, env.hitl.client, "k1", spec)
    assert row.state == "pending" and row.request_id == env.only_request_id()
    # The stored token hash is sha256 of the HMAC token, never the token.
    assert row.token_hash == token_hash(derive_token(SECRET, "k1"))
    request = env.hitl.client.requests.get(row.request_id)
    assert request.callback_url == f"http://app.test/hitl/{derive_token(SECRET, 'k1')}"
    assert request.context == {"hitl_agent": {"key": "k1"}}


def test_definite_refusal_discards_the_intent(env: Env) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": True, "msg": "No active members found"})

    from hitl_agent import HITLClient

    with httpx.Client(transport=httpx.MockTransport(refuse)) as http:
        client = HITLClient("k", base_url="http://mock/v1", http_client=http)
        with pytest.raises(BadRequestError):
            ensure_request(env.keeper._target, client, "k2", ReviewSpec.build("Go?"))
    assert env.ledger.get("k2") is None


def test_a_different_question_under_the_same_key_fails_closed(env: Env) -> None:
    ensure_request(env.keeper._target, env.hitl.client, "k3", ReviewSpec.build("Pay 10?"))
    with pytest.raises(ReviewMismatchError, match="tool_call_id"):
        ensure_request(env.keeper._target, env.hitl.client, "k3", ReviewSpec.build("Pay 99?"))


def test_blocking_review_waits_on_the_shared_poll_thread(env: Env) -> None:
    from hitl_agent.gate._blocking import hub

    results: list[object] = []

    def ask(text: str) -> None:
        results.append(env.keeper.review(text, wait_timeout=30))

    threads = [threading.Thread(target=ask, args=(f"Q{i}?",)) for i in range(3)]
    for thread in threads:
        thread.start()
    while len(env.requests()) < 3:
        threading.Event().wait(0.01)
    assert hub.poll_threads == 1  # one poll loop for all waits
    for request in env.requests():
        env.hitl.reviewer.respond(request.id, request.request_text == "Q1?")
    for thread in threads:
        thread.join(30)
    outcomes = sorted(d.outcome for d in results)  # type: ignore[attr-defined]
    assert outcomes == ["approved", "rejected", "rejected"]
    # The same key later returns the recorded decision without a new request.
    first = env.requests()[0]
    row = env.ledger.get_by_request_id(first.id)
    assert row is not None
    again = env.keeper.review(first.request_text or "", key=row.key, wait_timeout=5)
    assert again.request_id == first.id and len(env.requests()) == 3


def test_blocking_review_timeout_and_async_twin(env: Env) -> None:
    with pytest.raises(ReviewTimeoutError):
        env.keeper.review("Slow?", key="slow", wait_timeout=0.1)

    async def main() -> str:
        task = asyncio.create_task(env.keeper.areview("Async?", key="async", wait_timeout=30))
        # The ledger gets the request id just after the server has the request: wait for it.
        while (row := env.ledger.get("async")) is None or row.request_id is None:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(env.hitl.reviewer.respond, row.request_id, True)
        return (await task).outcome

    assert asyncio.run(main()) == "approved"


def test_a_cancelled_async_wait_leaves_the_hub(env: Env) -> None:
    from hitl_agent.gate._blocking import hub

    before = hub.waiting

    async def main() -> None:
        task = asyncio.create_task(env.keeper.areview("Cancel me?", key="cancelled"))
        while hub.waiting == before:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    # Nobody waits any more: the hub no longer holds the waiter nor sweeps for it.
    assert hub.waiting == before
    # The request stays open; the same key waits for it again and gets its answer.
    row = env.ledger.get("cancelled")
    assert row is not None and row.request_id is not None
    env.hitl.reviewer.respond(row.request_id, True)
    assert env.keeper.review("Cancel me?", key="cancelled", wait_timeout=30).approved


def test_config_errors_name_the_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HITL_CALLBACK_SECRET", raising=False)
    from hitl_agent import HITLClient

    with HITLClient("k", base_url="http://mock/v1") as client:
        with pytest.raises(ConfigError, match=r"callback_secret.*at least 32 bytes"):
            Gatekeeper(
                client=client,
                loop_id="l",
                ledger=f"sqlite:///{tmp_path}/a.db",
                callback_url="https://my.app/hitl",
                callback_secret="short",
            )
        with Gatekeeper(
            client=client,
            loop_id="l",
            ledger=f"sqlite:///{tmp_path}/a.db",
            callback_url="https://my.app/hitl",
            callback_secret=SECRET,
        ) as keeper:
            assert SECRET not in repr(keeper)
            with pytest.raises(ConfigError, match="default_response"):
                keeper.review("Rate", response_type="rating", response_config={"scale_max": 5})
            with pytest.raises(ConfigError, match="timeout_seconds"):
                keeper.review("Now?", timeout_seconds=5)


@pytest.mark.parametrize("twin", ["review", "areview"])
def test_a_failed_settle_leaves_no_waiter_in_the_hub(
    env: Env, monkeypatch: pytest.MonkeyPatch, twin: str
) -> None:
    # The ledger read right after registering fails: the caller gets the error, and no
    # waiter is left in the hub to be swept for until a decision (sync and async alike).
    from hitl_agent import LedgerError
    from hitl_agent.gate._blocking import hub

    before = hub.waiting
    real = env.ledger.get_by_request_id

    def broken(request_id: str) -> NoReturn:
        raise LedgerError("the ledger is down")

    monkeypatch.setattr(env.ledger, "get_by_request_id", broken)
    with pytest.raises(LedgerError):
        if twin == "review":
            env.keeper.review("Settle?", key=f"settle-{twin}", wait_timeout=5)
        else:
            asyncio.run(env.keeper.areview("Settle?", key=f"settle-{twin}", wait_timeout=5))
    assert hub.waiting == before
    monkeypatch.setattr(env.ledger, "get_by_request_id", real)
