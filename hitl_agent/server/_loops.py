"""Loops and their members: creation, listing, updates, deletion, member removal.

Access follows the documented scope: a key sees loops its user created or belongs to; only the
creator may read one loop's details, update, delete or manage its members.
"""

from __future__ import annotations

import base64
import secrets
import sqlite3
import string
from typing import Any

from ..models.loops import CreateLoopParams, UpdateLoopParams
from ._accounts import Caller
from ._errors import ServerError
from ._qr import MAX_QR_BYTES, qr_png
from ._util import is_id, iso, iso_or_none, new_id

__all__ = [
    "check_loop_id",
    "create_loop",
    "delete_loop",
    "get_owned_loop",
    "join_fields",
    "list_loops",
    "loop_doc",
    "loop_members",
    "remove_member",
    "update_loop",
]

_INVITE_ALPHABET = string.ascii_uppercase + string.digits


def check_loop_id(loop_id: str) -> None:
    """400 ``Invalid loop ID format`` unless ``loop_id`` is 24 hex characters."""
    if not is_id(loop_id):
        raise ServerError(
            400, "Invalid loop ID format", "loop_id must be a 24-character hexadecimal id"
        )


def _members(conn: sqlite3.Connection, loop_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT m.user_id, m.status, m.role, m.joined_at, u.email, u.last_active "
        "FROM loop_members m JOIN users u ON u.id = m.user_id WHERE m.loop_id = ? "
        "ORDER BY m.joined_at, m.user_id",
        (loop_id,),
    ).fetchall()
    return [
        {
            "user_id": row["user_id"],
            "email": row["email"],
            "status": row["status"],
            "role": row["role"],
            "joined_at": iso_or_none(row["joined_at"]),
            "last_active": iso_or_none(row["last_active"]),
        }
        for row in rows
    ]


