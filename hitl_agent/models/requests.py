"""Review requests: what we send to create one, and everything the API sends back about them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, TypeAlias
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator, model_validator

from .._exceptions import ConfigError
from .base import HITLModel, StrictModel, problem, validate_strict
from .response_types import (
    Integer,
    ResponseConfig,
    ResponseValue,
    check_value,
    normalize_response_data,
    parse_response_config,
)

__all__ = [
    "STATUS_ALIASES",
    "TERMINAL_STATUSES",
    "CancelResult",
    "ContentType",
    "CreateRequestParams",
    "CreatedRequest",
    "FeedbackParams",
    "FeedbackResult",
    "Priority",
    "ProcessingType",
    "RefundInfo",
    "Request",
    "RequestPage",
    "RequestStatus",
    "Reviewer",
    "ReviewerAnswer",
    "SortOrder",
    "UpdateRequestParams",
]

ProcessingType: TypeAlias = Literal["time-sensitive", "deferred"]
ContentType: TypeAlias = Literal["markdown", "image", "file", "video", "audio"]
Priority: TypeAlias = Literal["low", "medium", "high", "critical"]
RequestStatus: TypeAlias = Literal["pending", "claimed", "completed", "timeout", "cancelled"]
SortOrder: TypeAlias = Literal["created_at_desc", "created_at_asc", "priority_desc", "status_asc"]

TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "timeout", "cancelled"})
"""Statuses after which nothing changes. ``claimed`` and unknown statuses are not terminal."""

STATUS_ALIASES: dict[str, str] = {
    # HITL.sh's n8n node v2 treats these as final (hitl-2026.md): a reviewer answered, so the
    # answer in response_data decides, exactly as for "completed" (it approves only if it is
    # an approving answer).
    "answered": "completed",
    "resolved": "completed",
    # One docs snippet spells the timeout this way; the default decides, as for "timeout".
    "timed_out": "timeout",
    # n8n's "failed" (the execution failed): final, and no reviewer's decision can be read
    # from it, so it never approves, like a cancellation.
    "failed": "cancelled",
}
"""Every other documented or client-observed status, mapped to the one it means.

