"""The Request model (tolerant) and the create body (strict, checked before any network call)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hitl_agent import ConfigError, Request
from hitl_agent.models import (
    STATUS_ALIASES,
    TERMINAL_STATUSES,
    CreateRequestParams,
    FeedbackParams,
    LoopMembers,
    RequestPage,
)
from hitl_agent.models.base import validate_strict

from .strategies import RELAXED

# --- Request: tolerant on input --------------------------------------------------------------


def test_nested_and_flat_data_parse_alike() -> None:
    body = {"id": "r1", "status": "completed", "response_type": "boolean", "response_data": True}
    nested = Request.from_data({"request": body})
    flat = Request.from_data(body)
    assert nested == flat
    assert nested.response_value is True


def test_request_id_and_id_both_fill_id() -> None:
    assert Request.model_validate({"request_id": "abc"}).id == "abc"
    assert Request.model_validate({"id": "abc"}).id == "abc"
    assert Request.model_validate({"_id": "abc"}).id == "abc"


@pytest.mark.parametrize(
    ("status", "terminal"),
    [
        ("pending", False),
        ("claimed", False),
        ("", False),
        ("completed", True),
        ("timeout", True),
        ("cancelled", True),
        # Issue 22 W2: HITL.sh's n8n node and a docs snippet use these as final.
        ("answered", True),
        ("resolved", True),
        ("failed", True),
        ("timed_out", True),
    ],
)
def test_only_documented_final_statuses_are_terminal(status: str, terminal: bool) -> None:
    assert Request.model_validate({"id": "r", "status": status}).is_terminal is terminal


_SPELLED = {"pending", "claimed", *TERMINAL_STATUSES, *STATUS_ALIASES}


@RELAXED
@given(st.text(max_size=20).filter(lambda s: s.strip().lower() not in _SPELLED))
def test_unknown_statuses_are_kept_and_never_terminal(status: str) -> None:
    request = Request.model_validate({"id": "r", "status": status})
    assert request.status == status
    assert request.is_terminal is (status in TERMINAL_STATUSES)


def test_unknown_fields_are_kept() -> None:
    request = Request.model_validate(
        {"id": "r", "assignee_role": "admin", "user_agent": "x", "tags": ["a"]}
    )
    assert request.model_extra == {"assignee_role": "admin", "user_agent": "x", "tags": ["a"]}


def test_reviewer_from_each_documented_field() -> None:
    by_user = Request.model_validate(
        {"id": "r", "response_by_user": {"id": "u1", "name": "Sarah", "email": "s@example.com"}}
    )
    assert by_user.reviewer is not None and by_user.reviewer.name == "Sarah"
    webhook = Request.model_validate({"id": "r", "response_by": {"user_id": "u2", "name": "J"}})
    assert webhook.reviewer is not None and webhook.reviewer.id == "u2"
    by_email = Request.model_validate({"id": "r", "response_by": "reviewer@example.com"})
    assert by_email.reviewer is not None and by_email.reviewer.email == "reviewer@example.com"
    by_id = Request.model_validate({"id": "r", "response_by": "65f1234567890abcdef12350"})
    assert by_id.reviewer is not None and by_id.reviewer.id == "65f1234567890abcdef12350"
    assert Request.model_validate({"id": "r"}).reviewer is None


def test_pending_request_has_no_value() -> None:
    pending = Request.model_validate({"id": "r", "status": "pending", "response_data": None,
                                      "response_type": "single_select"})  # fmt: skip
    assert pending.response_value is None


def test_members_accept_the_third_party_shape() -> None:
    # MC [3P]: {loop_id, member_count, members[...]}
    members = LoopMembers.model_validate(
        {"loop_id": "L", "member_count": 2, "members": [{"user_id": "u", "email": "e@x"}]}
    )
    assert members.total_count == 2 and members.members[0].user_id == "u"


def test_page_without_paging_fields() -> None:
    page = RequestPage.model_validate({"requests": [{"id": "a"}], "count": 1})
    assert page.has_more is None and page.pagination is None


# --- CreateRequestParams: strict on output --------------------------------------------------


def _build(**overrides: Any) -> CreateRequestParams:
    fields: dict[str, Any] = {
        "request_text": "Refund $120?",
        "response_type": "boolean",
        "response_config": {},
        "default_response": False,
        "timeout_seconds": 600,
    }
    fields.update(overrides)
    return CreateRequestParams.build(**fields)


def test_minimal_body_has_documented_defaults() -> None:
    assert _build().to_body() == {
        "processing_type": "time-sensitive",
        "type": "markdown",
        "priority": "medium",
        "request_text": "Refund $120?",
        "timeout_seconds": 600,
        "response_type": "boolean",
        "response_config": {},
        "default_response": False,
        "platform": "api",
    }


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"timeout_seconds": None}, "timeout_seconds"),
        ({"timeout_seconds": 59}, "timeout_seconds"),
        ({"timeout_seconds": 86401}, "timeout_seconds"),
        ({"timeout_seconds": True}, "timeout_seconds"),
        ({"timeout_seconds": 90.5}, "timeout_seconds"),
        ({"processing_type": "deferred", "timeout_seconds": 30}, "timeout_seconds"),
        ({"type": "image"}, "image_url"),
        ({"type": "file"}, "file_url"),
        ({"type": "video"}, "video_url"),
        ({"type": "audio"}, "audio_url"),
        ({"type": "pdf"}, "type"),
        ({"type": "image", "image_url": "not a url"}, "image_url"),
        ({"callback_url": "ftp://example.com/hook"}, "callback_url"),
        ({"request_text": ""}, "request_text"),
        ({"request_text": "x" * 2001}, "request_text"),
        ({"priority": "urgent"}, "priority"),
        ({"processing_type": "later"}, "processing_type"),
        ({"platform": ""}, "platform"),
        ({"response_type": "ranking"}, "response_type"),
        ({"response_type": None}, "response_type"),
        ({"default_response": "no"}, "default_response"),
        ({"context": "not an object"}, "context"),
        ({"tags": ["x"]}, "tags"),
    ],
)
def test_each_rule_names_its_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _build(**overrides)
    assert caught.value.field == field
    assert caught.value.fix


def test_missing_default_response_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        CreateRequestParams.build(request_text="x", response_type="boolean", timeout_seconds=60)
    assert caught.value.field == "default_response"


@RELAXED
@given(st.integers(-100, 100_000))
def test_time_sensitive_timeout_range(timeout: int) -> None:
    if 60 <= timeout <= 86400:
        assert _build(timeout_seconds=timeout).timeout_seconds == timeout
    else:
        with pytest.raises(ConfigError) as caught:
            _build(timeout_seconds=timeout)
        assert caught.value.field == "timeout_seconds"


@RELAXED
@given(st.text(max_size=2100))
def test_request_text_length(text: str) -> None:
    if 1 <= len(text) <= 2000:
        assert _build(request_text=text).request_text == text
    else:
        with pytest.raises(ConfigError) as caught:
            _build(request_text=text)
        assert caught.value.field == "request_text"


def test_deferred_may_leave_the_timeout_out() -> None:
    body = _build(processing_type="deferred", timeout_seconds=None).to_body()
    assert "timeout_seconds" not in body


def test_image_request_carries_its_url() -> None:
    body = _build(type="image", image_url="https://cdn.hitl.sh/uploads/img/abc123.jpg").to_body()
    assert body["image_url"] == "https://cdn.hitl.sh/uploads/img/abc123.jpg"


@pytest.mark.parametrize(
    ("feedback", "field"),
    [
        ({}, "feedback"),
        ({"rating": 6}, "feedback.rating"),
        ({"rating": 0}, "feedback.rating"),
        ({"comment": "x" * 1001}, "feedback.comment"),
        ({"accuracy": 2.5}, "feedback.accuracy"),
        ({"category": "great"}, "feedback.category"),
    ],
)
def test_feedback_rules(feedback: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_strict(FeedbackParams, feedback, prefix="feedback")
    assert caught.value.field == field


def test_feedback_extra_keys_pass_through() -> None:
    # The MCP schema allows extra keys (.catchall).
    params = validate_strict(FeedbackParams, {"rating": 5, "source": "agent"})
    assert params.model_dump(exclude_none=True) == {"rating": 5, "source": "agent"}


def test_callback_urls_stay_out_of_reprs() -> None:
    from hitl_agent.models.requests import CreateRequestParams, Request

    token = "f" * 64
    url = f"https://my.app/hitl/{token}"
    request = Request.model_validate({"id": "r1", "status": "pending", "callback_url": url})
    params = CreateRequestParams(
        request_text="Ship?",
        response_type="boolean",
        response_config={},
        default_response=False,
        timeout_seconds=60,
        callback_url=url,
    )
    for model in (request, params):
        assert token not in repr(model) and token not in str(model)
        assert model.callback_url == url  # still there for whoever needs it
