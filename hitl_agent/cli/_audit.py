"""``hitl-agent audit export``: every gated call the ledger knows, for auditors.

::

    hitl-agent audit export --ledger sqlite:///hitl.db > audit.jsonl
    hitl-agent audit export --since 7d --thread t-42 --format csv > audit.csv

One record per review row (a gated tool call's first form, and each follow-up form: the
reason, the edited arguments, the reply), oldest first, with what the reviewer answered,
whether and when the approved action ran (its execution record), and whether its resume
failed (its delivery fault). Read from the ledger alone (``--ledger`` or ``HITL_LEDGER``, like
``worker``): nothing calls HITL.sh.

What the ledger does not hold is not exported, and nothing is made up: the arguments an agent
sent are stored only as their hash (the text is in the HITL request), so ``--with-args`` adds
what the ledger does hold: the arguments a reviewer submitted in an edit. Secrets never leave:
the callback token's hash, callback URLs and lease owners are not read into a record.
"""

from __future__ import annotations

import csv
import heapq
import io
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from .._keys import BRIDGE_PREFIX, gate_key, parse_bridge_key, parse_gate_key
from ._api import csv_cell
from ._ledger import _LEDGER, _open

if TYPE_CHECKING:
    from ..ledger import DeliveryFault, ExecutionRecord, Grant, GrantUse, Ledger, ReviewRecord

__all__ = ["AUDIT_COLUMNS", "audit", "audit_records"]

AUDIT_COLUMNS: tuple[str, ...] = (
    "key",
    "call_key",
    "stage",
    "thread_id",
    "tool",
    "args_hash",
    "request_id",
    "state",
    "summary",
    "response_type",
    "reviewer_id",
    "reviewer_name",
    "reviewer_email",
    "answer",
    "outcome",
    "approved",
    "created_at",
    "decided_at",
    "responded_at",
    "execution",
    "executed_at",
    "execution_finished_at",
    "execution_note",
    "delivery",
    "delivery_attempts",
    "delivery_reason",
    "delivery_error",
    "grant_id",
    "policy",
    "policy_request",
    "escalation_level",
)
"""The export's columns, in order (``--with-args`` adds ``args``)."""

_PAGE = 500
_LATER_STAGE = re.compile(r"(.+)#([0-9]+)")
_HIDDEN_EDIT = "(edited arguments: export with --with-args)"
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhdw])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _iso(at: float | None) -> str | None:
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


def _stage(row: ReviewRecord) -> tuple[str, int]:
    """The key of the call a row belongs to (its first request's row) and the row's place
    among the call's requests: 1 for the first, then 2, 3, ... for a policy's later requests
    and the follow-up form."""
    parsed = parse_gate_key(row.key, thread_id=row.thread_id, checkpoint_ns=row.checkpoint_ns)
    if parsed is not None and parsed.tool_call_id is not None and parsed.index > 0:
        # The wrapper asks a call's follow-up as the next review of the same tool call.
        first = gate_key(parsed.thread_id, parsed.checkpoint_ns, parsed.tool_call_id, 0)
        return first, parsed.index + 1
    key, follow_up = row.key, 0
    if key.startswith(BRIDGE_PREFIX) and key.endswith("|1"):
        base = key[: -len("|1")]
        if parse_bridge_key(base.split("#", 1)[0]) is not None:  # a follow-up: its key + |1
            key, follow_up = base, 1
    policy = row.payload.get("policy") if row.payload else None
    later = _LATER_STAGE.fullmatch(key)
    if later is not None and isinstance(policy, dict):
        # A policy's n-th request, keyed <first key>#<n>: the same call.
        return later.group(1), int(later.group(2)) + follow_up
    return key, 1 + follow_up


