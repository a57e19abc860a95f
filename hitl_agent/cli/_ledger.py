"""``hitl-agent ledger``: see and settle what cannot progress on its own.

::

    hitl-agent ledger problems --ledger sqlite:///hitl.db      # every row that needs a person
    hitl-agent ledger settle KEY --ran        # an in-doubt action did take effect
    hitl-agent ledger settle KEY --not-run    # it did not (the agent was already told)
    hitl-agent ledger retry REQUEST_ID        # resume a parked row again

The ledger is read from ``--ledger`` or ``HITL_LEDGER`` (like ``worker``). Nothing here calls
HITL.sh: the ledger alone knows what is stuck.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from ..ledger._problems import find_problems
from ._api import echo_records

if TYPE_CHECKING:
    from ..ledger import ExecutionState, Ledger

__all__ = ["find_problems", "ledger"]

_LEDGER = click.option(
    "--ledger",
    "ledger_url",
    envvar="HITL_LEDGER",
    default="sqlite:///hitl.db",
    show_default=True,
    help="Ledger URL (or HITL_LEDGER).",
)
_COLUMNS = ("problem", "request_id", "key", "thread_id", "age", "detail")


@contextmanager
def _open(url: str) -> Iterator[Ledger]:
    from ..ledger import LedgerError, open_ledger

    try:
        store = open_ledger(url)
    except (LedgerError, ValueError) as err:
        raise click.ClickException(f"cannot open the ledger: {err}") from None
    try:
        yield store
    finally:
        store.close()


@click.group()
def ledger() -> None:
    """See and settle what cannot progress on its own (stuck rows, in-doubt actions)."""


@ledger.command()
@_LEDGER
@click.option(
    "--stale",
    type=float,
    default=3600.0,
    show_default=True,
    help="Seconds after which a decided or intent row counts as stuck.",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
def problems(ledger_url: str, stale: float, fmt: str) -> None:
    """List rows that need a person: in-doubt or failed actions, parked or retried resumes,
    expired claims, decisions nobody resumed, creates never confirmed."""
    with _open(ledger_url) as store:
        found = find_problems(store, now=time.time(), stale=stale)
    if not found and fmt == "table":
        click.echo("no problems: every row can progress on its own")
        return
    echo_records(found, fmt, columns=_COLUMNS, title=f"{len(found)} problem(s)")


@ledger.command()
@_LEDGER
@click.argument("key")
@click.option("--ran", "verdict", flag_value="ran", help="The action did take effect.")
@click.option("--not-run", "verdict", flag_value="not-run", help="It did not take effect.")
@click.option("--note", default="", help="Why (kept with the record).")
def settle(ledger_url: str, key: str, verdict: str | None, note: str) -> None:
    """Record what became of an in-doubt (or failed) approved action, by its KEY (the
    `key` column of `ledger problems`). Nothing is run: the agent was already told."""
    if verdict is None:
        raise click.UsageError("say what happened: --ran or --not-run")
    state: ExecutionState = "succeeded" if verdict == "ran" else "failed"
    text = f"settled by an operator: {'it ran' if verdict == 'ran' else 'it did not run'}"
    with _open(ledger_url) as store:
        if store.get_execution(key) is None:
            raise click.ClickException(f"no execution record with key {key!r}")
        if not store.settle_execution(
            key, state=state, now=time.time(), note=f"{text}. {note}".strip()
        ):
            raise click.ClickException(f"{key!r} is already settled (succeeded)")
    click.echo(f"{key}: {text}")


@ledger.command()
@_LEDGER
@click.argument("request_id")
def retry(ledger_url: str, request_id: str) -> None:
    """Let the resolver try a parked (or backing-off) resume again at its next sweep."""
    with _open(ledger_url) as store:
        if not store.clear_delivery_fault(request_id):
            raise click.ClickException(f"no failed resume recorded for request {request_id!r}")
    click.echo(f"{request_id}: the next sweep of a worker resumes it")
