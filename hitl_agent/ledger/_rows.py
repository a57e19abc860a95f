"""What the SQL backends share: the column order, JSON encoding and argument checks.

No IO here, so both backends read and write rows the same way and the conformance suite
tests one behaviour.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ._base import LedgerState, ReviewRecord

# The order of ``ReviewRecord``'s fields; every SELECT lists these columns in this order.
COLUMNS: tuple[str, ...] = (
    "key",
    "state",
    "request_id",
    "thread_id",
    "checkpoint_ns",
    "loop_id",
    "spec_hash",  # ReviewRecord.args_hash (see its docstring)
    "token_hash",
    "deadline",
    "decision",
    "payload",
    "claimed_by",
    "lease_until",
    "created_at",
    "updated_at",
    "decided_at",
)
_DECISION = COLUMNS.index("decision")
_PAYLOAD = COLUMNS.index("payload")

OPEN_STATES: tuple[LedgerState, ...] = ("intent", "pending", "decided", "resuming")


def dump_json(value: dict[str, Any], what: str) -> str:
    """Encode a payload or decision for storage.

    ``ensure_ascii`` keeps lone surrogates and NUL storable in every backend, and NaN is
    refused here because PostgreSQL's ``json`` type would refuse it later, after the caller
    believed the row was written.

    Raises:
        TypeError: ``value`` is not a dict or holds something JSON cannot encode.
        ValueError: ``value`` holds NaN or an infinity.
    """
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be a dict, got {type(value).__name__}")
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except ValueError as exc:
        raise ValueError(f"{what} is not valid JSON: {exc}") from exc
    except TypeError as exc:
        raise TypeError(f"{what} is not JSON-serializable: {exc}") from exc


def _load(value: Any) -> Any:
    # SQLite hands back the text; psycopg has already decoded ``json`` columns.
    return json.loads(value) if isinstance(value, str | bytes) else value


def to_record(row: Sequence[Any]) -> ReviewRecord:
    """Build a :class:`ReviewRecord` from a row selected as :data:`COLUMNS`."""
    values = list(row)
    values[_DECISION] = _load(values[_DECISION])
    values[_PAYLOAD] = _load(values[_PAYLOAD]) or {}
    return ReviewRecord(*values)


def check_lease(lease_seconds: float) -> None:
    """A claim with no lease would be taken over at once by the next claimant.

    Raises:
        ValueError: ``lease_seconds`` is not positive.
    """
    if not lease_seconds > 0:
        raise ValueError(f"lease_seconds must be positive, got {lease_seconds!r}")


def check_limit(limit: int) -> None:
    """Raises ValueError for a negative ``limit`` (SQLite would read it as "no limit")."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit!r}")


def page_filter(
    since: float | None, thread_id: str | None, after: tuple[float, str] | None
) -> tuple[str, tuple[Any, ...]]:
    """The ``WHERE`` clause (``?`` placeholders, or "") and its arguments of one page of
    :meth:`~hitl_agent.ledger.Ledger.list_rows`, in ``(created_at, key)`` order."""
    clauses: list[str] = []
    args: list[Any] = []
    if since is not None:
        clauses.append("created_at >= ?")
        args.append(since)
    if thread_id is not None:
        clauses.append("thread_id = ?")
        args.append(thread_id)
    if after is not None:
        at, key = after
        # Spelled out rather than a row comparison: the same SQL in both backends.
        clauses.append("(created_at > ? OR (created_at = ? AND key > ?))")
        args.extend((at, at, key))
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    return where, tuple(args)
