"""Review requests through the API-key side: create, get, list, cancel, feedback."""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, get_args

from .._exceptions import ConfigError
from ..models.base import validate_strict
from ..models.requests import FeedbackParams, Priority, RequestStatus
from . import _quota
from ._accounts import Caller
from ._callbacks import enqueue_callback
from ._documents import REQUEST_SELECT, request_doc
from ._errors import ServerError, validation_error
from ._limits import MAX_BODY_BYTES, MAX_PAGE_BYTES, too_large
from ._loops import check_loop_id
from ._request_fields import IMMUTABLE_FIELDS, parse_create_body
from ._storage import PRIORITY_RANK
from ._util import dumps, is_id, iso, new_id

__all__ = [
    "DEFERRED_TIMEOUT_SECONDS",
    "MAX_OFFSET",
    "SORTS",
    "cancel_request",
    "check_request_id",
    "create_request",
    "feedback_request",
    "get_request",
    "list_requests",
    "load_request",
    "loop_requests",
    "update_request",
]

DEFERRED_TIMEOUT_SECONDS = 30 * 24 * 3600
"""A deferred request without ``timeout_seconds`` times out after 30 days (documented)."""

MAX_OFFSET = 2**62
"""The largest ``offset`` a list accepts (the OpenAPI document says so too)."""
STATUSES: tuple[str, ...] = get_args(RequestStatus)
PRIORITIES: tuple[str, ...] = get_args(Priority)
SORTS: dict[str, str] = {
    "created_at_desc": "created_at DESC, seq DESC",
    "created_at_asc": "created_at ASC, seq ASC",
    "priority_desc": "priority_rank DESC, created_at DESC, seq DESC",
    "status_asc": "status ASC, created_at DESC, seq DESC",
}


def check_request_id(request_id: str) -> None:
    """400 ``Invalid request ID format`` unless the id is 24 hex characters."""
    if not is_id(request_id):
        raise ServerError(
            400, "Invalid request ID format", "request_id must be a 24-character hexadecimal id"
        )


def load_request(conn: sqlite3.Connection, request_id: str) -> sqlite3.Row:
    """The request row with its responder, or 404."""
    check_request_id(request_id)
    row = conn.execute(REQUEST_SELECT + " WHERE r.id = ?", (request_id,)).fetchone()
    if row is None:
        raise ServerError(404, "Request not found")
    return row  # type: ignore[no-any-return]


def _is_member(conn: sqlite3.Connection, loop_id: str, user_id: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM loop_members WHERE loop_id = ? AND user_id = ? AND status = 'active'",
            (loop_id, user_id),
        ).fetchone()
        is not None
    )


def create_request(
    conn: sqlite3.Connection, now: float, caller: Caller, loop_id: str, body: Any
) -> dict[str, Any]:
    """Validate and store a request in ``loop_id``; return the 201 ``data``."""
    check_loop_id(loop_id)
    loop = conn.execute("SELECT creator_id FROM loops WHERE id = ?", (loop_id,)).fetchone()
    if loop is None:
        raise ServerError(404, "Loop not found")
    if loop["creator_id"] != caller.user_id:
        raise ServerError(403, "Only loop creators can create requests")
    params, stored = parse_create_body(body)
    members = conn.execute(
        "SELECT m.user_id, m.role, u.email FROM loop_members m JOIN users u ON u.id = m.user_id "
        "WHERE m.loop_id = ? AND m.status = 'active' ORDER BY m.joined_at, m.user_id",
        (loop_id,),
    ).fetchall()
    if not members:
        raise ServerError(400, "No active members found in the loop", "add a reviewer first")
    broadcast = [
        {
            "user_id": m["user_id"],
            "email": m["email"],
            "role": m["role"],
            "notification_sent": True,
            "notification_error": None,
        }
        for m in members
    ]
    timeout_seconds = params.timeout_seconds or DEFERRED_TIMEOUT_SECONDS
    request_id = new_id(now)
    conn.execute(
        "INSERT INTO requests (id, loop_id, api_key_id, creator_id, status, priority, "
        "priority_rank, body, broadcasted_to, timeout_at, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?)",
        (
            request_id,
            loop_id,
            caller.api_key_id,
            caller.user_id,
            params.priority,
            PRIORITY_RANK[params.priority],
            dumps(stored),
            dumps(broadcast),
            now + timeout_seconds,
            now,
            now,
        ),
    )
    # HITL.sh documents ``request_id``; its own MCP scripts read ``id``: send both.
    return {
        "id": request_id,
        "request_id": request_id,
        "status": "pending",
        "processing_type": params.processing_type,
        "type": params.type,
        "priority": params.priority,
        "timeout_at": iso(now + timeout_seconds),
        "broadcasted_to": len(broadcast),
        "notifications_sent": len(broadcast),
        "polling_url": f"/v1/api/requests/{request_id}",
    }


