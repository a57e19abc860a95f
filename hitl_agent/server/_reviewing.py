"""The reviewer side: the queue, claims, releases and answers; plus the scheduler's sweeps.

A claim lasts ``claim_timeout`` seconds; an expired claim counts as free even before the
scheduler's next sweep returns it to pending, so a reviewer is never blocked by a stale one.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from .._capability import redact_callback_url
from .._exceptions import ConfigError
from ..models.response_types import EditedText
from . import _panel
from ._accounts import ReviewerAccount
from ._callbacks import enqueue_callback
from ._documents import REQUEST_SELECT, request_doc
from ._errors import ServerError, validation_error
from ._request_fields import check_answer, server_config
from ._requests import load_request
from ._util import dumps, iso_or_none

__all__ = [
    "claim",
    "expire_claims",
    "queue",
    "release",
    "respond",
    "reviewer_request",
    "time_out_due",
]


def _member_row(
    conn: sqlite3.Connection, reviewer: ReviewerAccount, request_id: str
) -> sqlite3.Row:
    row = load_request(conn, request_id)
    member = conn.execute(
        "SELECT 1 FROM loop_members WHERE loop_id = ? AND user_id = ? AND status = 'active'",
        (row["loop_id"], reviewer.id),
    ).fetchone()
    if member is None:
        raise ServerError(403, "Access denied to this request", "you are not a member of its loop")
    return row


def _claimed_by_other(row: sqlite3.Row, reviewer: ReviewerAccount, now: float) -> bool:
    return (
        row["status"] == "claimed"
        and row["claimed_by"] != reviewer.id
        and row["claim_expires_at"] is not None
        and row["claim_expires_at"] > now
    )


def _check_open(row: sqlite3.Row, now: float) -> None:
    if row["status"] == "completed":
        raise ServerError(409, "Request has already been answered")
    if row["status"] in ("timeout", "cancelled") or row["timeout_at"] <= now:
        status = row["status"] if row["status"] != "pending" else "timeout"
        raise ServerError(409, "Request is no longer open", f"the request is {status}")


def reviewer_doc(row: sqlite3.Row, render: Any) -> dict[str, Any]:
    """A request as a reviewer sees it: the API fields, the claim, ``request_html`` and
    ``timeout_note`` (what a timeout does). The callback URL's capability token is the
    dispatcher's alone: a reviewer sees the URL redacted."""
    doc = request_doc(row)
    doc["callback_url"] = redact_callback_url(doc["callback_url"])
    doc["claimed_by"] = row["claimed_by"] if row["status"] == "claimed" else None
    doc["claim_expires_at"] = (
        iso_or_none(row["claim_expires_at"]) if row["status"] == "claimed" else None
    )
    doc["request_html"] = render(doc["request_text"])
    doc["timeout_note"] = _timeout_note(doc)
    return doc


def _timeout_note(doc: dict[str, Any]) -> str:
    try:
        from .console import timeout_note
    except ImportError:  # the console (markdown-it) is optional, like render_request_html's
        return ""
    return str(timeout_note(doc))


def queue(
    conn: sqlite3.Connection, now: float, reviewer: ReviewerAccount, limit: int, render: Any
) -> dict[str, Any]:
    """Open requests in the reviewer's loops: pending, or claimed by this reviewer (or by
    someone whose claim lapsed); critical first, then oldest first."""
    rows = conn.execute(
        REQUEST_SELECT + " JOIN loop_members m ON m.loop_id = r.loop_id "
        "AND m.user_id = ? AND m.status = 'active' "
        "WHERE r.timeout_at > ? AND (r.status = 'pending' OR (r.status = 'claimed' "
        "AND (r.claimed_by = ? OR r.claim_expires_at <= ?))) "
        # A panel request this reviewer already answered waits for the others, not for them.
        "AND NOT EXISTS (SELECT 1 FROM responses a WHERE a.request_id = r.id AND a.user_id = ?) "
        "ORDER BY r.priority_rank DESC, r.created_at ASC, r.seq ASC LIMIT ?",
        (reviewer.id, now, reviewer.id, now, reviewer.id, limit),
    ).fetchall()
    items = [reviewer_doc(row, render) for row in rows]
    return {"requests": items, "count": len(items)}


def reviewer_request(
    conn: sqlite3.Connection, reviewer: ReviewerAccount, request_id: str, render: Any
) -> dict[str, Any]:
    """One request of the reviewer's loops, whatever its status."""
    return {"request": reviewer_doc(_member_row(conn, reviewer, request_id), render)}


def _touch(conn: sqlite3.Connection, reviewer: ReviewerAccount, now: float) -> None:
    conn.execute("UPDATE users SET last_active = ? WHERE id = ?", (now, reviewer.id))


