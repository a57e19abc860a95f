"""Workflows on the local server: definitions, triggers and their executions.

A workflow (HITL.sh's successor to a loop, ``guides/migration.mdx``) is stored with a backing
loop whose members are the Human Review node's reviewers. A trigger runs the workflow at
once: its Human Review node creates an ordinary request in that loop (the same validation,
timeouts, callbacks, console and ``GET /v1/api/requests/{id}`` as any request), and an
execution row links the two. So everything that waits on requests waits on a workflow's
without knowing it; the trigger answers ``execution_id`` and ``request_id`` as HITL.sh's
does.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from .._exceptions import ConfigError
from ..models.loops import CreateLoopParams
from ..models.workflows import HumanReviewNode, WorkflowDefinition, WorkflowFile
from . import _accounts, _panel, _requests
from ._accounts import Caller
from ._errors import ServerError
from ._loops import create_loop
from ._request_fields import parse_create_body
from ._util import dumps, iso, iso_or_none, new_id

__all__ = [
    "DEFAULT_WORKFLOW",
    "check_workflows",
    "execution_doc",
    "get_execution",
    "list_executions",
    "register_workflow",
    "trigger_workflow",
]

DEFAULT_WORKFLOW = WorkflowDefinition.model_validate(
    {
        "name": "Local approvals workflow",
        "description": "Created by bootstrap: trigger, then a human review (Approve/Reject)",
        "nodes": [
            {"type": "trigger"},
            {
                "type": "human_review",
                "response_type": "single_select",
                "timeout_seconds": 3600,
                "default_response": "reject",
            },
        ],
    }
)
"""What ``hitl-agent serve`` sets up without ``--workflow``: trigger → human review
(single_select Approve/Reject, 1 h, default Reject)."""

# The create fields a trigger body may set; the node's configuration fills the others.
_FORM = ("response_type", "response_config", "default_response")
_STATUS = {
    "pending": "waiting_for_review",
    "claimed": "waiting_for_review",
    "completed": "completed",
    "timeout": "timeout",
    "cancelled": "cancelled",
}


def check_workflows(workflows: WorkflowFile) -> None:
    """Refuse a file whose Human Review node could never create a request (an option list
    that does not fit its type, a default that is not an answer), before anything runs.

    Raises:
        ConfigError: naming ``workflows.<i>.nodes.1`` and the request field.
    """
    for index, definition in enumerate(workflows.workflows):
        try:
            parse_create_body(create_body(definition.review, {"request_text": "check"}))
        except ServerError as err:
            raise ConfigError(
                f"workflows.{index}.nodes.1",
                f"its review could not create a request: {err.data or err.msg}",
                "fix the node's response_type, response_config or default_response",
            ) from None


def register_workflow(
    conn: sqlite3.Connection,
    now: float,
    owner_id: str,
    definition: WorkflowDefinition,
    reviewer_emails: Iterable[str],
) -> str:
    """Store (or replace) ``definition`` owned by ``owner_id``; its id.

    The backing loop is made once and kept across restarts (its requests stay readable);
    ``reviewer_emails`` become its active members (users made when missing).
    """
    workflow_id = definition.workflow_id()
    row = conn.execute(
        "SELECT owner_id, loop_id FROM workflows WHERE id = ?", (workflow_id,)
    ).fetchone()
    if row is not None and row["owner_id"] != owner_id:
        raise ValueError(
            f"workflow {workflow_id!r} belongs to another user. Fix: give it another id"
        )
    if row is None:
        params = CreateLoopParams(
            name=f"Workflow: {definition.name}"[:100], description=definition.description
        )
        loop_id = str(create_loop(conn, now, owner_id, params)["loop"]["id"])
        conn.execute(
            "INSERT INTO workflows (id, name, owner_id, loop_id, status, definition, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                workflow_id,
                definition.name,
                owner_id,
                loop_id,
                definition.status,
                definition.model_dump_json(),
                now,
                now,
            ),
        )
    else:
        loop_id = str(row["loop_id"])
        conn.execute(
            "UPDATE workflows SET name = ?, status = ?, definition = ?, updated_at = ? "
            "WHERE id = ?",
            (definition.name, definition.status, definition.model_dump_json(), now, workflow_id),
        )
    for email in reviewer_emails:
        user_id = _accounts.ensure_user(conn, now, email)
        _accounts.ensure_member(conn, now, loop_id, user_id)
    return workflow_id


def _load(conn: sqlite3.Connection, caller: Caller, workflow_id: str) -> sqlite3.Row:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM workflows WHERE id = ?", (workflow_id,)
    ).fetchone()
    # Another user's workflow answers as a missing one: ids are not secrets, but whether one
    # exists is nobody else's business.
    if row is None or row["owner_id"] != caller.user_id:
        raise ServerError(404, "Workflow not found")
    return row


def _request_text(node: HumanReviewNode, body: dict[str, Any]) -> str:
    text = body.get("request_text")
    if isinstance(text, str) and text:
        return text
    if node.request_text:
        return node.request_text
    content = body.get("content")
    if isinstance(content, str) and content:
        return content  # the docs' example body: {"content": ..., "user_id": ..., ...}
    shown = json.dumps(body, indent=2, sort_keys=True, default=str)
    return f"Workflow trigger data:\n\n```json\n{shown}\n```"


def create_body(node: HumanReviewNode, body: dict[str, Any]) -> dict[str, Any]:
    """The request the Human Review node creates for a trigger ``body``.

    The body's own fields win (a gate's rendered request, HITL.sh's n8n node's fields); the
    node's configuration fills what the body leaves out. The form (type, config, default)
    is taken whole from one side when the body names another response type: the node's
    options never dress a form of another type.
    """
    merged: dict[str, Any] = {key: value for key, value in body.items() if value is not None}
    if "response_type" not in merged or merged["response_type"] == node.response_type:
        for key in _FORM:
            value = getattr(node, key)
            if key not in merged and value is not None:
                merged[key] = value
    merged.setdefault("timeout_seconds", node.timeout_seconds)
    merged.setdefault("priority", node.priority)
    merged["request_text"] = _request_text(node, body)
    return merged


def trigger_workflow(
    conn: sqlite3.Connection,
    now: float,
    caller: Caller,
    workflow_id: str,
    body: dict[str, Any],
    shape: str,
) -> dict[str, Any]:
    """Run ``workflow_id`` for ``body``: its review request and execution; the answer's data."""
    row = _load(conn, caller, workflow_id)
    if row["status"] != "active":
        raise ServerError(
            409,
            "Workflow is not active",
            f"workflow {workflow_id} is a draft, and drafts ignore triggers. Fix: set its "
            "status to active",
        )
    definition = WorkflowDefinition.model_validate_json(row["definition"])
    execution_id = new_id(now)
    fields = create_body(definition.review, body)
    # The request names its run (the keys n8n's node reads); set here, never by the body.
    fields["workflow_id"], fields["execution_id"] = workflow_id, execution_id
    created = _requests.create_request(conn, now, caller, str(row["loop_id"]), fields)
    if definition.review.mode != "any":  # fan-out or endorsement (W8)
        _panel.start(
            conn, created["request_id"], definition.review, str(row["loop_id"]), row["owner_id"]
        )
    conn.execute(
        "INSERT INTO executions (id, workflow_id, request_id, api_key_id, shape, body, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (execution_id, workflow_id, created["request_id"], caller.api_key_id, shape,
         dumps(body), now),
    )  # fmt: skip
    return {
        "execution_id": execution_id,
        "workflow_id": workflow_id,
        "request_id": created["request_id"],
        "status": "waiting_for_review",
        "timeout_at": created["timeout_at"],
        "polling_url": created["polling_url"],
    }