def get_request(conn: sqlite3.Connection, caller: Caller, request_id: str) -> dict[str, Any]:
    """A request of this key, or of a loop the key's user belongs to."""
    row = load_request(conn, request_id)
    if row["api_key_id"] != caller.api_key_id and not _is_member(
        conn, row["loop_id"], caller.user_id
    ):
        raise ServerError(403, "Access denied to this request")
    return {"request": request_doc(row)}


def _int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        bound = f"between {low} and {high}" if high < 2**62 else f"at least {low}"
        raise ServerError(
            400, "Invalid pagination parameters", f"{name} must be an integer {bound}"
        )
    return value


def _choice(query: Mapping[str, str], name: str, allowed: tuple[str, ...], msg: str) -> str | None:
    value = query.get(name)
    if value is not None and value not in allowed:
        raise ServerError(400, msg, f"{name} must be one of: {', '.join(allowed)}")
    return value


_OFFSET = re.compile(r" (\d\d(?::?\d\d)?)$")


def _time_param(query: Mapping[str, str], name: str) -> int | None:
    """``created_before``/``created_after`` as whole milliseconds since the epoch.

    Takes ISO 8601 (``2024-03-15T10:30:00Z``, an offset, or naive = UTC) or epoch seconds.
    Milliseconds, because that is the precision the API prints: passing back a request's
    own ``created_at`` then excludes exactly that request.
    """
    raw = query.get(name)
    if raw is None:
        return None
    # An unencoded "+00:00" arrives as " 00:00".
    text = _OFFSET.sub(r"+\1", raw.strip())
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp() if moment is not None else math.nan
    if not math.isfinite(seconds) or not 0 <= seconds < 2**42:
        raise ServerError(
            400,
            "Invalid date filter value",
            f"{name} must be an ISO 8601 time such as 2024-03-15T10:30:00Z (or epoch seconds)",
        )
    return math.floor(seconds * 1000)


def _within_page_bytes(rows: list[sqlite3.Row]) -> list[sqlite3.Row]:
    """The leading rows whose stored bodies fit in MAX_PAGE_BYTES (always at least one); the
    page then ends early with ``has_more`` true, so a client just follows ``next_offset``."""
    size = 0
    for count, row in enumerate(rows):
        size += len(row["body"])
        if count and size > MAX_PAGE_BYTES:
            return rows[:count]
    return rows


def loop_requests(
    conn: sqlite3.Connection, caller: Caller, loop_id: str, query: Mapping[str, str]
) -> dict[str, Any]:
    """``GET /loops/{loop_id}/requests``: one page of the loop's requests (any key's), for
    its creator or an active member (the documented scope: "see requests in loops you are a
    member of"); the same filters, sorting and paging as ``GET /requests``, plus ``loop_id``.
    """
    check_loop_id(loop_id)
    loop = conn.execute("SELECT creator_id FROM loops WHERE id = ?", (loop_id,)).fetchone()
    if loop is None:
        raise ServerError(404, "Loop not found")
    if loop["creator_id"] != caller.user_id and not _is_member(conn, loop_id, caller.user_id):
        raise ServerError(403, "Access denied to this loop")
    page = list_requests(conn, caller, {**query, "loop_id": loop_id}, whole_loop=True)
    return {**page, "loop_id": loop_id}


