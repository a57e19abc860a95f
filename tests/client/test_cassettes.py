"""The documented exchanges, replayed from hand-built vcrpy cassettes through the real transport.

The client is built with no ``http_client``, so requests go through httpx's default
``HTTPTransport`` against https://api.hitl.sh/v1; vcrpy intercepts that transport and, with
``record_mode="none"``, fails any request the cassette does not hold, so nothing reaches the
network. Matchers check the method, the exact URL and query, the JSON body and the bearer key.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import vcr  # type: ignore[import-untyped]
from vcr.request import Request as VcrRequest  # type: ignore[import-untyped]

from hitl_agent import (
    AsyncHITLClient,
    AuthenticationError,
    BadRequestError,
    HITLClient,
    RateLimitError,
)

from . import documented as doc
from .conftest import TEST_KEY

pytestmark = pytest.mark.anyio

CASSETTES = Path(__file__).parent / "cassettes"


def _json_body(sent: VcrRequest, stored: VcrRequest) -> None:
    def parse(body: Any) -> Any:
        if body in (None, b"", ""):
            return None
        return json.loads(body)

    assert parse(sent.body) == parse(stored.body)


def _bearer(sent: VcrRequest, stored: VcrRequest) -> None:
    # The cassettes store no key; the request must carry the client's.
    assert sent.headers.get("Authorization") == f"Bearer {TEST_KEY}"
    assert "Authorization" not in stored.headers


REPLAY = vcr.VCR(
    cassette_library_dir=str(CASSETTES),
    record_mode="none",
    match_on=["method", "scheme", "host", "port", "path", "query", "json_body", "bearer"],
)
REPLAY.register_matcher("json_body", _json_body)
REPLAY.register_matcher("bearer", _bearer)


class Api:
    """A default-transport client of the current mode, with an awaitable ``call``."""

    def __init__(self, mode: str) -> None:
        self.client: HITLClient | AsyncHITLClient = (
            HITLClient(api_key=TEST_KEY) if mode == "sync" else AsyncHITLClient(api_key=TEST_KEY)
        )

    async def call(self, dotted: str, *args: Any, **kwargs: Any) -> Any:
        target: Any = self.client
        for part in dotted.split("."):
            target = getattr(target, part)
        result = target(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result


@pytest.fixture
async def api(mode: str) -> AsyncIterator[Api]:
    wrapper = Api(mode)
    yield wrapper
    closed = wrapper.client.close()
    if inspect.isawaitable(closed):
        await closed


def replay(name: str) -> Any:
    return REPLAY.use_cassette(f"{name}.yaml", allow_playback_repeats=False)


CREATE: dict[str, Any] = {
    "request_text": "Please review this user post for policy compliance",
    "response_type": "single_select",
    "response_config": {"options": ["Approve", "Reject", "Needs Changes"]},
    "default_response": "reject",
    "priority": "high",
    "timeout_seconds": 3600,
    "context": {"user_id": "user123", "post_id": "post456"},
    "platform_version": "1.0.0",
    "callback_url": "https://example.com/webhook/response",
}


async def test_key_check(api: Api) -> None:
    with replay("key_test") as cassette:
        info = await api.call("test")
    assert cassette.all_played
    assert info.api_key_id == "65f1234567890abcdef12349"
    assert info.rate_limit is not None and info.rate_limit.remaining == 95
    assert api.client.rate_limit is not None and api.client.rate_limit.remaining == 97


async def test_loop_lifecycle(api: Api) -> None:
    with replay("loops") as cassette:
        created = await api.call(
            "loops.create",
            "Content Moderation Review",
            icon="shield-check",
            description="Review user-generated content",
        )
        loops = await api.call("loops.list")
        loop = await api.call("loops.get", doc.LOOP_ID)
        updated = await api.call("loops.update", doc.LOOP_ID, name="Moderation")
        members = await api.call("loops.members", doc.LOOP_ID)
        removed = await api.call("loops.remove_member", doc.LOOP_ID, doc.REVIEWER_ID)
        deleted = await api.call("loops.delete", doc.LOOP_ID)
    assert cassette.all_played and cassette.play_count == 7
    assert created.invite_code == "ABC123DEF" and created.loop.id == doc.LOOP_ID
    assert [item.name for item in loops] == ["Content Moderation Review", "Refunds"]
    assert loop.member_count == 1
    assert updated.name == "Moderation"
    assert (members.total_count, members.active_count) == (4, 3)
    assert removed.user_id == doc.REVIEWER_ID
    assert deleted.deleted_data is not None and deleted.deleted_data.members_removed == 5


async def test_request_create(api: Api) -> None:
    with replay("request_create") as cassette:
        created = await api.call("requests.create", doc.LOOP_ID, **CREATE)
    assert cassette.all_played
    assert created.request_id == doc.REQUEST_ID
    assert created.timeout_at == datetime(2024, 3, 15, 11, 30, tzinfo=UTC)


async def test_request_get_completed_shape_a(api: Api) -> None:
    with replay("request_get_completed_shape_a"):
        request = await api.call("requests.get", doc.REQUEST_ID)
    assert request.status == "completed" and request.is_terminal
    assert request.response_data == "Approve" and request.response_value == "Approve"
    assert request.context == {"user_id": "user123", "post_id": "post456"}


async def test_request_get_shape_b(api: Api) -> None:
    with replay("request_get_shape_b"):
        request = await api.call("requests.get", doc.REQUEST_ID)
    assert request.response_data == {"selected_value": "approve", "selected_label": "✅ Approve"}
    assert request.response_value == "approve"


async def test_requests_list(api: Api) -> None:
    with replay("requests_list") as cassette:
        page = await api.call("requests.list", status="completed", loop_id=doc.LOOP_ID)
    assert cassette.all_played
    assert [r.id for r in page.requests] == [doc.REQUEST_ID, "65f1234567890abcdef12351"]
    assert page.has_more is True and page.total == 15


@pytest.mark.parametrize(
    ("cassette_name", "previous", "refunded"),
    [("request_cancel_pending", "pending", True), ("request_cancel_claimed", "claimed", False)],
)
async def test_request_cancel(api: Api, cassette_name: str, previous: str, refunded: bool) -> None:
    with replay(cassette_name):
        result = await api.call("requests.cancel", doc.REQUEST_ID)
    assert result.status == "cancelled" and result.previous_status == previous
    assert result.refund_info is not None and result.refund_info.refunded is refunded


async def test_request_feedback(api: Api) -> None:
    with replay("request_feedback"):
        result = await api.call("requests.add_feedback", doc.REQUEST_ID, doc.FEEDBACK_SENT)
    assert result.feedback == doc.FEEDBACK_SENT and result.reviewer_notified is True


async def test_401(api: Api) -> None:
    with replay("error_401"), pytest.raises(AuthenticationError) as caught:
        await api.call("test")
    assert caught.value.msg == "Invalid authorization token"
    assert TEST_KEY not in str(caught.value)


async def test_429_on_create_is_raised_with_figures_and_not_retried(api: Api) -> None:
    with replay("error_429") as cassette, pytest.raises(RateLimitError) as caught:
        await api.call("requests.create", doc.LOOP_ID, **CREATE)
    assert cassette.play_count == 1
    err = caught.value
    assert (err.usage_count, err.usage_limit, err.remaining) == (100, 100, 0)
    assert err.reset_at == datetime(2024, 3, 15, 11, tzinfo=UTC)
    assert api.client.rate_limit is not None and api.client.rate_limit.remaining == 0


async def test_400_validation_with_string_data(api: Api) -> None:
    with replay("error_400_validation"), pytest.raises(BadRequestError) as caught:
        await api.call("requests.create", doc.LOOP_ID, **CREATE)
    assert caught.value.msg == "Validation failed"
    assert caught.value.data == "timeout_seconds is required for time-sensitive requests"
    assert "timeout_seconds is required" in str(caught.value)


async def test_a_request_not_in_the_cassette_never_reaches_the_network(api: Api) -> None:
    # record_mode="none": an unmatched call fails inside the transport instead of going out.
    with replay("key_test"), pytest.raises(Exception) as caught:
        await api.call("loops.list")
    assert "CannotOverwriteExistingCassetteException" in type(caught.value).__name__