def execution_doc(row: sqlite3.Row) -> dict[str, Any]:
    """An execution as the API shows it: its status follows its request's."""
    status = row["request_status"]
    return {
        "id": row["id"],
        "execution_id": row["id"],
        "workflow_id": row["workflow_id"],
        "request_id": row["request_id"],
        "status": _STATUS.get(status, "running") if status is not None else "running",
        "request_status": status,
        "response_at": iso_or_none(row["response_at"]),
        "created_at": iso(row["created_at"]),
    }


_EXECUTION_SELECT = (
    "SELECT e.*, r.status AS request_status, r.response_at FROM executions e "
    "LEFT JOIN requests r ON r.id = e.request_id "
)


def list_executions(
    conn: sqlite3.Connection, caller: Caller, workflow_id: str, limit: int = 50
) -> dict[str, Any]:
    """The workflow's latest executions, newest first."""
    _load(conn, caller, workflow_id)
    rows = conn.execute(
        _EXECUTION_SELECT + "WHERE e.workflow_id = ? ORDER BY e.created_at DESC, e.id LIMIT ?",
        (workflow_id, limit),
    ).fetchall()
    return {"executions": [execution_doc(row) for row in rows], "count": len(rows)}


def get_execution(
    conn: sqlite3.Connection, caller: Caller, workflow_id: str, execution_id: str
) -> dict[str, Any]:
    """One execution of the workflow."""
    _load(conn, caller, workflow_id)
    row = conn.execute(
        _EXECUTION_SELECT + "WHERE e.id = ? AND e.workflow_id = ?", (execution_id, workflow_id)
    ).fetchone()
    if row is None:
        raise ServerError(404, "Execution not found")
    return {"execution": execution_doc(row)}


def list_workflows(conn: sqlite3.Connection, owner_id: str | None = None) -> list[dict[str, Any]]:
    """Every workflow (of ``owner_id``), with its execution count: the console's list."""
    where, args = ("WHERE w.owner_id = ? ", (owner_id,)) if owner_id else ("", ())
    rows = conn.execute(
        "SELECT w.id, w.name, w.status, w.loop_id, "
        "(SELECT COUNT(*) FROM executions e WHERE e.workflow_id = w.id) AS executions "
        f"FROM workflows w {where}ORDER BY w.created_at, w.rowid",
        args,
    ).fetchall()
    return [dict(row) for row in rows]
