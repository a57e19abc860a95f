"""``client.requests``: create, get, update, list, iter, cancel, add_feedback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, field_validator

from .._base_client import APICall, api_path, path_param
from ..models.base import StrictModel, problem, validate_strict
from ..models.requests import (
    CancelResult,
    ContentType,
    CreatedRequest,
    CreateRequestParams,
    FeedbackParams,
    FeedbackResult,
    Priority,
    ProcessingType,
    Request,
    RequestPage,
    RequestStatus,
    SortOrder,
    UpdateRequestParams,
)
from ..models.response_types import ResponseConfig

if TYPE_CHECKING:
    from .._client import AsyncHITLClient, HITLClient

__all__ = ["AsyncRequests", "ListRequestsParams", "Requests"]


class ListRequestsParams(StrictModel):
    """The query of ``GET /requests``."""

    status: RequestStatus | None = None
    priority: Priority | None = None
    loop_id: str | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 50
    offset: Annotated[int, Field(ge=0)] = 0
    sort: SortOrder | None = None
    created_before: datetime | str | None = None
    created_after: datetime | str | None = None

    @field_validator("created_before", "created_after")
    @classmethod
    def _aware(cls, value: datetime | str | None) -> datetime | str | None:
        if isinstance(value, datetime) and value.tzinfo is None:
            raise problem(
                "a naive datetime has no time zone",
                "pass an aware datetime, e.g. datetime.now(UTC), or an ISO 8601 string",
            )
        return value

    def query(self) -> dict[str, Any]:
        """The query string values: times as ISO 8601 UTC with milliseconds."""
        params: dict[str, Any] = self.model_dump(exclude_none=True)
        for name in ("created_before", "created_after"):
            value = params.get(name)
            if isinstance(value, datetime):
                moment = value.astimezone(UTC)
                params[name] = moment.strftime("%Y-%m-%dT%H:%M:%S.") + (
                    f"{moment.microsecond // 1000:03d}Z"
                )
        return params


TimeFilter = datetime | str | None
"""A ``created_before``/``created_after`` bound: an aware datetime or an ISO 8601 string."""


def _create(loop_id: str, fields: dict[str, Any]) -> APICall[CreatedRequest]:
    # build() accepts a config model as it is, and names a model of the wrong type.
    params = CreateRequestParams.build(**fields)
    path = api_path("loops", path_param("loop_id", loop_id), "requests")
    return APICall("POST", path, CreatedRequest.model_validate, json=params.to_body())


def _get(request_id: str) -> APICall[Request]:
    path = api_path("requests", path_param("request_id", request_id))
    return APICall("GET", path, Request.from_data)


def _update(request_id: str, fields: dict[str, Any]) -> APICall[Request]:
    params = UpdateRequestParams.build(**fields)
    path = api_path("requests", path_param("request_id", request_id))
    return APICall("PATCH", path, Request.from_data, json=params.to_body())


def _list(**query: Any) -> APICall[RequestPage]:
    params = validate_strict(ListRequestsParams, query).query()
    return APICall("GET", api_path("requests"), RequestPage.model_validate, params=params)


def _next_offset(page: RequestPage, offset: int, limit: int) -> int | None:
    """Where the next page starts, or None after the last page."""
    if not page.requests:
        return None
    if page.has_more is False:
        return None
    if page.has_more is None and len(page.requests) < limit:
        return None
    following = offset + len(page.requests)
    if page.pagination is not None and page.pagination.next_offset is not None:
        # A next_offset that does not move forward would loop for ever; trust the count.
        return max(page.pagination.next_offset, following)
    return following


def _cancel(request_id: str) -> APICall[CancelResult]:
    path = api_path("requests", path_param("request_id", request_id))
    return APICall("DELETE", path, CancelResult.model_validate)


def _feedback(
    request_id: str, feedback: FeedbackParams | Mapping[str, Any]
) -> APICall[FeedbackResult]:
    if not isinstance(feedback, FeedbackParams):
        feedback = validate_strict(FeedbackParams, dict(feedback), prefix="feedback")
    path = api_path("requests", path_param("request_id", request_id), "feedback")
    body = {"feedback": feedback.model_dump(mode="json", exclude_none=True)}
    return APICall("POST", path, FeedbackResult.model_validate, json=body)


class Requests:
    """Request endpoints on the sync client."""

    def __init__(self, client: HITLClient) -> None:
        self._client = client

    def create(
        self,
        loop_id: str,
        *,
        request_text: str,
        response_type: str,
        default_response: Any,
        response_config: ResponseConfig | Mapping[str, Any] | None = None,
        processing_type: ProcessingType = "time-sensitive",
        timeout_seconds: int | None = None,
        priority: Priority = "medium",
        type: ContentType = "markdown",
        image_url: str | None = None,
        file_url: str | None = None,
        file_type: str | None = None,
        file_name: str | None = None,
        video_url: str | None = None,
        audio_url: str | None = None,
        context: Mapping[str, Any] | None = None,
        platform: str = "api",
        platform_version: str | None = None,
        callback_url: str | None = None,
    ) -> CreatedRequest:
        """Create a review request in ``loop_id`` and broadcast it to the loop's reviewers.

        Everything is validated first (ConfigError names the field). The POST is sent once:
        it is retried only when the connection never opened, because HITL.sh has no
        idempotency key and a second POST would page the reviewers twice.
        """
        fields = dict(
            request_text=request_text, response_type=response_type,
            default_response=default_response, response_config=response_config,
            processing_type=processing_type, timeout_seconds=timeout_seconds,
            priority=priority, type=type, image_url=image_url, file_url=file_url,
            file_type=file_type, file_name=file_name, video_url=video_url, audio_url=audio_url,
            context=dict(context) if context is not None else None, platform=platform,
            platform_version=platform_version, callback_url=callback_url,
        )  # fmt: skip
        return self._client._execute(_create(loop_id, fields))

    def get(self, request_id: str) -> Request:
        """One request with its status and, once answered, its ``response_value``."""
        return self._client._execute(_get(request_id))

    def update(
        self,
        request_id: str,
        *,
        request_text: str | None = None,
        priority: Priority | None = None,
        response_type: str | None = None,
        response_config: ResponseConfig | Mapping[str, Any] | None = None,
        default_response: Any = None,
        processing_type: ProcessingType | None = None,
        timeout_seconds: int | None = None,
        type: ContentType | None = None,
        image_url: str | None = None,
        context: Mapping[str, Any] | None = None,
        platform: str | None = None,
        platform_version: str | None = None,
        callback_url: str | None = None,
    ) -> Request:
        """Change fields of a pending request (``None`` leaves a field as it is).

        Returns the updated request. Only pending requests can be updated: a claimed or
        finished one is a BadRequestError. ``response_config`` needs ``response_type``.
        """
        fields = dict(
            request_text=request_text, priority=priority, response_type=response_type,
            response_config=response_config, default_response=default_response,
            processing_type=processing_type, timeout_seconds=timeout_seconds, type=type,
            image_url=image_url, context=dict(context) if context is not None else None,
            platform=platform, platform_version=platform_version, callback_url=callback_url,
        )  # fmt: skip
        return self._client._execute(_update(request_id, fields))

    def list(
        self,
        *,
        status: RequestStatus | None = None,
        priority: Priority | None = None,
        loop_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
        sort: SortOrder | None = None,
        created_before: TimeFilter = None,
        created_after: TimeFilter = None,
    ) -> RequestPage:
        """One page of this key's requests (``limit`` 1-100), created in a time window
        when ``created_after`` / ``created_before`` are given (both exclusive)."""
        return self._client._execute(
            _list(status=status, priority=priority, loop_id=loop_id, limit=limit, offset=offset,
                  sort=sort, created_before=created_before, created_after=created_after)
        )  # fmt: skip

    def iter(
        self,
        *,
        status: RequestStatus | None = None,
        priority: Priority | None = None,
        loop_id: str | None = None,
        page_size: int = 100,
        sort: SortOrder | None = None,
        created_before: TimeFilter = None,
        created_after: TimeFilter = None,
    ) -> Iterator[Request]:
        """Every matching request, fetching one page at a time as the loop goes."""
        offset: int | None = 0
        while offset is not None:
            page = self.list(
                status=status, priority=priority, loop_id=loop_id, limit=page_size,
                offset=offset, sort=sort, created_before=created_before,
                created_after=created_after,
            )  # fmt: skip
            yield from page.requests
            offset = _next_offset(page, offset, page_size)

    def cancel(self, request_id: str) -> CancelResult:
        """Cancel a pending or claimed request; ``refund_info`` says if the call was refunded."""
        return self._client._execute(_cancel(request_id))

    def add_feedback(
        self, request_id: str, feedback: FeedbackParams | Mapping[str, Any]
    ) -> FeedbackResult:
        """Rate a completed request's answer, e.g. ``{"rating": 5, "comment": "fast"}``."""
        return self._client._execute(_feedback(request_id, feedback))