def list_requests(
    conn: sqlite3.Connection,
    caller: Caller,
    query: Mapping[str, str],
    *,
    whole_loop: bool = False,
) -> dict[str, Any]:
    """One page of the requests this key created (with ``whole_loop``, every request of the
    ``loop_id`` in ``query``, access checked by the caller), filtered and sorted as asked."""
    status = _choice(query, "status", STATUSES, "Invalid status filter value")
    priority = _choice(query, "priority", PRIORITIES, "Invalid priority filter value")
    sort = _choice(query, "sort", tuple(SORTS), "Invalid sort value") or "created_at_desc"
    loop_id = query.get("loop_id")
    if loop_id is not None:
        check_loop_id(loop_id)
    before = _time_param(query, "created_before")
    after = _time_param(query, "created_after")
    limit = _int_param(query, "limit", 50, 1, 100)
    offset = _int_param(query, "offset", 0, 0, MAX_OFFSET)
    where: list[str] = []
    args: list[Any] = []
    if not whole_loop or loop_id is None:
        where.append("r.api_key_id = ?")
        args.append(caller.api_key_id)
    for column, value in (("status", status), ("priority", priority), ("loop_id", loop_id)):
        if value is not None:
            where.append(f"r.{column} = ?")
            args.append(value)
    # Compared at the millisecond the API prints: created_at shown as .123 is "at .123".
    if before is not None:
        where.append("r.created_at < ?")
        args.append(before / 1000)
    if after is not None:
        where.append("r.created_at >= ?")
        args.append((after + 1) / 1000)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    total = conn.execute("SELECT COUNT(*) FROM requests r" + clause, args).fetchone()[0]
    order = ", ".join("r." + part for part in SORTS[sort].split(", "))
    rows = conn.execute(
        REQUEST_SELECT + clause + f" ORDER BY {order} LIMIT ? OFFSET ?", [*args, limit, offset]
    ).fetchall()
    rows = _within_page_bytes(rows)
    has_more = offset + len(rows) < total
    return {
        "requests": [request_doc(row) for row in rows],
        "count": len(rows),
        "total": total,
        "has_more": has_more,
        "pagination": {
            "limit": limit,
            "offset": offset,
            "next_offset": offset + len(rows) if has_more else None,
        },
    }


def cancel_request(
    conn: sqlite3.Connection, now: float, caller: Caller, request_id: str
) -> dict[str, Any]:
    """Cancel a pending (refunded) or claimed (not refunded) request of this key."""
    row = load_request(conn, request_id)
    if row["api_key_id"] != caller.api_key_id:
        raise ServerError(403, "Access denied to this request")
    previous = row["status"]
    if previous == "pending":
        refund = {"refunded": True, "reason": "Request cancelled before processing began"}
        _quota.refund(conn, caller.api_key_id, now)
    elif previous == "claimed":
        refund = {"refunded": False, "reason": "Request was already being processed by reviewer"}
    else:
        raise ServerError(
            400,
            "Request cannot be cancelled in current state",
            f"the request is {previous}; only pending or claimed requests can be cancelled",
        )
    conn.execute(
        "UPDATE requests SET status = 'cancelled', cancelled_at = ?, updated_at = ?, "
        "claimed_by = NULL, claim_expires_at = NULL WHERE id = ?",
        (now, now, request_id),
    )
    enqueue_callback(conn, now, request_id)
    return {
        "request_id": request_id,
        "status": "cancelled",
        "cancelled_at": iso(now),
        "previous_status": previous,
        "refund_info": refund,
    }


