"""Who may call: API keys (callers of ``/v1``), users, and reviewers (callers of the reviewer API).

Secrets are stored as SHA-256 hashes and compared with :func:`hmac.compare_digest`. The one
exception is a pair that :meth:`LocalHITLServer.bootstrap` *generated*, kept in ``meta`` so
that ``hitl-agent serve`` prints the same credentials after a restart (a local development
database is the developer's own file; pass ``--api-key``/``--reviewer-token`` and nothing is
kept in clear).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field

from ._util import hash_secret, new_id, secret_matches

__all__ = [
    "Caller",
    "KeyAccount",
    "ReviewerAccount",
    "add_api_key",
    "add_reviewer",
    "authenticate_key",
    "authenticate_reviewer",
    "ensure_member",
    "ensure_user",
]


@dataclass(frozen=True)
class Caller:
    """An authenticated API key: the key's id and the user who owns it."""

    api_key_id: str
    user_id: str
    email: str


@dataclass(frozen=True)
class KeyAccount:
    """An API key that :meth:`LocalHITLServer.add_api_key` registered."""

    api_key: str = field(repr=False)
    api_key_id: str
    user_id: str
    email: str


@dataclass(frozen=True)
class ReviewerAccount:
    """A reviewer: a user with a bearer token for the reviewer API."""

    id: str
    email: str
    name: str


def ensure_user(conn: sqlite3.Connection, now: float, email: str, name: str | None = None) -> str:
    """The id of the user with ``email``, created when there is none."""
    row = conn.execute(
        "SELECT id FROM users WHERE email = ? ORDER BY created_at LIMIT 1", (email,)
    ).fetchone()
    if row is not None:
        return str(row["id"])
    user_id = new_id(now)
    conn.execute(
        "INSERT INTO users (id, email, name, created_at) VALUES (?, ?, ?, ?)",
        (user_id, email, name or email.split("@", 1)[0], now),
    )
    return user_id


def add_api_key(
    conn: sqlite3.Connection, now: float, api_key: str, *, email: str, user_id: str | None
) -> KeyAccount:
    """Register ``api_key`` (idempotent: a known key returns its existing account)."""
    if not api_key or not api_key.strip():
        raise ValueError("api_key: empty. Fix: pass a non-empty key, or None to generate one")
    key_hash = hash_secret(api_key)
    row = conn.execute(
        "SELECT k.id, k.user_id, u.email FROM api_keys k JOIN users u ON u.id = k.user_id "
        "WHERE k.key_hash = ?",
        (key_hash,),
    ).fetchone()
    if row is not None:
        return KeyAccount(api_key, str(row["id"]), str(row["user_id"]), str(row["email"]))
    if user_id is None:
        user_id = ensure_user(conn, now, email)
    else:
        found = conn.execute("SELECT email FROM users WHERE id = ?", (user_id,)).fetchone()
        if found is None:
            raise ValueError(f"user_id: no user {user_id!r}. Fix: pass an existing user id")
        email = str(found["email"])
    key_id = new_id(now)
    conn.execute(
        "INSERT INTO api_keys (id, key_hash, user_id, created_at) VALUES (?, ?, ?, ?)",
        (key_id, key_hash, user_id, now),
    )
    return KeyAccount(api_key, key_id, user_id, email)


def ensure_member(
    conn: sqlite3.Connection, now: float, loop_id: str, user_id: str, role: str = "member"
) -> None:
    """Make ``user_id`` an active member of ``loop_id`` (no-op when it already is)."""
    if conn.execute("SELECT 1 FROM loops WHERE id = ?", (loop_id,)).fetchone() is None:
        raise ValueError(f"loop_ids: no loop {loop_id!r}. Fix: pass ids of existing loops")
    conn.execute(
        "INSERT INTO loop_members (loop_id, user_id, status, role, joined_at) "
        "VALUES (?, ?, 'active', ?, ?) "
        "ON CONFLICT (loop_id, user_id) DO UPDATE SET status = 'active'",
        (loop_id, user_id, role, now),
    )


def add_reviewer(
    conn: sqlite3.Connection,
    now: float,
    email: str,
    token: str,
    loop_ids: Iterable[str],
    name: str | None = None,
) -> ReviewerAccount:
    """Give the user with ``email`` the reviewer ``token`` and membership of ``loop_ids``.

    Idempotent; a different token for an existing reviewer replaces the old one.
    """
    if not token or not token.strip():
        raise ValueError("token: empty. Fix: pass a non-empty reviewer token")
    token_hash = hash_secret(token)
    owner = conn.execute(
        "SELECT id, email FROM users WHERE token_hash = ?", (token_hash,)
    ).fetchone()
    if owner is not None and owner["email"] != email:
        raise ValueError(
            "token: already belongs to another reviewer. Fix: give each reviewer its own token"
        )
    user_id = ensure_user(conn, now, email, name)
    conn.execute("UPDATE users SET token_hash = ? WHERE id = ?", (token_hash, user_id))
    if name:
        conn.execute("UPDATE users SET name = ? WHERE id = ?", (name, user_id))
    for loop_id in loop_ids:
        ensure_member(conn, now, loop_id, user_id)
    row = conn.execute("SELECT id, email, name FROM users WHERE id = ?", (user_id,)).fetchone()
    return ReviewerAccount(str(row["id"]), str(row["email"]), str(row["name"]))


def authenticate_key(conn: sqlite3.Connection, api_key: str) -> Caller | None:
    """The caller owning ``api_key``, or None for an unknown or inactive key."""
    row = conn.execute(
        "SELECT k.id, k.key_hash, k.user_id, k.status, u.email FROM api_keys k "
        "JOIN users u ON u.id = k.user_id WHERE k.key_hash = ?",
        (hash_secret(api_key),),
    ).fetchone()
    if row is None or row["status"] != "active" or not secret_matches(api_key, row["key_hash"]):
        return None
    return Caller(str(row["id"]), str(row["user_id"]), str(row["email"]))


def authenticate_reviewer(conn: sqlite3.Connection, token: str) -> ReviewerAccount | None:
    """The reviewer holding ``token``, or None."""
    row = conn.execute(
        "SELECT id, email, name, token_hash FROM users WHERE token_hash = ?",
        (hash_secret(token),),
    ).fetchone()
    if row is None or not secret_matches(token, row["token_hash"]):
        return None
    return ReviewerAccount(str(row["id"]), str(row["email"]), str(row["name"]))
