"""``hitl-agent loops list|get|create``."""

from __future__ import annotations

from typing import Any

import click

from ._api import FORMATS, api_options, api_session, echo_records

__all__ = ["loops"]

_COLUMNS = ("id", "name", "description", "icon", "member_count", "pending_count", "created_at")


def _row(loop: Any) -> dict[str, Any]:
    data: dict[str, Any] = loop.model_dump(mode="json")
    return {name: data.get(name) for name in _COLUMNS}


@click.group()
def loops() -> None:
    """List, show and create loops (groups of reviewers)."""


@loops.command("list")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@api_options
@click.pass_context
def list_loops(ctx: click.Context, fmt: str, api_key: str | None, base_url: str | None) -> None:
    """The loops this key can see."""
    with api_session(ctx, api_key, base_url) as client:
        found = client.loops.list()
    echo_records(
        [_row(loop) for loop in found],
        fmt,
        columns=_COLUMNS,
        title=f"{len(found)} loop(s)",
        json_records=[loop.model_dump(mode="json") for loop in found],
    )


@loops.command("get")
@click.argument("loop_id")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@api_options
@click.pass_context
def get_loop(
    ctx: click.Context, loop_id: str, fmt: str, api_key: str | None, base_url: str | None
) -> None:
    """One loop with its members."""
    with api_session(ctx, api_key, base_url) as client:
        loop = client.loops.get(loop_id)
    members = [member.model_dump(mode="json") for member in loop.members]
    if fmt == "json":
        echo_records([], "json", columns=(), json_records=[loop.model_dump(mode="json")])
        return
    echo_records([_row(loop)], fmt, columns=_COLUMNS, title=f"loop {loop.id}")
    if fmt == "table":
        echo_records(
            members, fmt, columns=("user_id", "email", "status", "joined_at"), title="members"
        )


@loops.command("create")
@click.option("--name", required=True, help="1-100 characters.")
@click.option("--description", default=None, help="Up to 500 characters.")
@click.option("--icon", default="shield-check", show_default=True, help="Icon identifier.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@api_options
@click.pass_context
def create_loop(
    ctx: click.Context,
    name: str,
    description: str | None,
    icon: str,
    fmt: str,
    api_key: str | None,
    base_url: str | None,
) -> None:
    """Create a loop; prints its id and the invite code reviewers join with."""
    with api_session(ctx, api_key, base_url) as client:
        created = client.loops.create(name=name, description=description, icon=icon)
    if fmt == "json":
        echo_records([], "json", columns=(), json_records=[created.model_dump(mode="json")])
        return
    row = {**_row(created.loop), "invite_code": created.invite_code}
    echo_records([row], fmt, columns=(*_COLUMNS, "invite_code"), title="loop created")