def claim(
    conn: sqlite3.Connection,
    now: float,
    reviewer: ReviewerAccount,
    request_id: str,
    claim_timeout: float,
    render: Any,
) -> dict[str, Any]:
    """Claim a pending request (or renew this reviewer's own claim)."""
    row = _member_row(conn, reviewer, request_id)
    _check_open(row, now)
    if _panel.policy_of(conn, request_id) is not None:
        # Every reviewer of a panel answers it: a claim would hide it from the others.
        return reviewer_request(conn, reviewer, request_id, render)
    if _claimed_by_other(row, reviewer, now):
        raise ServerError(409, "Request is already claimed by another reviewer")
    conn.execute(
        "UPDATE requests SET status = 'claimed', claimed_by = ?, claimed_at = ?, "
        "claim_expires_at = ?, updated_at = ? WHERE id = ?",
        (reviewer.id, now, now + claim_timeout, now, request_id),
    )
    _touch(conn, reviewer, now)
    return reviewer_request(conn, reviewer, request_id, render)


def release(
    conn: sqlite3.Connection, now: float, reviewer: ReviewerAccount, request_id: str, render: Any
) -> dict[str, Any]:
    """Give a claim back: the request is pending again."""
    row = _member_row(conn, reviewer, request_id)
    _check_open(row, now)
    if row["status"] != "claimed" or row["claimed_by"] != reviewer.id:
        raise ServerError(409, "Request is not claimed by you")
    conn.execute(
        "UPDATE requests SET status = 'pending', claimed_by = NULL, claimed_at = NULL, "
        "claim_expires_at = NULL, updated_at = ? WHERE id = ?",
        (now, request_id),
    )
    return reviewer_request(conn, reviewer, request_id, render)


def _stored_answer(body: dict[str, Any], value: Any) -> Any:
    raw_config = body["response_config"]
    config = server_config(body["response_type"], raw_config)
    typed = check_answer(config, raw_config, value, field="response_data")
    if isinstance(typed, EditedText):
        draft = body["response_config"].get("draft_text")
        return {"revised_text": typed.text, "was_edited": typed.text != draft}
    return value


def respond(
    conn: sqlite3.Connection,
    now: float,
    reviewer: ReviewerAccount,
    request_id: str,
    value: Any,
    render: Any,
) -> dict[str, Any]:
    """Answer a request (claiming it implicitly when pending); validated against its config."""
    row = _member_row(conn, reviewer, request_id)
    _check_open(row, now)
    policy = _panel.policy_of(conn, request_id)
    if policy is None and _claimed_by_other(row, reviewer, now):
        raise ServerError(409, "Request is already claimed by another reviewer")
    try:
        answer = _stored_answer(json.loads(row["body"]), value)
    except ConfigError as err:
        raise validation_error(err, "Invalid response") from None
    if policy is not None:
        _panel.answer(conn, now, reviewer, row, answer, policy)
        _touch(conn, reviewer, now)
        return reviewer_request(conn, reviewer, request_id, render)
    conn.execute(
        "UPDATE requests SET status = 'completed', response_data = ?, response_by = ?, "
        "response_at = ?, claimed_by = ?, claim_expires_at = NULL, updated_at = ? WHERE id = ?",
        (dumps(answer), reviewer.id, now, reviewer.id, now, request_id),
    )
    _touch(conn, reviewer, now)
    enqueue_callback(conn, now, request_id)
    return reviewer_request(conn, reviewer, request_id, render)


def time_out_due(conn: sqlite3.Connection, now: float) -> int:
    """Move open requests past ``timeout_at`` to ``timeout``; queue their callbacks."""
    ids = [
        row["id"]
        for row in conn.execute(
            "SELECT id FROM requests WHERE status IN ('pending', 'claimed') AND timeout_at <= ?",
            (now,),
        ).fetchall()
    ]
    for request_id in ids:
        conn.execute(
            "UPDATE requests SET status = 'timeout', claimed_by = NULL, "
            "claim_expires_at = NULL, updated_at = ? WHERE id = ?",
            (now, request_id),
        )
        enqueue_callback(conn, now, request_id)
    return len(ids)


def expire_claims(conn: sqlite3.Connection, now: float) -> int:
    """Return claims older than the claim timeout to pending."""
    return conn.execute(
        "UPDATE requests SET status = 'pending', claimed_by = NULL, claimed_at = NULL, "
        "claim_expires_at = NULL, updated_at = ? WHERE status = 'claimed' "
        "AND claim_expires_at <= ?",
        (now, now),
    ).rowcount