def _policy_columns(policy: Any) -> dict[str, Any]:
    """The approval policy a row was a stage of (docs/policies.md): what it asked for, and
    which request of it this row was (``policy_request``, from 1) at which escalation level
    (0: the first reviewers)."""
    if not isinstance(policy, dict):
        return {"policy": None, "policy_request": None, "escalation_level": None}
    parts = [f"quorum {policy.get('approvals')}"]
    if policy.get("exclude"):
        parts.append(f"{len(policy['exclude'])} excluded")
    if policy.get("stages"):
        labels = ", ".join(str(s.get("label") or "") for s in policy["stages"])
        parts.append(f"escalates to {labels}")
    return {
        "policy": "; ".join(parts),
        "policy_request": policy.get("stage"),
        "escalation_level": policy.get("level"),
    }


def _answer(decision: dict[str, Any], edit_form: bool, with_args: bool) -> str | None:
    value = decision.get("value")
    if value is None:
        return None
    if edit_form and not with_args:
        return _HIDDEN_EDIT
    if isinstance(value, dict) and edit_form:
        value = value.get("text", value)
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _record(
    row: ReviewRecord,
    execution: ExecutionRecord | None,
    fault: DeliveryFault | None,
    with_args: bool,
    grant: Grant | None = None,
) -> dict[str, Any]:
    # Fields are picked one by one: a row also holds the callback token's hash and the
    # lease owner, which no export may carry.
    payload = row.payload or {}
    decision = row.decision or {}
    who = decision.get("reviewer")
    reviewer: dict[str, Any] = who if isinstance(who, dict) else {}
    edit_form = payload.get("response_type") == "editable_text"
    call_key, stage = _stage(row)
    record: dict[str, Any] = {
        "key": row.key,
        "call_key": call_key,
        "stage": stage,
        "thread_id": row.thread_id,
        "tool": payload.get("gated_tool"),
        "args_hash": payload.get("args_hash"),
        "request_id": row.request_id,
        "state": row.state,
        "summary": payload.get("summary"),
        "response_type": payload.get("response_type"),
        "reviewer_id": reviewer.get("id"),
        "reviewer_name": reviewer.get("name"),
        "reviewer_email": reviewer.get("email"),
        "answer": _answer(decision, edit_form, with_args),
        "outcome": decision.get("outcome"),
        "approved": decision.get("approved") if decision else None,
        "created_at": _iso(row.created_at),
        "decided_at": _iso(row.decided_at),
        "responded_at": decision.get("responded_at"),
        "execution": execution.state if execution else None,
        "executed_at": _iso(execution.started_at) if execution else None,
        "execution_finished_at": _iso(execution.finished_at) if execution else None,
        "execution_note": execution.note if execution else None,
        "delivery": ("parked" if fault.parked else "retrying") if fault else None,
        "delivery_attempts": fault.attempts if fault else None,
        "delivery_reason": fault.reason if fault else None,
        "delivery_error": fault.last_error if fault else None,
        "grant_id": grant.grant_id if grant else None,
        **_policy_columns(payload.get("policy")),
    }
    if with_args:
        edited = decision.get("value") if edit_form else None
        if isinstance(edited, dict):
            edited = edited.get("text")
        record["args"] = edited if isinstance(edited, str) else None
    return record


def _granted(
    use: GrantUse, grant: Grant | None, execution: ExecutionRecord | None, with_args: bool
) -> dict[str, Any]:
    """A call that ran under a standing grant: no review row, no request of its own; the
    grant (and, through it, the review that made it) is named by ``grant_id``."""
    record: dict[str, Any] = dict.fromkeys(AUDIT_COLUMNS)
    record.update(
        key=use.key,
        call_key=use.key,
        stage=1,
        thread_id=use.thread_id,
        tool=grant.tool if grant else None,
        args_hash=use.args_hash,
        outcome="granted",
        approved=True,
        created_at=_iso(use.used_at),
        execution=execution.state if execution else None,
        executed_at=_iso(execution.started_at) if execution else None,
        execution_finished_at=_iso(execution.finished_at) if execution else None,
        execution_note=execution.note if execution else None,
        grant_id=use.grant_id,
    )
    if with_args:
        record["args"] = None  # not stored: only the hash
    return record