def loop_doc(conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    """A loop as the API shows it. ``pending_count`` counts members who have not joined yet."""
    members = _members(conn, row["id"])
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "icon": row["icon"],
        "creator_id": row["creator_id"],
        "members": members,
        "member_count": sum(1 for m in members if m["status"] == "active"),
        "pending_count": sum(1 for m in members if m["status"] == "pending"),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


def create_loop(
    conn: sqlite3.Connection,
    now: float,
    creator_id: str,
    params: CreateLoopParams,
    base_url: str = "http://127.0.0.1:8765/",
) -> dict[str, Any]:
    """Insert a loop with its creator as the first (admin) member; return the 201 ``data``.

    ``base_url`` is the server's own URL as the caller reached it: ``join_url`` is absolute,
    as HITL.sh's openapi.json requires (``format: uri``).
    """
    loop_id = new_id(now)
    code = "".join(secrets.choice(_INVITE_ALPHABET) for _ in range(9))
    conn.execute(
        "INSERT INTO loops (id, name, description, icon, creator_id, invite_code, created_at, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (loop_id, params.name, params.description, params.icon, creator_id, code, now, now),
    )
    conn.execute(
        "INSERT INTO loop_members (loop_id, user_id, status, role, joined_at) "
        "VALUES (?, ?, 'active', 'admin', ?)",
        (loop_id, creator_id, now),
    )
    row = conn.execute("SELECT * FROM loops WHERE id = ?", (loop_id,)).fetchone()
    # No phone app joins a local loop (reviewers are added with LocalHITLServer.add_reviewer
    # and sign in to the console), so join_url opens the console; the invite code and a QR
    # code of join_url are kept for API compatibility (openapi.json: required strings).
    return {"loop": loop_doc(conn, row), "invite_code": code, **join_fields(base_url, code)}


def join_fields(base_url: str, code: str) -> dict[str, str]:
    """``join_url`` (absolute), ``qr_code_url`` (served at ``/qr/{code}.png``) and
    ``qr_code_base64`` (a PNG data URI) of a loop's invite code."""
    base = base_url if base_url.endswith("/") else base_url + "/"
    join_url = f"{base}console/?join={code}"
    png = qr_png(join_url if len(join_url.encode()) <= MAX_QR_BYTES else code)
    return {
        "qr_code_base64": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
        "qr_code_url": f"{base}qr/{code}.png",
        "join_url": join_url,
    }


def list_loops(conn: sqlite3.Connection, caller: Caller) -> dict[str, Any]:
    """Loops the caller's user created or is an active member of.

    A workflow's backing loop is not listed: it is the workflow's reviewers, not a loop
    anyone created (its requests are still read and listed like any other).
    """
    rows = conn.execute(
        "SELECT * FROM loops WHERE (creator_id = ? OR id IN "
        "(SELECT loop_id FROM loop_members WHERE user_id = ? AND status = 'active')) "
        "AND id NOT IN (SELECT loop_id FROM workflows) "
        "ORDER BY created_at, id",
        (caller.user_id, caller.user_id),
    ).fetchall()
    loops = [loop_doc(conn, row) for row in rows]
    return {"loops": loops, "count": len(loops)}


def get_owned_loop(conn: sqlite3.Connection, caller: Caller, loop_id: str) -> sqlite3.Row:
    """The loop row when the caller created it; 400/404/403 otherwise."""
    check_loop_id(loop_id)
    row = conn.execute("SELECT * FROM loops WHERE id = ?", (loop_id,)).fetchone()
    if row is None:
        raise ServerError(404, "Loop not found")
    if row["creator_id"] != caller.user_id:
        raise ServerError(403, "Access denied to this loop")
    return row  # type: ignore[no-any-return]


def update_loop(
    conn: sqlite3.Connection, now: float, caller: Caller, loop_id: str, params: UpdateLoopParams
) -> dict[str, Any]:
    """Apply the given fields; the caller must be the creator."""
    get_owned_loop(conn, caller, loop_id)
    changes = params.model_dump(exclude_none=True)
    if not changes:
        raise ServerError(
            400,
            "At least one field must be provided for update",
            "body: no field given. Fix: send at least one of name, icon, description",
        )
    for column, value in changes.items():
        # Column names come from UpdateLoopParams' fields only, never from the body's keys.
        conn.execute(f"UPDATE loops SET {column} = ? WHERE id = ?", (value, loop_id))
    conn.execute("UPDATE loops SET updated_at = ? WHERE id = ?", (now, loop_id))
    row = conn.execute("SELECT * FROM loops WHERE id = ?", (loop_id,)).fetchone()
    return {"loop": loop_doc(conn, row)}


def delete_loop(
    conn: sqlite3.Connection, now: float, caller: Caller, loop_id: str
) -> dict[str, Any]:
    """Delete the loop, its members, its requests and their feedback."""
    get_owned_loop(conn, caller, loop_id)
    members = conn.execute(
        "SELECT COUNT(*) FROM loop_members WHERE loop_id = ?", (loop_id,)
    ).fetchone()[0]
    requests = conn.execute(
        "SELECT COUNT(*) FROM requests WHERE loop_id = ?", (loop_id,)
    ).fetchone()[0]
    responses = conn.execute(
        "SELECT COUNT(*) FROM requests WHERE loop_id = ? AND status = 'completed'", (loop_id,)
    ).fetchone()[0]
    conn.execute(
        "DELETE FROM feedback WHERE request_id IN (SELECT id FROM requests WHERE loop_id = ?)",
        (loop_id,),
    )
    conn.execute("DELETE FROM requests WHERE loop_id = ?", (loop_id,))
    conn.execute("DELETE FROM loop_members WHERE loop_id = ?", (loop_id,))
    conn.execute("DELETE FROM loops WHERE id = ?", (loop_id,))
    return {
        "loop_id": loop_id,
        "deleted_at": iso(now),
        "deleted_data": {
            "members_removed": members,
            "requests_deleted": requests,
            "responses_deleted": responses,
        },
    }


def loop_members(conn: sqlite3.Connection, caller: Caller, loop_id: str) -> dict[str, Any]:
    """The members and their counts; creator only."""
    get_owned_loop(conn, caller, loop_id)
    members = _members(conn, loop_id)
    return {
        "loop_id": loop_id,
        "members": members,
        "total_count": len(members),
        "active_count": sum(1 for m in members if m["status"] == "active"),
        "pending_count": sum(1 for m in members if m["status"] == "pending"),
    }


def remove_member(
    conn: sqlite3.Connection, now: float, caller: Caller, loop_id: str, user_id: str
) -> dict[str, Any]:
    """Remove a member; the creator cannot be removed."""
    loop = get_owned_loop(conn, caller, loop_id)
    if user_id == loop["creator_id"]:
        raise ServerError(
            400, "Loop creator cannot be removed", "user_id is the loop's creator; pick a member"
        )
    deleted = conn.execute(
        "DELETE FROM loop_members WHERE loop_id = ? AND user_id = ?", (loop_id, user_id)
    ).rowcount
    if not deleted:
        raise ServerError(404, "Member not found in this loop")
    return {"loop_id": loop_id, "user_id": user_id, "removed_at": iso(now)}