:class:`Request` stores the mapped status in ``status`` (and the server's own spelling in
``reported_status``), so every reader (``is_terminal``, ``Decision.from_request``, the
poller) sees one of ``pending, claimed, completed, timeout, cancelled``. A status in neither
set is unknown: not terminal, never approving; the dispatcher's poller records a fail-closed
denial for it at the deadline."""
_KNOWN_STATUSES = frozenset({"pending", "claimed", *TERMINAL_STATUSES})

_MEDIA_URL: dict[str, str] = {
    "image": "image_url",
    "file": "file_url",
    "video": "video_url",
    "audio": "audio_url",
}


def _check_url(value: str | None) -> str | None:
    if value is None:
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise problem(
            f"{value[:80]!r} is not an http(s) URL", "give an absolute http:// or https:// URL"
        )
    return value


class CreateRequestParams(StrictModel):
    """The body of ``POST /loops/{loop_id}/requests``, checked against every documented rule.

    Build it with :meth:`build`, which also validates ``response_config`` and
    ``default_response`` for the response type and raises ConfigError naming the field.
    """

    processing_type: ProcessingType = "time-sensitive"
    type: ContentType = "markdown"
    priority: Priority = "medium"
    request_text: Annotated[str, Field(min_length=1, max_length=2000)]
    image_url: str | None = None
    file_url: str | None = None
    file_type: str | None = None
    file_name: str | None = None
    video_url: str | None = None
    audio_url: str | None = None
    context: dict[str, Any] | None = None
    timeout_seconds: Integer | None = None
    response_type: str
    response_config: dict[str, Any]
    default_response: Any
    platform: Annotated[str, Field(min_length=1)] = "api"
    platform_version: str | None = None
    # repr=False: a callback URL carries a per-request capability token.
    callback_url: str | None = Field(default=None, repr=False)

    _urls = field_validator("image_url", "file_url", "video_url", "audio_url", "callback_url")(
        _check_url
    )

    @model_validator(mode="after")
    def _rules(self) -> CreateRequestParams:
        if self.processing_type == "time-sensitive" and self.timeout_seconds is None:
            raise problem(
                "timeout_seconds is required for time-sensitive requests",
                "pass timeout_seconds between 60 and 86400, or processing_type='deferred'",
                field="timeout_seconds",
            )
        # The documented range holds for deferred requests too; leaving timeout_seconds out
        # is how a deferred request gets HITL.sh's 30-day default.
        if self.timeout_seconds is not None and not 60 <= self.timeout_seconds <= 86400:
            fix = "pass timeout_seconds between 60 (1 minute) and 86400 (24 hours)"
            if self.processing_type == "deferred":
                fix += ", or leave it out for the 30-day default"
            raise problem(
                f"timeout_seconds {self.timeout_seconds} is outside 60..86400",
                fix,
                field="timeout_seconds",
            )
        media_field = _MEDIA_URL.get(self.type)
        if media_field is not None and getattr(self, media_field) is None:
            raise problem(
                f"{media_field} is required when type is {self.type!r}",
                f"pass {media_field}, or use type='markdown'",
                field=media_field,
            )
        return self

    @classmethod
    def build(cls, **fields: Any) -> CreateRequestParams:
        """Validate every field, the response config and the default; raise ConfigError."""
        response_type = fields.get("response_type")
        if not isinstance(response_type, str):
            raise ConfigError("response_type", "missing", "pass response_type, e.g. 'boolean'")
        config = parse_response_config(response_type, fields.get("response_config"))
        if "default_response" not in fields:
            raise ConfigError(
                "default_response",
                "required field is missing",
                "pass the answer to record on timeout, e.g. the reject option's value",
            )
        check_value(config, fields["default_response"], field="default_response")
        fields["response_config"] = config.model_dump(mode="json", exclude_none=True)
        return validate_strict(cls, fields)

    @property
    def config(self) -> ResponseConfig:
        """The typed response config."""
        return parse_response_config(self.response_type, self.response_config)

    def to_body(self) -> dict[str, Any]:
        """The JSON body, without fields left unset."""
        return self.model_dump(mode="json", exclude_none=True)


class UpdateRequestParams(StrictModel):
    """The body of ``PATCH /requests/{id}``: the fields of a pending request to change.

    Build it with :meth:`build`. HITL.sh's docs do not list this endpoint; its own MCP
    server sends it (reference §6.6). The server checks the merged request as a create.
    """

    processing_type: ProcessingType | None = None
    type: ContentType | None = None
    priority: Priority | None = None
    request_text: Annotated[str, Field(min_length=1, max_length=2000)] | None = None
    image_url: str | None = None
    context: dict[str, Any] | None = None
    timeout_seconds: Integer | None = None
    response_type: str | None = None
    response_config: dict[str, Any] | None = None
    default_response: Any = None
    platform: Annotated[str, Field(min_length=1)] | None = None
    platform_version: str | None = None
    callback_url: str | None = None

    _urls = field_validator("image_url", "callback_url")(_check_url)

    @field_validator("timeout_seconds")
    @classmethod
    def _timeout(cls, value: int | None) -> int | None:
        if value is not None and not 60 <= value <= 86400:
            raise problem(
                f"timeout_seconds {value} is outside 60..86400",
                "pass timeout_seconds between 60 (1 minute) and 86400 (24 hours)",
            )
        return value

    @classmethod
    def build(cls, **fields: Any) -> UpdateRequestParams:
        """Validate the fields given (``None`` = unchanged); raise ConfigError naming one."""
        fields = {name: value for name, value in fields.items() if value is not None}
        if not fields:
            raise ConfigError(
                "update", "no field to change", "pass at least one field, e.g. priority='high'"
            )
        response_type = fields.get("response_type")
        if "response_config" in fields and response_type is None:
            raise ConfigError(
                "response_type",
                "needed to check response_config",
                "pass response_type together with response_config",
            )
        if response_type is not None:
            config = parse_response_config(response_type, fields.get("response_config"))
            if "default_response" in fields:
                check_value(config, fields["default_response"], field="default_response")
            fields["response_config"] = config.model_dump(mode="json", exclude_none=True)
        return validate_strict(cls, fields)

    def to_body(self) -> dict[str, Any]:
        """The JSON body: only the fields that change."""
        return self.model_dump(mode="json", exclude_none=True)


class Reviewer(HITLModel):
    """Who answered: from ``response_by_user``, ``response_by`` (an id or email) or a webhook."""

    id: str | None = Field(default=None, validation_alias=AliasChoices("id", "user_id"))
    name: str | None = None
    email: str | None = None


class ReviewerAnswer(HITLModel):
    """One reviewer's answer to a fan-out or endorsement review (``Request.responses``)."""

    user_id: str | None = None
    response_by_user: Reviewer | None = None
    response_data: Any = None
    response_at: datetime | None = None

    def value(self, response_type: str | None) -> ResponseValue | None:
        """The answer typed as ``Request.response_value`` types the request's."""
        return normalize_response_data(response_type, self.response_data)