class AsyncRequests:
    """Request endpoints on the async client."""

    def __init__(self, client: AsyncHITLClient) -> None:
        self._client = client

    async def create(
        self,
        loop_id: str,
        *,
        request_text: str,
        response_type: str,
        default_response: Any,
        response_config: ResponseConfig | Mapping[str, Any] | None = None,
        processing_type: ProcessingType = "time-sensitive",
        timeout_seconds: int | None = None,
        priority: Priority = "medium",
        type: ContentType = "markdown",
        image_url: str | None = None,
        file_url: str | None = None,
        file_type: str | None = None,
        file_name: str | None = None,
        video_url: str | None = None,
        audio_url: str | None = None,
        context: Mapping[str, Any] | None = None,
        platform: str = "api",
        platform_version: str | None = None,
        callback_url: str | None = None,
    ) -> CreatedRequest:
        """Create a review request; see :meth:`Requests.create`."""
        fields = dict(
            request_text=request_text, response_type=response_type,
            default_response=default_response, response_config=response_config,
            processing_type=processing_type, timeout_seconds=timeout_seconds,
            priority=priority, type=type, image_url=image_url, file_url=file_url,
            file_type=file_type, file_name=file_name, video_url=video_url, audio_url=audio_url,
            context=dict(context) if context is not None else None, platform=platform,
            platform_version=platform_version, callback_url=callback_url,
        )  # fmt: skip
        return await self._client._execute(_create(loop_id, fields))

    async def get(self, request_id: str) -> Request:
        """One request with its status and, once answered, its ``response_value``."""
        return await self._client._execute(_get(request_id))

    async def update(
        self,
        request_id: str,
        *,
        request_text: str | None = None,
        priority: Priority | None = None,
        response_type: str | None = None,
        response_config: ResponseConfig | Mapping[str, Any] | None = None,
        default_response: Any = None,
        processing_type: ProcessingType | None = None,
        timeout_seconds: int | None = None,
        type: ContentType | None = None,
        image_url: str | None = None,
        context: Mapping[str, Any] | None = None,
        platform: str | None = None,
        platform_version: str | None = None,
        callback_url: str | None = None,
    ) -> Request:
        """Change fields of a pending request (``None`` leaves a field as it is).

        Returns the updated request. Only pending requests can be updated: a claimed or
        finished one is a BadRequestError. ``response_config`` needs ``response_type``.
        """
        fields = dict(
            request_text=request_text, priority=priority, response_type=response_type,
            response_config=response_config, default_response=default_response,
            processing_type=processing_type, timeout_seconds=timeout_seconds, type=type,
            image_url=image_url, context=dict(context) if context is not None else None,
            platform=platform, platform_version=platform_version, callback_url=callback_url,
        )  # fmt: skip
        return await self._client._execute(_update(request_id, fields))

    async def list(
        self,
        *,
        status: RequestStatus | None = None,
        priority: Priority | None = None,
        loop_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
        sort: SortOrder | None = None,
        created_before: TimeFilter = None,
        created_after: TimeFilter = None,
    ) -> RequestPage:
        """One page of this key's requests (``limit`` 1-100), created in a time window
        when ``created_after`` / ``created_before`` are given (both exclusive)."""
        return await self._client._execute(
            _list(status=status, priority=priority, loop_id=loop_id, limit=limit, offset=offset,
                  sort=sort, created_before=created_before, created_after=created_after)
        )  # fmt: skip

    async def iter(
        self,
        *,
        status: RequestStatus | None = None,
        priority: Priority | None = None,
        loop_id: str | None = None,
        page_size: int = 100,
        sort: SortOrder | None = None,
        created_before: TimeFilter = None,
        created_after: TimeFilter = None,
    ) -> AsyncIterator[Request]:
        """Every matching request, fetching one page at a time as the loop goes."""
        offset: int | None = 0
        while offset is not None:
            page = await self.list(
                status=status, priority=priority, loop_id=loop_id, limit=page_size,
                offset=offset, sort=sort, created_before=created_before,
                created_after=created_after,
            )  # fmt: skip
            for request in page.requests:
                yield request
            offset = _next_offset(page, offset, page_size)

    async def cancel(self, request_id: str) -> CancelResult:
        """Cancel a pending or claimed request; ``refund_info`` says if the call was refunded."""
        return await self._client._execute(_cancel(request_id))

    async def add_feedback(
        self, request_id: str, feedback: FeedbackParams | Mapping[str, Any]
    ) -> FeedbackResult:
        """Rate a completed request's answer, e.g. ``{"rating": 5, "comment": "fast"}``."""
        return await self._client._execute(_feedback(request_id, feedback))
