"""The OpenAPI 3.1 document of the local API, served at ``/openapi.json``.

Request bodies come from the same pydantic models that validate them (``CreateRequestParams``,
``CreateLoopParams``, ...); responses are written out here, next to one another, so that a
change to a response shape shows up in one reviewable place. ``tests/server/test_openapi.py``
runs schemathesis against the app to keep this document and the server in step.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from ..models.loops import CreateLoopParams, UpdateLoopParams
from ..models.requests import CreateRequestParams, FeedbackParams, UpdateRequestParams
from ._requests import MAX_OFFSET, PRIORITIES, SORTS, STATUSES
from ._util import ID_PATTERN

__all__ = ["openapi_document"]

_STR = {"type": "string"}
_INT = {"type": "integer"}
_NUM = {"type": "number"}
_BOOL = {"type": "boolean"}
_ANY: dict[str, Any] = {}
_ID = {"type": "string", "pattern": ID_PATTERN}
_TIME = {"type": "string", "format": "date-time"}


def _null(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_MEMBER = _obj(
    {"user_id": _ID, "email": _STR, "status": _STR},
    {"role": _STR, "joined_at": _null(_TIME), "last_active": _null(_TIME)},
)
_LOOP = _obj(
    {
        "id": _ID,
        "name": _STR,
        "description": _null(_STR),
        "icon": _STR,
        "creator_id": _ID,
        "members": {"type": "array", "items": _ref("LoopMember")},
        "member_count": _INT,
        "pending_count": _INT,
        "created_at": _TIME,
        "updated_at": _TIME,
    }
)
_REVIEWER_REF = _null(_obj({"user_id": _ID, "name": _STR, "email": _STR}, {"id": _ID}))
_REQUEST = _obj(
    {
        "id": _ID,
        "loop_id": _ID,
        "creator_id": _ID,
        "api_key_id": _ID,
        "processing_type": {"enum": ["time-sensitive", "deferred"]},
        "type": _STR,
        "priority": {"enum": list(PRIORITIES)},
        "request_text": _STR,
        "image_url": _null(_STR),
        "context": _null({"type": "object"}),
        "platform": _STR,
        "platform_version": _null(_STR),
        "response_type": _STR,
        "response_config": {"type": "object"},
        "default_response": _ANY,
        "timeout_at": _TIME,
        "callback_url": _null(_STR),
        "broadcasted_to": {"type": "array", "items": {"type": "object"}},
        "broadcasted_at": _TIME,
        "status": {"enum": list(STATUSES)},
        "response_by": _null(_ID),
        "response_by_user": _REVIEWER_REF,
        "response_at": _null(_TIME),
        "response_data": _ANY,
        "response_time_seconds": _null(_NUM),
        "created_at": _TIME,
        "updated_at": _TIME,
    }
)
_REVIEW_ITEM = {
    "allOf": [
        _ref("Request"),
        _obj(
            {
                "request_html": _STR,
                "claimed_by": _null(_ID),
                "claim_expires_at": _null(_TIME),
            }
        ),
    ]
}
_RATE_HEADERS = {
    name: {"required": False, "schema": {"type": "string", "pattern": "^[0-9]+$"}}
    for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
}


def _ok(data: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    schema = _obj({"error": {"const": False}, "msg": _STR, "data": data})
    return {
        "description": description,
        "headers": _RATE_HEADERS,
        "content": {"application/json": {"schema": schema}},
    }


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": _RATE_HEADERS,
        "content": {"application/json": {"schema": _ref("ErrorEnvelope")}},
    }


_ERRORS = {
    "400": "Validation failed, a malformed id, or a state that forbids the operation",
    "401": "Missing or unknown bearer token",
    "403": "The resource belongs to another key or loop",
    "404": "No such resource (or no such route)",
    "409": "The request is taken or already answered",
    "429": "The key's hourly quota is spent (data: usage_count, usage_limit, remaining, reset_at)",
}


def _op(
    summary: str,
    ok: dict[str, Any],
    errors: str,
    *,
    status: str = "200",
    body: dict[str, Any] | None = None,
    params: list[dict[str, Any]] | None = None,
    reviewer: bool = False,
) -> dict[str, Any]:
    codes = set(errors.split()) | {"401"} | (set() if reviewer else {"429"})
    responses = {status: ok} | {code: _error(_ERRORS[code]) for code in sorted(codes)}
    operation: dict[str, Any] = {
        "summary": summary,
        "security": [{"reviewerToken": []}] if reviewer else [{"apiKey": []}],
        "responses": responses,
    }
    if params:
        operation["parameters"] = params
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    return operation


def _path_param(name: str, schema: dict[str, Any] = _ID) -> dict[str, Any]:
    # Loop and request ids are 24-hex ids; anything else is a 400 "Invalid ... ID format".
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def _model_schema(model: Any, *, open_ended: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("description", None)
    if open_ended:
        # Request bodies are tolerant on input: fields the docs do not list are kept.
        schema["additionalProperties"] = True
    return schema


@cache
def _document() -> dict[str, Any]:
    loop_id, request_id = [_path_param("loop_id")], [_path_param("request_id")]
    page = _obj(
        {
            "requests": {"type": "array", "items": _ref("Request")},
            "count": _INT,
            "total": _INT,
            "has_more": _BOOL,
            "pagination": _obj(
                {"limit": _INT, "offset": _INT, "next_offset": _null(_INT)},
            ),
        }
    )
    one_request = _obj({"request": _ref("Request")})
    review_item = _obj({"request": _ref("ReviewItem")})
    list_params = [
        _query("status", {"enum": list(STATUSES)}),
        _query("priority", {"enum": list(PRIORITIES)}),
        _query("loop_id", _ID),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}),
        _query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}),
        _query("sort", {"enum": list(SORTS), "default": "created_at_desc"}),
        _query("created_before", _TIME),
        _query("created_after", _TIME),
    ]
    loop_created = _obj(
        {
            "loop": _ref("Loop"),
            "invite_code": _STR,
            "qr_code_base64": {"type": "string", "pattern": "^data:image/png;base64,"},
            "qr_code_url": {"type": "string", "format": "uri"},
            "join_url": {"type": "string", "format": "uri"},
        },
    )
    rate_limit = _obj({"limit": _null(_INT), "remaining": _null(_INT), "reset_at": _null(_TIME)})
    key_info = _obj(
        {
            "api_key_id": _ID,
            "user_id": _ID,
            "email": _STR,
            "account_status": _STR,
            "rate_limit": rate_limit,
            "permissions": {"type": "array", "items": _STR},
        }
    )
    members = _obj(
        {
            "members": {"type": "array", "items": _ref("LoopMember")},
            "total_count": _INT,
            "active_count": _INT,
            "pending_count": _INT,
        },
        {"loop_id": _ID},
    )
    cancelled = _obj(
        {
            "request_id": _ID,
            "status": {"const": "cancelled"},
            "cancelled_at": _TIME,
            "previous_status": {"enum": ["pending", "claimed"]},
            "refund_info": _obj({"refunded": _BOOL, "reason": _STR}),
        }
    )
    created = _obj(
        {
            "id": _ID,
            "request_id": _ID,
            "status": {"const": "pending"},
            "processing_type": _STR,
            "type": _STR,
            "priority": _STR,
            "timeout_at": _TIME,
            "broadcasted_to": _INT,
            "notifications_sent": _INT,
            "polling_url": _STR,
        }
    )
    feedback = _obj(
        {
            "request_id": _ID,
            "feedback": {"type": "object"},
            "feedback_id": _ID,
            "submitted_at": _TIME,
            "reviewer_notified": _BOOL,
        }
    )
    deleted = _obj(
        {
            "loop_id": _ID,
            "deleted_at": _TIME,
            "deleted_data": _obj(
                {"members_removed": _INT, "requests_deleted": _INT, "responses_deleted": _INT}
            ),
        }
    )
    removed = _obj({"loop_id": _ID, "user_id": _STR, "removed_at": _TIME})
    me = _obj(
        {
            "user_id": _ID,
            "email": _STR,
            "name": _STR,
            "loops": {"type": "array", "items": _obj({"id": _ID, "name": _STR})},
        }
    )
    queue = _obj({"requests": {"type": "array", "items": _ref("ReviewItem")}, "count": _INT})
    respond_body = {
        "type": "object",
        "required": ["response_data"],
        "properties": {"response_data": _ANY},
        "additionalProperties": False,
    }
    feedback_body = {
        "type": "object",
        "required": ["feedback"],
        "properties": {"feedback": _ref("FeedbackParams")},
        "additionalProperties": False,
    }
    loop_paths = [*loop_id, _path_param("user_id", _STR)]
    review = "/v1/reviewer/requests/{request_id}"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hitl-agent local HITL server",
            "version": "0.1.0",
            "description": "HITL.sh-compatible API (loops, requests) plus the reviewer API.",
        },
        "servers": [{"url": "/"}],
        "paths": {
            "/v1/test": {"get": _op("Check the API key", _ok(key_info), "")},
            "/v1/api/loops": {
                "get": _op(
                    "List loops",
                    _ok(_obj({"loops": {"type": "array", "items": _ref("Loop")}, "count": _INT})),
                    "",
                ),
                "post": _op(
                    "Create a loop",
                    _ok(loop_created, "Created"),
                    "400",
                    status="201",
                    body=_ref("CreateLoopParams"),
                ),
            },
            "/v1/api/loops/{loop_id}": {
                "get": _op(
                    "Get a loop", _ok(_obj({"loop": _ref("Loop")})), "400 403 404", params=loop_id
                ),
                "put": _op(
                    "Update a loop",
                    _ok(_obj({"loop": _ref("Loop")})),
                    "400 403 404",
                    params=loop_id,
                    body=_ref("UpdateLoopParams"),
                ),
                "delete": _op("Delete a loop", _ok(deleted), "400 403 404", params=loop_id),
            },
            "/v1/api/loops/{loop_id}/members": {
                "get": _op("List members", _ok(members), "400 403 404", params=loop_id)
            },
            "/v1/api/loops/{loop_id}/members/{user_id}": {
                "delete": _op("Remove a member", _ok(removed), "400 403 404", params=loop_paths)
            },
            "/v1/api/loops/{loop_id}/requests": {
                "get": _op(
                    "List the loop's requests (its creator or members)",
                    _ok(_obj({**page["properties"], "loop_id": _ID})),
                    "400 403 404",
                    params=loop_id + [p for p in list_params if p["name"] != "loop_id"],
                ),
                "post": _op(
                    "Create a review request",
                    _ok(created, "Created"),
                    "400 403 404",
                    status="201",
                    params=loop_id,
                    body=_ref("CreateRequestParams"),
                ),
            },
            "/v1/api/requests": {
                "get": _op("List this key's requests", _ok(page), "400", params=list_params)
            },
            "/v1/api/requests/{request_id}": {
                "get": _op("Get a request", _ok(one_request), "400 403 404", params=request_id),
                "delete": _op("Cancel a request", _ok(cancelled), "400 403 404", params=request_id),
                "patch": _op(
                    "Update a pending request",
                    _ok(one_request),
                    "400 403 404",
                    params=request_id,
                    body=_ref("UpdateRequestParams"),
                ),
            },
            "/v1/api/requests/{request_id}/feedback": {
                "post": _op(
                    "Add feedback to a completed request",
                    _ok(feedback),
                    "400 403 404",
                    params=request_id,
                    body=feedback_body,
                )
            },
            "/v1/reviewer/me": {"get": _op("The reviewer", _ok(me), "", reviewer=True)},
            "/v1/reviewer/queue": {
                "get": _op(
                    "The reviewer's open requests",
                    _ok(queue),
                    "400",
                    reviewer=True,
                    params=[_query("limit", {"type": "integer", "minimum": 1, "maximum": 100})],
                )
            },
            review: {
                "get": _op(
                    "One request", _ok(review_item), "400 403 404", reviewer=True, params=request_id
                )
            },
            f"{review}/claim": {
                "post": _op(
                    "Claim", _ok(review_item), "400 403 404 409", reviewer=True, params=request_id
                )
            },
            f"{review}/release": {
                "post": _op(
                    "Release", _ok(review_item), "400 403 404 409", reviewer=True, params=request_id
                )
            },
            f"{review}/respond": {
                "post": _op(
                    "Answer",
                    _ok(review_item),
                    "400 403 404 409",
                    reviewer=True,
                    params=request_id,
                    body=respond_body,
                )
            },
        },
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "An API key"},
                "reviewerToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A reviewer token",
                },
            },
            "schemas": {
                "ErrorEnvelope": _obj({"error": {"const": True}, "msg": _STR}, {"data": _ANY}),
                "LoopMember": _MEMBER,
                "Loop": _LOOP,
                "Request": _REQUEST,
                "ReviewItem": _REVIEW_ITEM,
                "CreateRequestParams": _model_schema(CreateRequestParams, open_ended=True),
                "UpdateRequestParams": _model_schema(UpdateRequestParams, open_ended=True),
                # The API requires icon (HITL.sh's openapi.json); the client's model fills one.
                "CreateLoopParams": _model_schema(CreateLoopParams)
                | {"required": ["name", "icon"]},
                "UpdateLoopParams": _model_schema(UpdateLoopParams),
                "FeedbackParams": _model_schema(FeedbackParams),
            },
        },
    }


def openapi_document() -> dict[str, Any]:
    """The document (built once; treat it as read-only)."""
    return _document()
