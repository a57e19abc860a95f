"""The documented example bodies of /work/shared/reference/hitl-api.md, section by section.

Only the ``…`` elisions of the reference are filled in (with values of the same kind); every
key, nesting and value shape is as documented. The MockTransport tests answer with these, and
the hand-built cassettes under ``cassettes/`` carry the same bodies.
"""

from __future__ import annotations

from typing import Any

LOOP_ID = "65f1234567890abcdef12345"
USER_ID = "65f1234567890abcdef12346"
REQUEST_ID = "65f1234567890abcdef12348"
REVIEWER_ID = "65f1234567890abcdef12350"

# §2 GET /v1/test
KEY_VALID: dict[str, Any] = {
    "error": False,
    "msg": "API key is valid",
    "data": {
        "api_key_id": "65f1234567890abcdef12349",
        "user_id": USER_ID,
        "email": "user@example.com",
        "account_status": "active",
        "rate_limit": {"limit": 100, "remaining": 95, "reset_at": "2024-03-15T15:00:00Z"},
        "permissions": ["loops:read", "loops:write", "requests:read", "requests:write"],
    },
}

_LOOP: dict[str, Any] = {
    "id": LOOP_ID,
    "name": "Content Moderation Review",
    "description": "Review user-generated content",
    "icon": "shield-check",
    "creator_id": USER_ID,
    "members": [
        {
            "user_id": USER_ID,
            "email": "creator@example.com",
            "status": "active",
            "joined_at": "2024-03-15T10:30:00Z",
        }
    ],
    "member_count": 1,
    "pending_count": 0,
    "created_at": "2024-03-15T10:30:00Z",
    "updated_at": "2024-03-15T10:30:00Z",
}

# §5.1 POST /v1/api/loops
LOOP_CREATED: dict[str, Any] = {
    "error": False,
    "msg": "Loop created successfully with QR code",
    "data": {
        "loop": _LOOP,
        "invite_code": "ABC123DEF",
        "qr_code_base64": "data:image/png;base64,iVBORw0KGgo",
        "qr_code_url": "https://api.hitl.sh/qr/ABC123DEF.png",
        "join_url": "https://my.hitl.sh/join/ABC123DEF",
    },
}

# §5.2 GET /v1/api/loops
LOOPS_LIST: dict[str, Any] = {
    "error": False,
    "msg": "Loops retrieved successfully",
    "data": {
        "loops": [_LOOP, {**_LOOP, "id": "65f1234567890abcdef12399", "name": "Refunds"}],
        "count": 2,
    },
}

# §5.3 GET /v1/api/loops/{id}
LOOP_GET: dict[str, Any] = {"error": False, "msg": "Loop retrieved", "data": {"loop": _LOOP}}

# §5.4 PUT /v1/api/loops/{id}
LOOP_UPDATED: dict[str, Any] = {
    "error": False,
    "msg": "Loop updated successfully",
    "data": {"loop": {**_LOOP, "name": "Moderation", "updated_at": "2024-03-15T11:00:00Z"}},
}

# §5.5 DELETE /v1/api/loops/{id}
LOOP_DELETED: dict[str, Any] = {
    "error": False,
    "msg": "Loop deleted successfully",
    "data": {
        "loop_id": LOOP_ID,
        "deleted_at": "2024-03-15T15:30:00Z",
        "deleted_data": {"members_removed": 5, "requests_deleted": 23, "responses_deleted": 18},
    },
}

# §5.6 GET /v1/api/loops/{id}/members
LOOP_MEMBERS: dict[str, Any] = {
    "error": False,
    "msg": "Loop members retrieved successfully",
    "data": {
        "members": [
            {
                "user_id": USER_ID,
                "email": "creator@example.com",
                "status": "active",
                "joined_at": "2024-03-15T10:30:00Z",
                "role": "admin",
                "last_active": "2024-03-15T12:00:00Z",
            },
            {
                "user_id": REVIEWER_ID,
                "email": "reviewer1@example.com",
                "status": "pending",
                "joined_at": None,
                "role": "member",
                "last_active": None,
            },
        ],
        "total_count": 4,
        "active_count": 3,
        "pending_count": 1,
        "statistics": {
            "avg_join_time_days": 0.5,
            "newest_member_joined": "2024-03-15T10:30:00Z",
            "oldest_member_joined": "2024-03-01T09:00:00Z",
        },
    },
}