class Request(HITLModel):
    """A review request as the API returns it (GET, list, or a webhook's embedded request).

    Tolerant on input: unknown fields are kept, ``request_id`` and ``id`` both fill ``id``,
    the statuses in :data:`STATUS_ALIASES` are read as the status they mean (the server's
    spelling kept in ``reported_status``), and unknown statuses are kept as they are (and
    are not terminal).
    """

    id: str = Field(validation_alias=AliasChoices("id", "request_id", "_id"))
    loop_id: str | None = None
    status: str = "pending"
    reported_status: str | None = None
    """The status as the server spelled it, when that differs from ``status``
    (``"answered"``, ``"timed_out"``, ``"Completed"``...); None otherwise."""
    processing_type: str | None = None
    type: str | None = None
    priority: str | None = None
    request_text: str | None = None
    image_url: str | None = None
    context: dict[str, Any] | None = None
    platform: str | None = None
    platform_version: str | None = None
    response_type: str | None = None
    response_config: dict[str, Any] | None = None
    default_response: Any = None
    timeout_at: datetime | None = None
    # repr=False: a callback URL carries a per-request capability token.
    callback_url: str | None = Field(default=None, repr=False)
    broadcasted_to: Any = None
    response_by: Any = None
    response_by_user: Reviewer | None = None
    response_at: datetime | None = None
    response_data: Any = None
    response_time_seconds: float | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    responses: list[ReviewerAnswer] | None = None
    """Every reviewer's answer, oldest first, when several reviewers answer one request
    (a workflow's fan-out or endorsement); None for a first-answer-decides request.
    ``response_data`` is the request's decided answer either way."""

    @model_validator(mode="before")
    @classmethod
    def _canonical_status(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("status"), str):
            return data
        raw = data["status"]
        spelled = raw.strip().lower()
        status = STATUS_ALIASES.get(spelled, spelled)
        if status not in _KNOWN_STATUSES or status == raw:
            return data  # unknown statuses are kept exactly as sent (not terminal)
        return {**data, "status": status, "reported_status": raw}

    @classmethod
    def from_data(cls, data: Any) -> Request:
        """Parse ``data`` from an envelope: ``{"request": {...}}`` or the request itself."""
        if isinstance(data, dict) and isinstance(data.get("request"), dict):
            data = data["request"]
        return cls.model_validate(data)

    @property
    def is_terminal(self) -> bool:
        """True for completed, timeout and cancelled (and their aliases, see
        :data:`STATUS_ALIASES`); false for pending, claimed and anything unknown."""
        return self.status in TERMINAL_STATUSES

    @property
    def response_value(self) -> ResponseValue | None:
        """The answer, normalized from either documented shape and typed per response type.

        ``None`` while there is no answer. Raises ResponseShapeError when ``response_data``
        fits no documented shape.
        """
        return normalize_response_data(self.response_type, self.response_data)

    @property
    def reviewer(self) -> Reviewer | None:
        """Who answered, from whichever field the server filled."""
        if self.response_by_user is not None:
            return self.response_by_user
        if isinstance(self.response_by, dict):
            return Reviewer.model_validate(self.response_by)
        if isinstance(self.response_by, str):
            if "@" in self.response_by:
                return Reviewer(email=self.response_by)
            return Reviewer(id=self.response_by)
        return None


class CreatedRequest(HITLModel):
    """What a create returns: the new id, its status and when it times out."""

    request_id: str = Field(validation_alias=AliasChoices("request_id", "id"))
    status: str = "pending"
    processing_type: str | None = None
    type: str | None = None
    priority: str | None = None
    timeout_at: datetime | None = None
    broadcasted_to: Any = None
    notifications_sent: int | None = None
    polling_url: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _nested(cls, data: Any) -> Any:
        # An old quickstart shows the new request nested, ``data.request.id``; the API
        # reference has ``data.request_id`` and HITL.sh's MCP test script ``data.id``. Every
        # documented shape is read (issue 22 W5); the top level wins where both are present.
        if isinstance(data, dict) and isinstance(data.get("request"), dict):
            rest = {key: value for key, value in data.items() if key != "request"}
            return {**data["request"], **rest}
        return data


class Pagination(HITLModel):
    """Paging figures of a list call."""

    limit: int | None = None
    offset: int | None = None
    next_offset: int | None = None


class RequestPage(HITLModel):
    """One page of ``GET /requests``."""

    requests: list[Request] = Field(default_factory=list)
    count: int | None = None
    total: int | None = None
    has_more: bool | None = None
    pagination: Pagination | None = None


class RefundInfo(HITLModel):
    """Whether cancelling gave the call back to the hourly quota."""

    refunded: bool = False
    reason: str | None = None


class CancelResult(HITLModel):
    """What a cancel returns."""

    request_id: str = Field(validation_alias=AliasChoices("request_id", "id"))
    status: str = "cancelled"
    cancelled_at: datetime | None = None
    previous_status: str | None = None
    refund_info: RefundInfo | None = None


_Score = Annotated[int, Field(ge=1, le=5)]


class FeedbackParams(StrictModel):
    """The documented feedback fields; other keys are passed through unchecked."""

    model_config = StrictModel.model_config | {"extra": "allow"}

    rating: Annotated[float, Field(ge=1, le=5)] | None = None
    comment: Annotated[str, Field(max_length=1000)] | None = None
    accuracy: _Score | None = None
    timeliness: _Score | None = None
    helpfulness: _Score | None = None
    would_recommend: bool | None = None
    tags: list[str] | None = None
    follow_up_needed: bool | None = None
    category: Literal["positive", "constructive", "issue"] | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> FeedbackParams:
        if not self.model_dump(exclude_none=True):
            raise problem("no feedback given", "pass at least one field, e.g. rating=5")
        return self


class FeedbackResult(HITLModel):
    """What adding feedback returns."""

    request_id: str | None = None
    feedback: dict[str, Any] | None = None
    feedback_id: str | None = None
    submitted_at: datetime | None = None
    reviewer_notified: bool | None = None
