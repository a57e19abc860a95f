"""Every endpoint, sync and async: method, exact path, query, JSON body, auth, parsed result.

Each row answers with the documented example of hitl-api.md (see ``documented.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from hitl_agent import ConfigError, EditedText, Request
from hitl_agent.models import (
    CancelResult,
    CreatedRequest,
    FeedbackResult,
    KeyInfo,
    Loop,
    LoopCreated,
    LoopDeleted,
    LoopMembers,
    MemberRemoved,
    RequestPage,
    SingleSelectConfig,
)

from . import documented as doc
from .conftest import TEST_KEY, Harness, respond

pytestmark = pytest.mark.anyio


@dataclass
class Row:
    call: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    answer: dict[str, Any]
    method: str
    path: str
    check: Callable[[Any], None]
    query: dict[str, str] = field(default_factory=dict)
    body: Any = None
    status: int = 200


def _key(result: KeyInfo) -> None:
    assert isinstance(result, KeyInfo)
    assert result.email == "user@example.com"
    assert result.account_status == "active"
    assert result.rate_limit is not None
    assert (result.rate_limit.limit, result.rate_limit.remaining) == (100, 95)
    assert result.rate_limit.reset_at == datetime(2024, 3, 15, 15, tzinfo=UTC)
    assert "requests:write" in result.permissions


def _loop_created(result: LoopCreated) -> None:
    assert isinstance(result, LoopCreated)
    assert result.loop.id == doc.LOOP_ID
    assert result.loop.members[0].email == "creator@example.com"
    assert result.invite_code == "ABC123DEF"
    assert result.join_url == "https://my.hitl.sh/join/ABC123DEF"


def _loops(result: list[Loop]) -> None:
    assert [loop.id for loop in result] == [doc.LOOP_ID, "65f1234567890abcdef12399"]
    assert [loop.name for loop in result] == ["Content Moderation Review", "Refunds"]
    assert result[0].member_count == 1


def _loop(result: Loop) -> None:
    assert isinstance(result, Loop)
    assert (result.id, result.icon, result.creator_id) == (doc.LOOP_ID, "shield-check", doc.USER_ID)


def _loop_updated(result: Loop) -> None:
    assert result.name == "Moderation"
    assert result.updated_at == datetime(2024, 3, 15, 11, tzinfo=UTC)


def _loop_deleted(result: LoopDeleted) -> None:
    assert result.loop_id == doc.LOOP_ID
    assert result.deleted_data is not None
    assert result.deleted_data.requests_deleted == 23


def _members(result: LoopMembers) -> None:
    assert [m.status for m in result.members] == ["active", "pending"]
    assert result.members[1].joined_at is None
    assert (result.total_count, result.active_count, result.pending_count) == (4, 3, 1)
    # Undocumented-in-openapi extras are kept, not rejected.
    assert result.model_extra is not None
    assert result.model_extra["statistics"]["avg_join_time_days"] == 0.5


def _member_removed(result: MemberRemoved) -> None:
    assert (result.loop_id, result.user_id) == (doc.LOOP_ID, doc.REVIEWER_ID)


def _created(result: CreatedRequest) -> None:
    assert isinstance(result, CreatedRequest)
    assert result.request_id == doc.REQUEST_ID
    assert (result.status, result.broadcasted_to, result.notifications_sent) == ("pending", 4, 3)
    assert result.polling_url == f"/v1/api/requests/{doc.REQUEST_ID}"


def _got(result: Request) -> None:
    assert isinstance(result, Request)
    assert result.id == doc.REQUEST_ID
    assert result.status == "completed" and result.is_terminal
    assert result.response_data == "Approve"
    assert result.response_value == "Approve"
    assert result.response_time_seconds == 900.5
    assert result.reviewer is not None and result.reviewer.id == doc.REVIEWER_ID
    assert result.model_extra is not None and result.model_extra["creator_id"] == doc.USER_ID


def _page(result: RequestPage) -> None:
    assert [r.status for r in result.requests] == ["completed", "pending"]
    assert [r.is_terminal for r in result.requests] == [True, False]
    assert result.requests[1].response_value is None
    assert (result.count, result.total, result.has_more) == (2, 15, True)
    assert result.pagination is not None and result.pagination.next_offset == 50


def _cancel_pending(result: CancelResult) -> None:
    assert result.previous_status == "pending"
    assert result.refund_info is not None and result.refund_info.refunded is True


def _cancel_claimed(result: CancelResult) -> None:
    assert result.previous_status == "claimed"
    assert result.refund_info is not None and result.refund_info.refunded is False
    assert result.refund_info.reason == "Request was already being processed by reviewer"


def _feedback(result: FeedbackResult) -> None:
    assert result.feedback_id == "65f1234567890abcdef12355"
    assert result.feedback == doc.FEEDBACK_SENT
    assert result.reviewer_notified is True


LOOP_PATH = f"/v1/api/loops/{doc.LOOP_ID}"
REQUEST_PATH = f"/v1/api/requests/{doc.REQUEST_ID}"

ROWS: dict[str, Row] = {
    "test": Row("test", (), {}, doc.KEY_VALID, "GET", "/v1/test", _key),
    "loops.create": Row(
        "loops.create",
        ("Content Moderation Review",),
        {"icon": "shield-check", "description": "Review user-generated content"},
        doc.LOOP_CREATED,
        "POST",
        "/v1/api/loops",
        _loop_created,
        body={
            "name": "Content Moderation Review",
            "icon": "shield-check",
            "description": "Review user-generated content",
        },
        status=201,
    ),
    "loops.list": Row("loops.list", (), {}, doc.LOOPS_LIST, "GET", "/v1/api/loops", _loops),
    "loops.get": Row("loops.get", (doc.LOOP_ID,), {}, doc.LOOP_GET, "GET", LOOP_PATH, _loop),
    "loops.update": Row(
        "loops.update",
        (doc.LOOP_ID,),
        {"name": "Moderation"},
        doc.LOOP_UPDATED,
        "PUT",
        LOOP_PATH,
        _loop_updated,
        body={"name": "Moderation"},
    ),
    "loops.delete": Row(
        "loops.delete", (doc.LOOP_ID,), {}, doc.LOOP_DELETED, "DELETE", LOOP_PATH, _loop_deleted
    ),
    "loops.members": Row(
        "loops.members",
        (doc.LOOP_ID,),
        {},
        doc.LOOP_MEMBERS,
        "GET",
        f"{LOOP_PATH}/members",
        _members,
    ),
    "loops.remove_member": Row(
        "loops.remove_member",
        (doc.LOOP_ID, doc.REVIEWER_ID),
        {},
        doc.MEMBER_REMOVED,
        "DELETE",
        f"{LOOP_PATH}/members/{doc.REVIEWER_ID}",
        _member_removed,
    ),
    "requests.create": Row(
        "requests.create",
        (doc.LOOP_ID,),
        {
            "request_text": "Please review this user post for policy compliance",
            "response_type": "single_select",
            "response_config": {"options": ["Approve", "Reject", "Needs Changes"]},
            "default_response": "reject",
            "priority": "high",
            "timeout_seconds": 3600,
            "context": {"user_id": "user123", "post_id": "post456"},
            "platform_version": "1.0.0",
            "callback_url": "https://example.com/webhook/response",
        },
        doc.REQUEST_CREATED,
        "POST",
        f"{LOOP_PATH}/requests",
        _created,
        body={
            "processing_type": "time-sensitive",
            "type": "markdown",
            "priority": "high",
            "request_text": "Please review this user post for policy compliance",
            "context": {"user_id": "user123", "post_id": "post456"},
            "timeout_seconds": 3600,
            "response_type": "single_select",
            # Plain strings are sent as explicit {value, label} pairs (hitl-api.md §7.1).
            "response_config": {
                "options": [
                    {"value": "approve", "label": "Approve"},
                    {"value": "reject", "label": "Reject"},
                    {"value": "needs_changes", "label": "Needs Changes"},
                ]
            },
            "default_response": "reject",
            "platform": "api",
            "platform_version": "1.0.0",
            "callback_url": "https://example.com/webhook/response",
        },
        status=201,
    ),
    "requests.get": Row(
        "requests.get", (doc.REQUEST_ID,), {}, doc.REQUEST_GET_COMPLETED, "GET", REQUEST_PATH, _got
    ),
    "requests.list": Row(
        "requests.list",
        (),
        {
            "status": "completed",
            "priority": "high",
            "loop_id": doc.LOOP_ID,
            "limit": 10,
            "offset": 20,
            "sort": "created_at_asc",
        },
        doc.REQUESTS_LIST,
        "GET",
        "/v1/api/requests",
        _page,
        query={
            "status": "completed",
            "priority": "high",
            "loop_id": doc.LOOP_ID,
            "limit": "10",
            "offset": "20",
            "sort": "created_at_asc",
        },
    ),
    "requests.list-defaults": Row(
        "requests.list",
        (),
        {},
        doc.REQUESTS_LIST,
        "GET",
        "/v1/api/requests",
        _page,
        query={"limit": "50", "offset": "0"},
    ),
    "requests.cancel-pending": Row(
        "requests.cancel",
        (doc.REQUEST_ID,),
        {},
        doc.CANCEL_PENDING,
        "DELETE",
        REQUEST_PATH,
        _cancel_pending,
    ),
    "requests.cancel-claimed": Row(
        "requests.cancel",
        (doc.REQUEST_ID,),
        {},
        doc.CANCEL_CLAIMED,
        "DELETE",
        REQUEST_PATH,
        _cancel_claimed,
    ),
    "requests.add_feedback": Row(
        "requests.add_feedback",
        (doc.REQUEST_ID, doc.FEEDBACK_SENT),
        {},
        doc.FEEDBACK_ADDED,
        "POST",
        f"{REQUEST_PATH}/feedback",
        _feedback,
        body={"feedback": doc.FEEDBACK_SENT},
    ),
}


@pytest.mark.parametrize("name", list(ROWS))
async def test_endpoint(name: str, make: Callable[..., Harness]) -> None:
    row = ROWS[name]
    api = make(respond(row.status, row.answer, headers=doc.RATE_HEADERS))

    result = await api.call(row.call, *row.args, **row.kwargs)

    sent = api.recorder.last
    assert len(api.recorder.seen) == 1
    assert sent.method == row.method
    assert sent.url.scheme == "https" and sent.url.host == "api.hitl.sh"
    assert sent.url.path == row.path
    assert dict(sent.url.params) == row.query
    assert api.recorder.body() == row.body
    assert sent.headers["authorization"] == f"Bearer {TEST_KEY}"
    assert sent.headers["accept"] == "application/json"
    if row.body is not None:
        assert sent.headers["content-type"] == "application/json"
    row.check(result)
    assert api.client.rate_limit is not None
    assert (api.client.rate_limit.limit, api.client.rate_limit.remaining) == (100, 99)
    assert api.client.rate_limit.reset_at == datetime.fromtimestamp(1642233600, tz=UTC)


async def test_shape_b_get_normalizes_to_the_option_value(make: Callable[..., Harness]) -> None:
    api = make(respond(200, doc.REQUEST_GET_SHAPE_B))
    request = await api.call("requests.get", doc.REQUEST_ID)
    assert request.response_value == "approve"
    assert request.response_data["selected_label"] == "✅ Approve"
    assert request.reviewer is not None and request.reviewer.name == "Sarah Reviewer"


async def test_create_accepts_config_model_and_all_media_fields(
    make: Callable[..., Harness],
) -> None:
    api = make(respond(201, doc.REQUEST_CREATED))
    config = SingleSelectConfig(options=[{"value": "ok", "label": "OK"}])
    await api.call(
        "requests.create",
        doc.LOOP_ID,
        request_text="Is this picture fine?",
        response_type="single_select",
        response_config=config,
        default_response="ok",
        processing_type="deferred",
        type="image",
        image_url="https://cdn.hitl.sh/uploads/img/abc123.jpg",
        priority="critical",
        platform="n8n",
    )
    body = api.recorder.body()
    assert body["type"] == "image"
    assert body["image_url"] == "https://cdn.hitl.sh/uploads/img/abc123.jpg"
    assert body["processing_type"] == "deferred" and "timeout_seconds" not in body
    assert body["response_config"] == {"options": [{"value": "ok", "label": "OK"}]}
    assert (body["priority"], body["platform"]) == ("critical", "n8n")


@pytest.mark.parametrize(
    ("content_type", "url_field"),
    [("file", "file_url"), ("video", "video_url"), ("audio", "audio_url")],
)
async def test_create_newer_content_types_send_their_url(
    content_type: str, url_field: str, make: Callable[..., Harness]
) -> None:
    api = make(respond(201, doc.REQUEST_CREATED))
    await api.call(
        "requests.create",
        doc.LOOP_ID,
        request_text="Check the attachment",
        response_type="boolean",
        default_response=False,
        timeout_seconds=600,
        type=content_type,
        **{url_field: "https://example.com/media.bin"},
    )
    body = api.recorder.body()
    assert body["type"] == content_type
    assert body[url_field] == "https://example.com/media.bin"
    assert body["response_config"] == {}


async def test_create_of_each_response_type_sends_the_validated_config(
    make: Callable[..., Harness],
) -> None:
    cases: list[tuple[str, dict[str, Any], Any, dict[str, Any]]] = [
        ("text", {}, "", {"max_length": 5000, "min_length": 0}),
        ("boolean", {"true_label": "Yes"}, True, {"true_label": "Yes"}),
        ("rating", {"min": 1, "max": 5}, 3, {"scale_max": 5, "scale_min": 1, "scale_step": 1}),
        (
            "number",
            {"max_value": 1000},
            12.5,
            {"max_value": 1000, "min_value": 0, "decimal_places": 2, "allow_negative": False},
        ),
        (
            "multi_select",
            {"options": ["Spam", "Grammar"]},
            ["spam"],
            {
                "options": [
                    {"value": "spam", "label": "Spam"},
                    {"value": "grammar", "label": "Grammar"},
                ],
                "max_selections": 2,
                "min_selections": 1,
            },
        ),
        (
            "editable_text",
            {"draft_text": "Hello"},
            "Hello",
            {"draft_text": "Hello", "max_length": 5000, "min_length": 0},
        ),
    ]
    api = make(respond(201, doc.REQUEST_CREATED))
    for response_type, config, default, sent in cases:
        await api.call(
            "requests.create",
            doc.LOOP_ID,
            request_text="Review",
            response_type=response_type,
            response_config=config,
            default_response=default,
            timeout_seconds=60,
        )
        body = api.recorder.body()
        assert body["response_type"] == response_type
        assert body["response_config"] == sent, response_type
        assert body["default_response"] == default


async def test_path_parameters_are_escaped(make: Callable[..., Harness]) -> None:
    api = make(respond(200, doc.REQUEST_GET_COMPLETED))
    await api.call("requests.get", "a/../b?c")
    assert api.recorder.last.url.raw_path == b"/v1/api/requests/a%2F..%2Fb%3Fc"


@pytest.mark.parametrize(
    ("call", "args"),
    [
        ("requests.get", ("",)),
        ("requests.cancel", ("",)),
        ("loops.get", ("",)),
        ("loops.remove_member", (doc.LOOP_ID, "")),
    ],
)
async def test_empty_path_parameter_is_refused_before_sending(
    call: str, args: tuple[str, ...], make: Callable[..., Harness]
) -> None:
    api = make(respond(200, {}))
    with pytest.raises(ValueError, match="Expected a non-empty value"):
        await api.call(call, *args)
    assert api.recorder.seen == []


async def test_flat_request_data_and_request_id_alias_parse(make: Callable[..., Harness]) -> None:
    # n8n tolerates a flat ``data.status``; the MCP scripts read ``data.request_id``.
    flat = {"request_id": doc.REQUEST_ID, "status": "claimed", "response_type": "editable_text",
            "response_data": {"revised_text": "Hi there", "was_edited": True}}  # fmt: skip
    api = make(respond(200, {"error": False, "msg": "ok", "data": flat}))
    request = await api.call("requests.get", doc.REQUEST_ID)
    assert request.id == doc.REQUEST_ID
    assert request.status == "claimed" and not request.is_terminal
    assert request.response_value == EditedText(text="Hi there", was_edited=True)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"response_config": {"options": []}}, "response_config.options"),
        ({"default_response": "maybe"}, "default_response"),
        ({"timeout_seconds": None}, "timeout_seconds"),
        ({"type": "image"}, "image_url"),
        ({"request_text": "x" * 2001}, "request_text"),
    ],
)
async def test_invalid_create_fails_before_any_network_call(
    overrides: dict[str, Any], field: str, make: Callable[..., Harness]
) -> None:
    api = make(respond(201, doc.REQUEST_CREATED))
    kwargs: dict[str, Any] = {
        "request_text": "Ship it?",
        "response_type": "single_select",
        "response_config": {"options": ["Approve", "Reject"]},
        "default_response": "reject",
        "timeout_seconds": 600,
        **overrides,
    }
    with pytest.raises(ConfigError) as caught:
        await api.call("requests.create", doc.LOOP_ID, **kwargs)
    assert caught.value.field == field
    assert api.recorder.seen == []


async def test_invalid_loop_and_feedback_fail_before_any_network_call(
    make: Callable[..., Harness],
) -> None:
    api = make(respond(200, doc.LOOP_GET))
    with pytest.raises(ConfigError) as caught:
        await api.call("loops.create", "")
    assert caught.value.field == "name"
    with pytest.raises(ConfigError) as caught:
        await api.call("loops.update", doc.LOOP_ID)
    assert caught.value.field == "name"
    with pytest.raises(ConfigError) as caught:
        await api.call("requests.add_feedback", doc.REQUEST_ID, {"rating": 9})
    assert caught.value.field == "feedback.rating"
    assert api.recorder.seen == []
