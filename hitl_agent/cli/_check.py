"""``hitl-agent check``: the key, its account, its loops and the quota left, on one screen.

Three calls (``GET /test``, the loop list, one pending-request count): on HITL.sh's 100-an-hour
quota that is what the screen costs, and the figures it prints are read after them.
"""

from __future__ import annotations

import click

from ._api import api_options, api_session, stdout_console

__all__ = ["check"]


@click.command()
@api_options
@click.pass_context
def check(ctx: click.Context, api_key: str | None, base_url: str | None) -> None:
    """Check the API key: account, loops, pending requests and quota left."""
    from rich.table import Table

    with api_session(ctx, api_key, base_url) as client:
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
    stdout_console().print(table)
