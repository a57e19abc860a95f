"""Request rows as the API shows them, and the callback payload of a finished request."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ._util import iso, iso_or_none

__all__ = ["REQUEST_SELECT", "callback_payload", "request_doc"]

REQUEST_SELECT = (
    "SELECT r.*, u.email AS responder_email, u.name AS responder_name, "
    # Every reviewer's answer of a fan-out or endorsement review (issue 22 W8), oldest first.
    "(SELECT json_group_array(json_object('user_id', x.user_id, 'email', xu.email, "
    "'name', xu.name, 'response_data', json(x.value), 'at', x.at)) "
    "FROM (SELECT * FROM responses WHERE request_id = r.id ORDER BY at, rowid) x "
    "JOIN users xu ON xu.id = x.user_id) AS responses_json "
    "FROM requests r LEFT JOIN users u ON u.id = r.response_by"
)
"""Select a request with who answered it; append ``WHERE ...``."""

_MEDIA_FIELDS = ("file_url", "file_type", "file_name", "video_url", "audio_url")


def _response_time(row: sqlite3.Row) -> float | None:
    if row["response_at"] is None:
        return None
    return round(float(row["response_at"]) - float(row["created_at"]), 3)


def _responder(row: sqlite3.Row) -> dict[str, Any] | None:
    if row["response_by"] is None:
        return None
    return {
        "id": row["response_by"],
        "user_id": row["response_by"],
        "name": row["responder_name"],
        "email": row["responder_email"],
    }


def request_doc(row: sqlite3.Row) -> dict[str, Any]:
    """The ``data.request`` object of ``GET /requests/{id}`` (also each list item).

    On timeout ``response_data`` stays null, as the callback documentation says; the answer
    to use is ``default_response``, which every request carries.
    """
    body = json.loads(row["body"])
    doc: dict[str, Any] = {
        "id": row["id"],
        "loop_id": row["loop_id"],
        "creator_id": row["creator_id"],
        "api_key_id": row["api_key_id"],
        "processing_type": body["processing_type"],
        "type": body["type"],
        "priority": row["priority"],
        "request_text": body["request_text"],
        "image_url": body.get("image_url"),
        "context": body.get("context"),
        "platform": body.get("platform", "api"),
        "platform_version": body.get("platform_version"),
        "response_type": body["response_type"],
        "response_config": body["response_config"],
        "default_response": body["default_response"],
        "timeout_at": iso(row["timeout_at"]),
        "callback_url": body.get("callback_url"),
        "broadcasted_to": json.loads(row["broadcasted_to"]),
        "broadcasted_at": iso(row["created_at"]),
        "status": row["status"],
        "response_by": row["response_by"],
        "response_by_user": _responder(row),
        "response_at": iso_or_none(row["response_at"]),
        "response_data": None if row["response_data"] is None else json.loads(row["response_data"]),
        "response_time_seconds": _response_time(row),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }
    answers = json.loads(row["responses_json"] or "[]")
    if answers:
        doc["responses"] = [
            {
                "user_id": a["user_id"],
                "response_by_user": {"id": a["user_id"], "name": a["name"], "email": a["email"]},
                "response_data": a["response_data"],
                "response_at": iso(a["at"]),
            }
            for a in answers
        ]
    for name in _MEDIA_FIELDS:
        if body.get(name) is not None:
            doc[name] = body[name]
    # Fields the docs do not list (``tags``, ...) come back as they were sent; they never
    # shadow a field the server sets.
    for name, value in body.items():
        doc.setdefault(name, value)
    return doc


def callback_payload(row: sqlite3.Row) -> dict[str, Any]:
    """The documented callback body (reference §9.1) of a finished request."""
    status = row["status"]
    completed = status == "completed"
    responder = _responder(row)
    return {
        "event": f"request.{status}",
        "request_id": row["id"],
        "loop_id": row["loop_id"],
        "status": status,
        "response_data": json.loads(row["response_data"]) if completed else None,
        "response_by": (
            {k: responder[k] for k in ("user_id", "name", "email")}
            if completed and responder
            else None
        ),
        "response_at": iso_or_none(row["response_at"]) if completed else None,
        "response_time_seconds": _response_time(row) if completed else None,
        "created_at": iso(row["created_at"]),
    }
