"""``hitl-agent check``: the key, its account, its loops and the quota left, on one screen;
with ``--ledger`` / ``--checkpointer``, the worker's readiness too (what ``/readyz`` reports).

Three calls (``GET /test``, the loop list, one pending-request count): on HITL.sh's 100-an-hour
quota that is what the screen costs, and the figures it prints are read after them. The stores
are probed first, each with a trivial query and a timeout; their failures are shown without
any password, and make the command exit 1 after the table (a readiness probe for cron or a
deploy step).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import click

from ._api import api_options, api_session, stdout_console

__all__ = ["check"]

_PROBE_TIMEOUT = 10.0


@contextmanager
def _stores(ledger: str | None, checkpointer: str | None) -> Iterator[dict[str, str]]:
    """Probe the stores named: name -> ``ok`` or why not (scrubbed), as ``/readyz`` does."""
    from ..dispatch._health import Readiness, url_secrets

    secrets = url_secrets(ledger, checkpointer)
    readiness = Readiness(probe_timeout=_PROBE_TIMEOUT, secrets=secrets)
    opened: dict[str, str] = {}
    with ExitStack() as stack:
        if ledger:
            opened["ledger"] = _open(
                stack, readiness, "ledger", lambda: _ledger_probe(stack, ledger)
            )
        if checkpointer:
            opened["checkpointer"] = _open(
                stack, readiness, "checkpointer", lambda: _saver_probe(stack, checkpointer)
            )
        failing = readiness.check() if readiness.probes else {}
        yield {name: opened[name] or failing.get(name, "ok") for name in opened}


def _open(stack: ExitStack, readiness: Any, name: str, opener: Any) -> str:
    """Open one store and register its probe; '' when it opened, else why not (scrubbed)."""
    from ..dispatch._health import scrub

    try:
        readiness.add(name, opener())
    except Exception as exc:  # click's own errors too: the store is reported, not raised
        text = getattr(exc, "message", None) or str(exc)
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        return scrub(f"cannot open: {first}", readiness.secrets)
    return ""


def _ledger_probe(stack: ExitStack, url: str) -> Any:
    from ..ledger import open_ledger

    store = stack.enter_context(open_ledger(url))
    return lambda: store.list_open(limit=1)


def _saver_probe(stack: ExitStack, url: str) -> Any:
    from ._checkpointer import open_checkpointer

    return stack.enter_context(open_checkpointer(url)).probe


@click.command()
@api_options
@click.option(
    "--ledger",
    "ledger_url",
    envvar="HITL_LEDGER",
    default=None,
    help="Also check that this ledger answers (or HITL_LEDGER), as the worker's /readyz.",
)
@click.option("--checkpointer", default=None, help="Also check that this checkpointer answers.")
@click.pass_context
def check(
    ctx: click.Context,
    api_key: str | None,
    base_url: str | None,
    ledger_url: str | None,
    checkpointer: str | None,
) -> None:
    """Check the API key: account, loops, pending requests and quota left; with --ledger /
    --checkpointer, that those stores answer (exit 1 when one does not)."""
    from rich.table import Table

    with _stores(ledger_url, checkpointer) as stores, api_session(ctx, api_key, base_url) as client:
        info = client.test()
        loops = client.loops.list()
        pending = client.requests.list(status="pending", limit=1).total
        quota = client.rate_limit or info.rate_limit
    table = Table(title=f"HITL API at {client.base_url}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("key", f"valid (id {info.api_key_id})")
    table.add_row("account", f"{info.email} · {info.account_status}")
    table.add_row("permissions", ", ".join(info.permissions) or "-")
    table.add_row("loops", ", ".join(f"{loop.name} ({loop.id})" for loop in loops) or "none")
    table.add_row("pending requests", "?" if pending is None else str(pending))
    if quota is None or quota.limit is None:
        table.add_row("quota", "no hourly limit reported")
    else:
        reset = quota.reset_at.isoformat() if quota.reset_at else "?"
        table.add_row("quota", f"{quota.remaining} of {quota.limit} calls left; resets {reset}")
    for name, state in stores.items():
        table.add_row(name, state)
    if stores:
        table.add_row("HITL API", "ok")
    stdout_console().print(table)
    failed = sorted(name for name, state in stores.items() if state != "ok")
    if failed:
        raise click.ClickException(
            f"not ready: the {' and '.join(failed)} did not answer; check the URL and that "
            "the database is up"
        )
