"""Fan-out and endorsement: a workflow review answered by several reviewers (issue 22 W8).

HITL.sh's Human Review node can send one request to several reviewers and either collect every
answer (**fan-out**) or decide once ``threshold`` distinct reviewers approved (**endorsement**,
M of N, resolving early). The request stays one request: each reviewer answers it once (a
second answer is a 409), every answer is kept (``responses`` on the request), and the request
completes, with one ``response_data`` and one callback, when the policy decides:

- endorsement: ``threshold`` approvals → the approval; a rejection → that rejection at once
  (``any_reject_rejects``, the default), else only once the threshold can no longer be reached;
- fan-out: once every reviewer answered → their common answer, or ``default_response`` when
  they disagree (no consensus is not an answer: a gate then fails closed on its default).

Claims do not lock a panel request: every reviewer may answer it in any order.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ..models.workflows import HumanReviewNode
from ._accounts import ReviewerAccount
from ._callbacks import enqueue_callback
from ._errors import ServerError
from ._util import dumps

__all__ = ["answer", "policy_of", "start"]


def start(
    conn: sqlite3.Connection, request_id: str, node: HumanReviewNode, loop_id: str, owner_id: str
) -> None:
    """Make ``request_id`` a panel review under ``node``'s policy; its reviewers are the
    workflow's (the owner only when nobody else is)."""
    members = [
        str(row["user_id"])
        for row in conn.execute(
            "SELECT user_id FROM loop_members WHERE loop_id = ? AND status = 'active' "
            "ORDER BY joined_at, user_id",
            (loop_id,),
        ).fetchall()
    ]
    reviewers = [member for member in members if member != owner_id] or members
    if node.threshold is not None and node.threshold > len(reviewers):
        raise ServerError(
            409,
            "Workflow cannot reach its threshold",
            f"threshold {node.threshold} is above its {len(reviewers)} reviewer(s). Fix: "
            "lower threshold or add reviewers",
        )
    policy = {
        "mode": node.mode,
        "threshold": node.threshold,
        "approvals": node.approvals(),
        "any_reject_rejects": node.any_reject_rejects,
        "reviewers": reviewers,
    }
    conn.execute(
        "INSERT INTO review_panels (request_id, policy) VALUES (?, ?)", (request_id, dumps(policy))
    )


def policy_of(conn: sqlite3.Connection, request_id: str) -> dict[str, Any] | None:
    """The panel policy of ``request_id``, or None for an ordinary (first answer) request."""
    row = conn.execute(
        "SELECT policy FROM review_panels WHERE request_id = ?", (request_id,)
    ).fetchone()
    return None if row is None else dict(json.loads(row["policy"]))


def _decide(policy: dict[str, Any], answers: list[Any], default: Any) -> tuple[bool, Any]:
    """(decided, the request's answer) for the answers given so far."""
    reviewers = len(policy["reviewers"])
    if policy["mode"] == "endorsement":
        approvals = [a for a in answers if a in policy["approvals"]]
        rejections = [a for a in answers if a not in policy["approvals"]]
        if len(approvals) >= policy["threshold"]:
            return True, approvals[-1]
        if rejections and policy["any_reject_rejects"]:
            return True, rejections[0]
        if reviewers - len(rejections) < policy["threshold"]:
            return True, rejections[-1]  # the threshold can no longer be reached
        return False, None
    if len(answers) < reviewers:
        return False, None
    first = answers[0]
    return True, first if all(a == first for a in answers) else default


def answer(
    conn: sqlite3.Connection,
    now: float,
    reviewer: ReviewerAccount,
    row: sqlite3.Row,
    value: Any,
    policy: dict[str, Any],
) -> None:
    """Record ``reviewer``'s answer; complete the request (and queue its callback) when the
    policy decides."""
    request_id = row["id"]
    if reviewer.id not in policy["reviewers"]:
        raise ServerError(403, "Access denied to this request", "you are not one of its reviewers")
    try:
        conn.execute(
            "INSERT INTO responses (request_id, user_id, value, at) VALUES (?, ?, ?, ?)",
            (request_id, reviewer.id, dumps(value), now),
        )
    except sqlite3.IntegrityError:
        raise ServerError(409, "You have already answered this request") from None
    answers = [
        json.loads(r["value"])
        for r in conn.execute(
            "SELECT value FROM responses WHERE request_id = ? ORDER BY at, rowid", (request_id,)
        ).fetchall()
    ]
    decided, result = _decide(policy, answers, json.loads(row["body"])["default_response"])
    if not decided:
        conn.execute("UPDATE requests SET updated_at = ? WHERE id = ?", (now, request_id))
        return
    conn.execute(
        "UPDATE requests SET status = 'completed', response_data = ?, response_by = ?, "
        "response_at = ?, claimed_by = NULL, claim_expires_at = NULL, updated_at = ? "
        "WHERE id = ?",
        (dumps(result), reviewer.id, now, now, request_id),
    )
    enqueue_callback(conn, now, request_id)
