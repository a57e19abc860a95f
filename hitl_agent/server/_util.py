"""Small pure helpers: ObjectId-like ids, ISO timestamps, secret hashing, JSON text."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
import secrets
import struct
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "ID_PATTERN",
    "dumps",
    "hash_secret",
    "is_id",
    "iso",
    "iso_or_none",
    "new_id",
    "new_secret",
    "secret_matches",
]

ID_PATTERN = "^[0-9a-f]{24}$"
# ``$`` also matches before a trailing newline; ``\Z`` only at the very end.
_ID_RE = re.compile(r"[0-9a-f]{24}\Z")


def new_id(now: float) -> str:
    """A 24-hex id shaped like a MongoDB ObjectId: 4 bytes of epoch seconds, 8 random bytes."""
    return struct.pack(">I", int(now) & 0xFFFFFFFF).hex() + secrets.token_hex(8)


def is_id(value: str) -> bool:
    """True for a 24-hex lowercase id."""
    return bool(_ID_RE.match(value))


def new_secret(prefix: str) -> str:
    """A fresh unguessable secret (API key or reviewer token) with a readable prefix."""
    return prefix + secrets.token_urlsafe(24)


def hash_secret(secret: str) -> str:
    """The SHA-256 hex digest under which a secret is stored; the secret itself never is."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    """Constant-time check of ``secret`` against a stored hash."""
    return hmac.compare_digest(hash_secret(secret), stored_hash)


@functools.lru_cache(maxsize=8192)
def iso(epoch: float) -> str:
    """``2024-03-15T10:30:00Z``, with milliseconds only when there are any.

    Memoised: every document prints the same few instants of its row (created, updated,
    timeout) each time it is read or listed, and formatting a datetime is most of a GET's
    rendering.
    """
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


def iso_or_none(epoch: float | None) -> str | None:
    """:func:`iso`, passing ``None`` through."""
    return None if epoch is None else iso(epoch)


def dumps(value: Any) -> str:
    """Compact JSON text, refusing NaN and infinities (they are not JSON)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
