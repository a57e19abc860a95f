"""What cannot progress without a person: the rows ``hitl-agent ledger problems`` lists and
the ``hitl_rows_stuck`` gauge counts (one reading, so the CLI and the metric never disagree).

Nothing here calls HITL.sh: the ledger alone knows what is stuck.
"""

from __future__ import annotations

from typing import Any

from ._base import Ledger

__all__ = ["PROBLEM_KINDS", "age_text", "find_problems"]

#: Every ``problem`` value :func:`find_problems` reports, most urgent first (the label values
#: of ``hitl_rows_stuck{problem=...}``, each exported even at 0 so an alert has a series).
PROBLEM_KINDS: tuple[str, ...] = (
    "execution in_doubt",
    "execution started",
    "execution failed",
    "resume parked",
    "resume retrying",
    "claim expired",
    "decided, not resumed",
    "create unconfirmed",
)


def age_text(now: float, since: float | None) -> str:
    """``since`` as an age from ``now``: ``45s``, ``12m``, ``3h``, ``2d`` (empty when None)."""
    if since is None:
        return ""
    seconds = max(0, int(now - since))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def find_problems(store: Ledger, *, now: float, stale: float) -> list[dict[str, Any]]:
    """Every row, execution and delivery that cannot progress without a person (or has not
    for ``stale`` seconds), most urgent kinds first."""
    problems: list[dict[str, Any]] = []

    def add(problem: str, since: float | None, detail: str, **ids: Any) -> None:
        problems.append(
            {
                "problem": problem,
                "request_id": ids.get("request_id") or "",
                "key": ids.get("key") or "",
                "thread_id": ids.get("thread_id") or "",
                "age": age_text(now, since),
                "detail": detail,
            }
        )

    for record in store.list_executions(states=("in_doubt", "started", "failed")):
        if record.state == "started" and now - record.started_at < stale:
            continue  # running now, most likely
        detail = {
            "in_doubt": "started, no outcome recorded: it may or may not have taken effect",
            "started": "started, no outcome recorded yet",
            "failed": f"the approved action raised: {record.note or ''}",
        }[record.state]
        add(
            f"execution {record.state}",
            record.started_at,
            f"{record.tool or ''}: {detail}".strip(": "),
            request_id=record.request_id,
            key=record.key,
            thread_id=record.thread_id,
        )
    for fault in store.list_delivery_faults():
        kind = "resume parked" if fault.parked else "resume retrying"
        add(kind, fault.updated_at, f"{fault.reason}; last error: {fault.last_error}",
            request_id=fault.request_id)  # fmt: skip
    for row in store.list_open(limit=10_000):
        if row.state == "resuming" and row.lease_until is not None and row.lease_until < now:
            add("claim expired", row.lease_until, f"claimed by {row.claimed_by}",
                request_id=row.request_id, key=row.key, thread_id=row.thread_id)  # fmt: skip
        elif row.state == "decided" and now - (row.decided_at or row.updated_at) >= stale:
            add("decided, not resumed", row.decided_at or row.updated_at,
                "no resumer delivered it: is a worker running for this graph?",
                request_id=row.request_id, key=row.key, thread_id=row.thread_id)  # fmt: skip
        elif row.state == "intent" and now - row.created_at >= stale:
            add("create unconfirmed", row.created_at,
                "the request may or may not exist: the next run of its gate reconciles it",
                key=row.key, thread_id=row.thread_id)  # fmt: skip
    return problems