def audit_records(
    store: Ledger,
    *,
    since: float | None = None,
    thread_id: str | None = None,
    with_args: bool = False,
    page: int = _PAGE,
) -> Iterator[dict[str, Any]]:
    """The export's records, oldest first: the review rows read a page at a time (the rows
    and their execution records), merged with the calls that ran under a standing grant
    (read once, with the delivery faults and the grants)."""
    faults = {fault.request_id: fault for fault in store.list_delivery_faults()}
    grants = store.list_grants()
    made = {grant.review_key: grant for grant in grants}
    by_id = {grant.grant_id: grant for grant in grants}
    uses = [
        use
        for use in store.list_grant_uses()
        if (since is None or use.used_at >= since)
        and (thread_id is None or use.thread_id == thread_id)
    ]
    ran = store.get_executions([use.key for use in uses])
    granted = (
        (use.used_at, use.key, _granted(use, by_id.get(use.grant_id), ran.get(use.key), with_args))
        for use in uses
    )
    reviewed = _reviewed(store, since, thread_id, with_args, page, faults, made)
    for _, _, record in heapq.merge(reviewed, granted, key=lambda item: (item[0], item[1])):
        yield record


def _reviewed(
    store: Ledger,
    since: float | None,
    thread_id: str | None,
    with_args: bool,
    page: int,
    faults: dict[str, DeliveryFault],
    made: dict[str | None, Grant],
) -> Iterator[tuple[float, str, dict[str, Any]]]:
    after: tuple[float, str] | None = None
    while True:
        rows = store.list_rows(since=since, thread_id=thread_id, limit=page, after=after)
        if not rows:
            return
        executions = store.get_executions([row.key for row in rows])
        for row in rows:
            fault = faults.get(row.request_id) if row.request_id else None
            record = _record(row, executions.get(row.key), fault, with_args, made.get(row.key))
            yield row.created_at, row.key, record
        after = (rows[-1].created_at, rows[-1].key)
        if len(rows) < page:
            return


def _since(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """``--since``: an ISO 8601 time (UTC when it has no offset) or an age: ``90m``, ``7d``."""
    if value is None:
        return None
    match = _DURATION.fullmatch(value.strip())
    if match is not None:
        return time.time() - float(match.group(1)) * _UNIT[match.group(2)]
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither an ISO 8601 time (2026-01-31T12:00:00Z) nor an age "
            "(30m, 24h, 7d)",
            ctx,
            param,
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@click.group()
def audit() -> None:
    """Export what reviewers decided and what the approved actions did, from the ledger."""


@audit.command()
@_LEDGER
@click.option(
    "--since",
    callback=_since,
    help="Only rows created at or after this ISO 8601 time (UTC if no offset) or age (7d).",
)
@click.option("--thread", "thread_id", default=None, help="Only this LangGraph thread.")
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True
)
@click.option(
    "--with-args",
    is_flag=True,
    help="Add the arguments the ledger holds (a reviewer's edit; the agent's own are "
    "stored only as a hash).",
)
def export(
    ledger_url: str, since: float | None, thread_id: str | None, fmt: str, with_args: bool
) -> None:
    """One record per review row, oldest first: tool, args hash, request id, reviewer,
    answer, times, outcome, execution and delivery faults. JSON lines, or formula-safe CSV."""
    columns = [*AUDIT_COLUMNS, *(("args",) if with_args else ())]
    with _open(ledger_url) as store:
        records = audit_records(store, since=since, thread_id=thread_id, with_args=with_args)
        if fmt == "jsonl":
            for record in records:
                click.echo(json.dumps(record, ensure_ascii=False))
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for record in records:
            writer.writerow({name: csv_cell(_csv_value(record.get(name))) for name in columns})
            click.echo(buffer.getvalue(), nl=False)
            buffer.seek(0)
            buffer.truncate()
        click.echo(buffer.getvalue(), nl=False)


def _csv_value(value: Any) -> Any:
    # A bool reads as true/false (as in the JSON lines), not as Python's True/False.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value