def update_request(
    conn: sqlite3.Connection, now: float, caller: Caller, request_id: str, body: Any
) -> dict[str, Any]:
    """``PATCH``: change mutable fields of a pending request of this key.

    HITL.sh's MCP server sends a partial create body; the merged body is checked as a create
    would be, so a new ``response_type`` needs a matching config and default. The timeout
    still counts from creation.
    """
    row = load_request(conn, request_id)
    if row["api_key_id"] != caller.api_key_id:
        raise ServerError(403, "Access denied to this request")
    if not isinstance(body, dict):
        raise ServerError(
            400, "Invalid request body", "the body must be a JSON object of fields to change"
        )
    if not body:
        raise ServerError(
            400,
            "At least one field must be provided for update",
            'send the fields to change, e.g. {"priority": "high"}',
        )
    fixed = sorted(set(body) & IMMUTABLE_FIELDS)
    if fixed:
        fix = "cancel with DELETE instead" if fixed[0] == "status" else "leave it out of the update"
        raise ServerError(
            400, "Validation failed", f"{fixed[0]}: set by the server, not by an update. Fix: {fix}"
        )
    if row["status"] != "pending":
        raise ServerError(
            400,
            "Request cannot be updated in current state",
            f"the request is {row['status']}; only pending requests can be updated",
        )
    merged = {**json.loads(row["body"]), **body}
    if "response_type" in body and "response_config" not in body:
        merged.pop("response_config", None)
    params, stored = parse_create_body(merged)
    text = dumps(stored)
    if len(text.encode("utf-8")) > MAX_BODY_BYTES:
        # Each PATCH is bounded; fields added by many of them must be bounded too.
        raise too_large(MAX_BODY_BYTES, "the updated request")
    timeout_seconds = params.timeout_seconds or DEFERRED_TIMEOUT_SECONDS
    conn.execute(
        "UPDATE requests SET priority = ?, priority_rank = ?, body = ?, timeout_at = ?, "
        "updated_at = ? WHERE id = ?",
        (
            params.priority,
            PRIORITY_RANK[params.priority],
            text,
            float(row["created_at"]) + timeout_seconds,
            now,
            request_id,
        ),
    )
    return {"request": request_doc(load_request(conn, request_id))}


_SCORE_FIELDS = ("rating", "accuracy", "timeliness", "helpfulness")


def feedback_request(
    conn: sqlite3.Connection, now: float, caller: Caller, request_id: str, body: Any
) -> dict[str, Any]:
    """Store feedback on a completed request this key created."""
    check_request_id(request_id)
    if not isinstance(body, dict) or not isinstance(body.get("feedback"), dict):
        raise ServerError(
            400,
            "Invalid request body",
            'feedback: required object is missing. Fix: send {"feedback": {"rating": 5, ...}}',
        )
    extra = sorted(set(body) - {"feedback"})
    if extra:
        raise ServerError(
            400,
            "Invalid request body",
            f"{extra[0]}: unknown field. Fix: put feedback fields inside the feedback object",
        )
    row = load_request(conn, request_id)
    if row["api_key_id"] != caller.api_key_id:
        raise ServerError(403, "Access denied to this request")
    if row["status"] != "completed":
        raise ServerError(
            400,
            "Feedback can only be added to completed requests",
            f"the request is {row['status']}",
        )
    try:
        params = validate_strict(FeedbackParams, body["feedback"], prefix="feedback")
    except ConfigError as err:
        name = err.field.removeprefix("feedback.")
        if name in _SCORE_FIELDS:
            raise validation_error(err, "Rating values must be between 1 and 5") from None
        if name == "comment":
            raise validation_error(
                err, "Comment exceeds maximum length of 1000 characters"
            ) from None
        raise validation_error(err) from None
    feedback = params.model_dump(mode="json", exclude_none=True)
    feedback_id = new_id(now)
    conn.execute(
        "INSERT INTO feedback (id, request_id, api_key_id, feedback, submitted_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (feedback_id, request_id, caller.api_key_id, dumps(feedback), now),
    )
    return {
        "request_id": request_id,
        "feedback": json.loads(dumps(feedback)),
        "feedback_id": feedback_id,
        "submitted_at": iso(now),
        "reviewer_notified": row["response_by"] is not None,
    }