# §5.7 DELETE /v1/api/loops/{id}/members/{userId}
MEMBER_REMOVED: dict[str, Any] = {
    "error": False,
    "msg": "Member removed successfully",
    "data": {"loop_id": LOOP_ID, "user_id": REVIEWER_ID, "removed_at": "2024-03-15T16:00:00Z"},
}

# §6.1 POST /v1/api/loops/{loopId}/requests
REQUEST_CREATED: dict[str, Any] = {
    "error": False,
    "msg": "Request created and broadcasted successfully",
    "data": {
        "request_id": REQUEST_ID,
        "status": "pending",
        "processing_type": "time-sensitive",
        "type": "markdown",
        "priority": "high",
        "timeout_at": "2024-03-15T11:30:00Z",
        "broadcasted_to": 4,
        "notifications_sent": 3,
        "polling_url": f"/v1/api/requests/{REQUEST_ID}",
    },
}

# §6.2 GET /v1/api/requests/{id}: completed, shape A (plain response_data)
_REQUEST: dict[str, Any] = {
    "id": REQUEST_ID,
    "loop_id": LOOP_ID,
    "creator_id": USER_ID,
    "api_key_id": "65f1234567890abcdef12349",
    "processing_type": "time-sensitive",
    "type": "markdown",
    "priority": "high",
    "request_text": "Please review this user post for policy compliance",
    "image_url": None,
    "context": {"user_id": "user123", "post_id": "post456"},
    "platform": "api",
    "platform_version": "1.0.0",
    "response_type": "single_select",
    "response_config": {"options": ["Approve", "Reject", "Needs Changes"]},
    "default_response": "Approve",
    "timeout_at": "2024-03-15T11:30:00Z",
    "callback_url": "https://example.com/webhook/response",
    "broadcasted_to": [
        {
            "user_id": REVIEWER_ID,
            "email": "reviewer1@example.com",
            "role": "member",
            "notification_sent": True,
            "notification_error": None,
        }
    ],
    "broadcasted_at": "2024-03-15T10:30:00Z",
    "status": "completed",
    "response_by": REVIEWER_ID,
    "response_at": "2024-03-15T10:45:00Z",
    "response_data": "Approve",
    "response_time_seconds": 900.5,
    "created_at": "2024-03-15T10:30:00Z",
    "updated_at": "2024-03-15T10:45:00Z",
}
REQUEST_GET_COMPLETED: dict[str, Any] = {
    "error": False,
    "msg": "Request retrieved successfully",
    "data": {"request": _REQUEST},
}

# §7.2 shape B of the same kind of answer: the per-type pages' wrapped single_select value.
REQUEST_GET_SHAPE_B: dict[str, Any] = {
    "error": False,
    "msg": "Request retrieved successfully",
    "data": {
        "request": {
            **_REQUEST,
            "response_config": {
                "options": [
                    {"value": "approve", "label": "✅ Approve"},
                    {"value": "reject", "label": "❌ Reject"},
                ]
            },
            "default_response": "reject",
            "response_data": {"selected_value": "approve", "selected_label": "✅ Approve"},
            "response_by_user": {
                "id": REVIEWER_ID,
                "name": "Sarah Reviewer",
                "email": "sarah@example.com",
            },
        }
    },
}

