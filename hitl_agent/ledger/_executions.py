"""Execution records and delivery faults: the ledger's memory of what an approval *did*.

A review row says what the human decided; it cannot say whether the approved action ran. A
resume can fail after the action's side effect (the tool raised after charging the card, the
checkpointer could not save the step), and LangGraph re-runs the whole task on the next
resume. Without a record, every retry would run the action again. So the tool wrapper writes
an **execution record** before it runs an approved call (first writer wins: one attempt
owns it) and finishes it with the outcome and the result. A later run of the same call finds
the record and never starts the action again: it replays the recorded result, reports the
recorded failure, or — when the record was started and never finished (the process died or
stalled mid-action, or a second replica took over its lease) — reports the call *in doubt*.

A **delivery fault** is the resolver's memory of failed resumes of one request: how many,
the last error, when to try again (exponential backoff), and whether it gave up (*parked*):
an operator then sees it in ``hitl-agent ledger problems`` and settles it.

Both live in tables of their own, written by both backends through the same SQL (``?``
placeholders; PostgreSQL's backend translates them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

__all__ = [
    "DELIVERIES_SQL",
    "EXECUTIONS_SQL",
    "DeliveryFault",
    "ExecutionRecord",
    "ExecutionState",
    "delivery_from_row",
    "execution_from_row",
]

ExecutionState: TypeAlias = Literal["started", "succeeded", "failed", "in_doubt"]

#: The states an execution can be settled to by whoever is not its owner (a later run that
#: finds it unfinished, an operator).
SETTLED_STATES: tuple[ExecutionState, ...] = ("succeeded", "failed", "in_doubt")

EXECUTION_COLUMNS = (
    "key",
    "owner",
    "state",
    "request_id",
    "thread_id",
    "tool",
    "result",
    "note",
    "started_at",
    "finished_at",
)
DELIVERY_COLUMNS = (
    "request_id",
    "attempts",
    "retry_at",
    "parked",
    "reason",
    "last_error",
    "updated_at",
)

#: ``{executions}``/``{deliveries}`` are the tables' names (identifiers per backend).
EXECUTIONS_SQL = """CREATE TABLE {executions} (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('started', 'succeeded', 'failed', 'in_doubt')),
    request_id TEXT,
    thread_id TEXT,
    tool TEXT,
    result TEXT,
    note TEXT,
    started_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION
)"""
DELIVERIES_SQL = """CREATE TABLE {deliveries} (
    request_id TEXT PRIMARY KEY,
    attempts INTEGER NOT NULL,
    retry_at DOUBLE PRECISION,
    parked INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    last_error TEXT,
    updated_at DOUBLE PRECISION NOT NULL
)"""

SELECT_EXECUTION = f"SELECT {', '.join(EXECUTION_COLUMNS)} FROM {{executions}}"
SELECT_DELIVERY = f"SELECT {', '.join(DELIVERY_COLUMNS)} FROM {{deliveries}}"
INSERT_EXECUTION = """INSERT INTO {executions}
    (key, owner, state, request_id, thread_id, tool, started_at)
    VALUES (?, ?, 'started', ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING"""
FINISH_EXECUTION = """UPDATE {executions} SET state = ?, result = ?, note = ?, finished_at = ?
    WHERE key = ? AND owner = ? AND state IN ('started', 'in_doubt')"""
FLAG_IN_DOUBT = """UPDATE {executions} SET state = 'in_doubt', note = ?
    WHERE key = ? AND state = 'started'"""
SETTLE_EXECUTION = """UPDATE {executions} SET state = ?, note = ?, finished_at = ?
    WHERE key = ? AND state IN ('started', 'in_doubt', 'failed')"""
FORGET_EXECUTION = "DELETE FROM {executions} WHERE key = ? AND (owner = ? OR ? = '')"
UPSERT_DELIVERY = """INSERT INTO {deliveries}
    (request_id, attempts, retry_at, parked, reason, last_error, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (request_id) DO UPDATE SET attempts = excluded.attempts,
        retry_at = excluded.retry_at, parked = excluded.parked, reason = excluded.reason,
        last_error = excluded.last_error, updated_at = excluded.updated_at"""
CLEAR_DELIVERY = "DELETE FROM {deliveries} WHERE request_id = ?"


@dataclass(frozen=True)
class ExecutionRecord:
    """What became of one approved (or policy-skipped) tool call's execution.

    Attributes:
        key: the execution's key: the gate row's key for a reviewed call, or
            ``exec|<thread>|<ns>|<tool call id>`` for a call that ran without a review.
        owner: the attempt that started it (a fresh id per attempt).
        state: ``started`` (the action may be running or may have run), ``succeeded``,
            ``failed`` (the action raised), or ``in_doubt`` (started, never finished: a
            later run found it so; an operator settles it).
        request_id, thread_id, tool: what it belongs to, for operators.
        result: the recorded result (JSON) a later run replays instead of running again.
        note: the error summary, or the operator's note.
        started_at, finished_at: epoch seconds.
    """

    key: str
    owner: str
    state: ExecutionState
    request_id: str | None = None
    thread_id: str | None = None
    tool: str | None = None
    result: dict[str, Any] | None = None
    note: str | None = None
    started_at: float = 0.0
    finished_at: float | None = None


@dataclass(frozen=True)
class DeliveryFault:
    """The resolver's record of failed resumes of one request.

    Attributes:
        request_id: the HITL request.
        attempts: failed resumes so far.
        retry_at: when the next resume may be tried (epoch seconds); None once parked.
        parked: True when the resolver gave up retrying: an operator must look.
        reason: why it stopped, or why it is retried.
        last_error: the last failure (type and message, never arguments or secrets).
        updated_at: epoch seconds.
    """

    request_id: str
    attempts: int
    retry_at: float | None
    parked: bool
    reason: str | None
    last_error: str | None
    updated_at: float


def execution_from_row(row: tuple[Any, ...] | list[Any]) -> ExecutionRecord:
    """An :class:`ExecutionRecord` from a SELECT of ``EXECUTION_COLUMNS``."""
    values = dict(zip(EXECUTION_COLUMNS, row, strict=True))
    raw = values.pop("result")
    result = json.loads(raw) if isinstance(raw, str) else raw
    return ExecutionRecord(result=result, **values)


def delivery_from_row(row: tuple[Any, ...] | list[Any]) -> DeliveryFault:
    """A :class:`DeliveryFault` from a SELECT of ``DELIVERY_COLUMNS``."""
    values = dict(zip(DELIVERY_COLUMNS, row, strict=True))
    values["parked"] = bool(values["parked"])
    return DeliveryFault(**values)


def dump_result(result: dict[str, Any] | None) -> str | None:
    """A recorded result as stored (None stays None); as ``_rows.dump_json`` writes
    payloads: ASCII-escaped, NaN refused (PostgreSQL would refuse it after the fact)."""
    if result is None:
        return None
    try:
        return json.dumps(result, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"result is not storable JSON: {exc}") from exc
