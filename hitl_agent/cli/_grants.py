"""``hitl-agent grants``: list and revoke the standing grants reviewers gave.

::

    hitl-agent grants list --ledger sqlite:///hitl.db     # live grants (--all: every one)
    hitl-agent grants revoke GRANT_ID                      # it covers no call from now on

Read from ``--ledger`` or ``HITL_LEDGER`` (like ``worker``); nothing calls HITL.sh. See
docs/policies.md.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import click

from ._api import echo_records
from ._ledger import _LEDGER, _open

__all__ = ["grants"]

_COLUMNS = (
    "grant_id",
    "scope",
    "tool",
    "thread_id",
    "args_hash",
    "reviewer",
    "request_id",
    "created_at",
    "expires_at",
    "status",
    "uses",
)


def _iso(at: float | None) -> str:
    return "" if at is None else datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


@click.group()
def grants() -> None:
    """List and revoke standing grants ("approve this tool in this thread for 1 h")."""


@grants.command(name="list")
@_LEDGER
@click.option("--all", "every", is_flag=True, help="Also expired and revoked grants.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
def list_grants(ledger_url: str, every: bool, fmt: str) -> None:
    """Live grants (or every one with --all), oldest first, with how many calls each covered."""
    now = time.time()
    with _open(ledger_url) as store:
        found = store.list_grants(live_at=None if every else now)
        uses: dict[str, int] = {}
        for use in store.list_grant_uses():
            uses[use.grant_id] = uses.get(use.grant_id, 0) + 1
    rows: list[dict[str, Any]] = []
    for grant in found:
        status = (
            "revoked" if grant.revoked_at is not None else "live" if grant.live(now) else "expired"
        )
        rows.append(
            {
                "grant_id": grant.grant_id,
                "scope": grant.scope,
                "tool": grant.tool,
                "thread_id": grant.thread_id or "",
                "args_hash": grant.args_hash or "",
                "reviewer": grant.reviewer or "",
                "request_id": grant.request_id or "",
                "created_at": _iso(grant.created_at),
                "expires_at": _iso(grant.expires_at),
                "status": status,
                "uses": uses.get(grant.grant_id, 0),
            }
        )
    if not rows and fmt == "table":
        click.echo("no live grants" if not every else "no grants")
        return
    echo_records(rows, fmt, columns=_COLUMNS, title=f"{len(rows)} grant(s)")


@grants.command()
@_LEDGER
@click.argument("grant_id")
def revoke(ledger_url: str, grant_id: str) -> None:
    """Revoke GRANT_ID: later calls in its scope ask a reviewer again. A call already running
    under it finishes."""
    with _open(ledger_url) as store:
        grant = store.get_grant(grant_id)
        if grant is None:
            raise click.ClickException(
                f"no grant {grant_id!r}; `hitl-agent grants list --all` shows every grant"
            )
        if not store.revoke_grant(grant_id, now=time.time()):
            raise click.ClickException(f"grant {grant_id!r} is already revoked")
    click.echo(f"{grant_id}: revoked; later calls of {grant.tool} ask a reviewer again")