# §6.3 GET /v1/api/requests
REQUESTS_LIST: dict[str, Any] = {
    "error": False,
    "msg": "Requests retrieved successfully",
    "data": {
        "requests": [
            {
                "id": REQUEST_ID,
                "loop_id": LOOP_ID,
                "processing_type": "time-sensitive",
                "type": "markdown",
                "priority": "high",
                "request_text": "Please review this user post",
                "response_type": "single_select",
                "status": "completed",
                "response_data": "Approve",
                "response_by": REVIEWER_ID,
                "response_at": "2024-03-15T10:45:00Z",
                "response_time_seconds": 900.5,
                "timeout_at": "2024-03-15T11:30:00Z",
                "created_at": "2024-03-15T10:30:00Z",
                "updated_at": "2024-03-15T10:45:00Z",
            },
            {
                "id": "65f1234567890abcdef12351",
                "loop_id": LOOP_ID,
                "processing_type": "deferred",
                "type": "markdown",
                "priority": "low",
                "request_text": "Second request",
                "response_type": "boolean",
                "status": "pending",
                "response_data": None,
                "response_by": None,
                "response_at": None,
                "response_time_seconds": None,
                "timeout_at": "2024-04-14T10:30:00Z",
                "created_at": "2024-03-15T10:31:00Z",
                "updated_at": "2024-03-15T10:31:00Z",
            },
        ],
        "count": 2,
        "total": 15,
        "has_more": True,
        "pagination": {"limit": 50, "offset": 0, "next_offset": 50},
    },
}

# §6.4 DELETE /v1/api/requests/{id}: pending (refunded) and claimed (not refunded)
CANCEL_PENDING: dict[str, Any] = {
    "error": False,
    "msg": "Request cancelled successfully",
    "data": {
        "request_id": REQUEST_ID,
        "status": "cancelled",
        "cancelled_at": "2024-03-15T11:15:00Z",
        "previous_status": "pending",
        "refund_info": {"refunded": True, "reason": "Request cancelled before processing began"},
    },
}
CANCEL_CLAIMED: dict[str, Any] = {
    "error": False,
    "msg": "Request cancelled successfully",
    "data": {
        "request_id": REQUEST_ID,
        "status": "cancelled",
        "cancelled_at": "2024-03-15T11:15:00Z",
        "previous_status": "claimed",
        "refund_info": {
            "refunded": False,
            "reason": "Request was already being processed by reviewer",
        },
    },
}

# §6.5 POST /v1/api/requests/{id}/feedback
FEEDBACK_SENT: dict[str, Any] = {"rating": 5, "comment": "Fast and accurate", "tags": ["fast"]}
FEEDBACK_ADDED: dict[str, Any] = {
    "error": False,
    "msg": "Feedback added successfully",
    "data": {
        "request_id": REQUEST_ID,
        "feedback": FEEDBACK_SENT,
        "feedback_id": "65f1234567890abcdef12355",
        "submitted_at": "2024-03-15T12:30:00Z",
        "reviewer_notified": True,
    },
}

# §2 / §3 errors
UNAUTHORIZED: dict[str, Any] = {"error": True, "msg": "Invalid authorization token"}
RATE_LIMITED: dict[str, Any] = {
    "error": True,
    "msg": "API key request limit exceeded",
    "data": {
        "usage_count": 100,
        "usage_limit": 100,
        "remaining": 0,
        "reset_at": "2024-03-15T11:00:00Z",
    },
}
VALIDATION_FAILED: dict[str, Any] = {
    "error": True,
    "msg": "Validation failed",
    "data": "timeout_seconds is required for time-sensitive requests",
}
FORBIDDEN: dict[str, Any] = {"error": True, "msg": "Only loop creators can create requests"}
NOT_FOUND: dict[str, Any] = {"error": True, "msg": "Request not found"}
CONFLICT: dict[str, Any] = {"error": True, "msg": "Turn already resolved"}
SERVER_ERROR: dict[str, Any] = {"error": True, "msg": "Internal server error"}
UNAVAILABLE: dict[str, Any] = {"error": True, "msg": "Service temporarily unavailable"}

RATE_HEADERS = {
    "X-RateLimit-Limit": "100",
    "X-RateLimit-Remaining": "99",
    "X-RateLimit-Reset": "1642233600",
}
