"""hitl_agent.testing: FakeClock, local_hitl and alocal_hitl, as users' tests use them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from hitl_agent import NotFoundError
from hitl_agent.server import ServerError
from hitl_agent.testing import FakeClock, alocal_hitl, local_hitl


def test_fake_clock_moves_only_when_advanced() -> None:
    clock = FakeClock(1000.0)
    assert clock() == clock.now() == 1000.0
    assert clock.advance(2.5) == 1002.5
    assert clock() == 1002.5
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(-1)


def test_local_hitl_round_trip_with_scripted_reviewer() -> None:
    with local_hitl() as hitl:
        created = hitl.client.requests.create(
            hitl.loop_id,
            request_text="Deploy **prod**?",
            response_type="single_select",
            response_config={"options": ["Approve", "Reject"]},
            default_response="reject",
            timeout_seconds=600,
        )
        queue = hitl.reviewer.queue()
        assert [item["id"] for item in queue] == [created.request_id]
        assert "<strong>prod</strong>" in queue[0]["request_html"]
        hitl.reviewer.claim(created.request_id)
        assert hitl.client.requests.get(created.request_id).status == "claimed"
        hitl.reviewer.respond(created.request_id, "approve")
        request = hitl.client.requests.get(created.request_id)
        assert request.status == "completed"
        assert request.response_value == "approve"
        assert hitl.base_url == "http://testserver/v1"
        assert hitl.api_key not in repr(hitl)


def test_local_hitl_timeout_with_fake_clock_and_tick_sync() -> None:
    clock = FakeClock()
    with local_hitl(clock=clock) as hitl:
        created = hitl.client.requests.create(
            hitl.loop_id,
            request_text="Ship?",
            response_type="boolean",
            default_response=False,
            timeout_seconds=60,
        )
        clock.advance(59)
        hitl.tick_sync()
        assert hitl.client.requests.get(created.request_id).status == "pending"
        clock.advance(1)
        hitl.tick_sync()
        assert hitl.client.requests.get(created.request_id).status == "timeout"


def test_scripted_reviewer_refusal_raises_server_error() -> None:
    with local_hitl() as hitl:
        created = hitl.client.requests.create(
            hitl.loop_id,
            request_text="Rate it",
            response_type="rating",
            response_config={"scale_max": 5},
            default_response=1,
            timeout_seconds=600,
        )
        with pytest.raises(ServerError) as info:
            hitl.reviewer.respond(created.request_id, 9)
        assert info.value.status == 400
        assert "response_data" in str(info.value.data)
        with pytest.raises(NotFoundError):
            hitl.client.requests.get("0" * 24)


def test_local_hitl_file_db_survives_reopen(tmp_path: Path) -> None:
    db = tmp_path / "hitl.db"
    with local_hitl(db=db) as hitl:
        created = hitl.client.requests.create(
            hitl.loop_id,
            request_text="Keep me",
            response_type="text",
            default_response="",
            processing_type="deferred",
        )
        first_key = hitl.api_key
    with local_hitl(db=db) as hitl:
        assert hitl.api_key == first_key
        assert hitl.client.requests.get(created.request_id).request_text == "Keep me"


def test_alocal_hitl_async_round_trip_and_callback() -> None:
    received: list[bytes] = []

    async def receiver(request: httpx.Request) -> httpx.Response:
        received.append(request.content)
        return httpx.Response(200)

    async def scenario() -> None:
        async with (
            httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as callbacks,
            alocal_hitl(callback_client=callbacks) as hitl,
        ):
            created = await hitl.client.requests.create(
                hitl.loop_id,
                request_text="Ship?",
                response_type="boolean",
                default_response=False,
                timeout_seconds=600,
                callback_url="https://receiver.test/hook",
            )
            queue = await hitl.reviewer.queue()
            assert queue[0]["id"] == created.request_id
            await hitl.reviewer.respond(created.request_id, True)
            await hitl.tick()
            request = await hitl.client.requests.get(created.request_id)
            assert request.response_value is True

    asyncio.run(scenario())
    assert len(received) == 1
    assert b'"event":"request.completed"' in received[0]


def test_alocal_hitl_background_scheduler_delivers_without_tick() -> None:
    received: list[bytes] = []

    async def receiver(request: httpx.Request) -> httpx.Response:
        received.append(request.content)
        return httpx.Response(200)

    async def scenario() -> None:
        async with (
            httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as callbacks,
            alocal_hitl(callback_client=callbacks, scheduler_interval=0.05) as hitl,
        ):
            created = await hitl.client.requests.create(
                hitl.loop_id,
                request_text="Ship?",
                response_type="boolean",
                default_response=False,
                timeout_seconds=600,
                callback_url="https://receiver.test/hook",
            )
            await hitl.client.requests.cancel(created.request_id)
            for _ in range(100):
                if received:
                    break
                await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert len(received) == 1
    assert b'"event":"request.cancelled"' in received[0]


def test_hitl_or_local_is_offline_without_a_key_and_strict_with_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hitl_agent import ConfigError
    from hitl_agent.testing import hitl_or_local

    with hitl_or_local() as (client, loop_id, reviewer):
        assert reviewer is not None  # offline: the script plays the reviewer
        created = client.requests.create(
            loop_id,
            request_text="Ship?",
            response_type="boolean",
            default_response=False,
            timeout_seconds=60,
        )
        reviewer.respond(created.request_id, True)
        assert client.requests.get(created.request_id).response_value is True
    monkeypatch.setenv("HITL_API_KEY", "k" * 32)
    monkeypatch.setenv("HITL_LIVE", "1")  # the opt-in; an exported key alone stays offline
    monkeypatch.delenv("HITL_LOOP_ID", raising=False)
    with pytest.raises(ConfigError, match="HITL_LOOP_ID"), hitl_or_local():
        pass
