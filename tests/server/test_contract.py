"""The client's own calls against the local server, sync and async: every endpoint, with the
assertions the documented responses satisfy."""

from __future__ import annotations

import asyncio

import pytest

from hitl_agent import (
    AuthenticationError,
    BadRequestError,
    HITLClient,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
)
from hitl_agent.models import Request
from hitl_agent.server import ServerError
from hitl_agent.testing import FakeClock, alocal_hitl, local_hitl

OTHER_ID = "0123456789abcdef01234567"
SELECT = {"options": ["Approve", "Reject"]}


def test_sync_client_against_the_local_server() -> None:
    clock = FakeClock()
    with local_hitl(clock=clock) as hitl:
        client = hitl.client
        info = client.test()
        assert info.account_status == "active" and len(info.api_key_id or "") == 24

        created_loop = client.loops.create("Contract", icon="eye", description="d")
        loop_id = created_loop.loop.id
        assert created_loop.invite_code and created_loop.loop.member_count == 1
        assert {loop.id for loop in client.loops.list()} == {hitl.loop_id, loop_id}
        assert client.loops.get(loop_id).name == "Contract"
        assert client.loops.update(loop_id, name="Renamed").name == "Renamed"
        members = client.loops.members(hitl.loop_id)
        assert members.total_count == 2 and members.active_count == 2

        created = client.requests.create(
            hitl.loop_id, request_text="Ship?", response_type="single_select",
            response_config=SELECT, default_response="reject", timeout_seconds=600,
            priority="high", context={"thread": "t-1"},
        )  # fmt: skip
        assert created.status == "pending" and created.timeout_at is not None
        assert created.polling_url == f"/v1/api/requests/{created.request_id}"
        request = client.requests.get(created.request_id)
        assert isinstance(request, Request)
        assert (request.status, request.context, request.priority) == (
            "pending",
            {"thread": "t-1"},
            "high",
        )
        assert not request.is_terminal and request.response_value is None

        second = client.requests.create(
            hitl.loop_id, request_text="Again?", response_type="boolean", default_response=False,
            processing_type="deferred",
        )  # fmt: skip
        page = client.requests.list(status="pending", limit=1)
        assert (page.count, page.total, page.has_more) == (1, 2, True)
        assert [r.id for r in client.requests.iter(page_size=1)] == [
            second.request_id,
            created.request_id,
        ]

        hitl.reviewer.claim(created.request_id)
        clock.advance(12)
        hitl.reviewer.respond(created.request_id, "approve")
        done = client.requests.get(created.request_id)
        assert done.is_terminal and done.response_value == "approve"
        assert done.reviewer is not None and done.reviewer.email == "reviewer@localhost"
        assert done.response_time_seconds == 12

        feedback = client.requests.add_feedback(created.request_id, {"rating": 5, "comment": "ok"})
        assert feedback.request_id == created.request_id and feedback.feedback_id

        cancelled = client.requests.cancel(second.request_id)
        assert cancelled.previous_status == "pending"
        assert cancelled.refund_info is not None and cancelled.refund_info.refunded is True
        with pytest.raises(BadRequestError, match="cannot be cancelled"):
            client.requests.cancel(second.request_id)
        with pytest.raises(BadRequestError, match="completed requests"):
            client.requests.add_feedback(second.request_id, {"rating": 5})
        with pytest.raises(NotFoundError):
            client.requests.get(OTHER_ID)
        with pytest.raises(ServerError) as conflict:
            hitl.reviewer.respond(created.request_id, "reject")
        assert conflict.value.status == 409

        reviewer = client.loops.members(hitl.loop_id).members[0]
        assert reviewer.user_id is not None
        removed = client.loops.remove_member(hitl.loop_id, hitl.credentials.reviewer_id)
        assert removed.user_id == hitl.credentials.reviewer_id
        with pytest.raises(NotFoundError, match="Member not found"):
            client.loops.remove_member(hitl.loop_id, hitl.credentials.reviewer_id)
        deleted = client.loops.delete(loop_id)
        assert deleted.loop_id == loop_id and deleted.deleted_data is not None
        with pytest.raises(NotFoundError, match="Loop not found"):
            client.loops.get(loop_id)

        other = hitl.server.add_api_key("second-key")
        assert other.api_key_id != info.api_key_id
        foreign = HITLClient("second-key", base_url=hitl.base_url, http_client=client._http)
        with pytest.raises(PermissionDeniedError, match="Access denied to this request"):
            foreign.requests.get(created.request_id)
        bad = HITLClient("wrong", base_url=hitl.base_url, http_client=client._http)
        with pytest.raises(AuthenticationError):
            bad.test()


def test_sync_client_sees_the_quota() -> None:
    with local_hitl(rate_limit=2) as hitl:
        hitl.client.test()
        assert hitl.client.rate_limit is not None and hitl.client.rate_limit.remaining == 1
        hitl.client.loops.list()
        with pytest.raises(RateLimitError) as info:
            hitl.client.test()
        assert (info.value.usage_count, info.value.usage_limit, info.value.remaining) == (2, 2, 0)
        assert info.value.reset_at is not None


def test_async_client_against_the_local_server() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        async with alocal_hitl(clock=clock, rate_limit=100) as hitl:
            client = hitl.client
            info = await client.test()
            assert info.rate_limit is not None and info.rate_limit.limit == 100
            created_loop = await client.loops.create("Async loop")
            loop_id = created_loop.loop.id
            assert len(await client.loops.list()) == 2
            assert (await client.loops.get(loop_id)).icon == "shield-check"
            assert (await client.loops.update(loop_id, description="x")).description == "x"
            assert (await client.loops.members(loop_id)).total_count == 1

            created = await client.requests.create(
                hitl.loop_id, request_text="Rate", response_type="rating",
                response_config={"scale_max": 5}, default_response=1, timeout_seconds=60,
                callback_url="https://receiver.test/x",
            )  # fmt: skip
            page = await client.requests.list(loop_id=hitl.loop_id)
            assert page.total == 1 and page.requests[0].id == created.request_id
            assert [r.id async for r in client.requests.iter()] == [created.request_id]
            assert client.rate_limit is not None and client.rate_limit.remaining == 91

            queue = await hitl.reviewer.queue()
            assert queue[0]["id"] == created.request_id
            await hitl.reviewer.respond(created.request_id, 4)
            answered = await client.requests.get(created.request_id)
            assert answered.response_value == 4.0
            feedback = await client.requests.add_feedback(created.request_id, {"accuracy": 5})
            assert feedback.feedback == {"accuracy": 5}

            timed = await client.requests.create(
                hitl.loop_id, request_text="Wait", response_type="text", default_response="none",
                timeout_seconds=60,
            )  # fmt: skip
            clock.advance(60)
            await hitl.tick()
            expired = await client.requests.get(timed.request_id)
            assert expired.status == "timeout" and expired.default_response == "none"
            with pytest.raises(BadRequestError):
                await client.requests.cancel(timed.request_id)
            with pytest.raises(NotFoundError):
                await client.loops.get(OTHER_ID)
            owner = (await client.loops.members(hitl.loop_id)).members
            assert any(m.role == "admin" for m in owner)
            removed = await client.loops.remove_member(hitl.loop_id, hitl.credentials.reviewer_id)
            assert removed.loop_id == hitl.loop_id
            deleted = await client.loops.delete(loop_id)
            assert deleted.deleted_data is not None and deleted.deleted_data.members_removed == 1

    asyncio.run(scenario())
