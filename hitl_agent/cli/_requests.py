"""``hitl-agent requests list|get|cancel|update|export``.

``list`` and ``export`` fetch every page (100 a call, progress on stderr); ``cancel`` prints
whether the call was refunded, and cancelling by filter lists what it would cancel and asks
first (``--yes`` skips the question)::

    hitl-agent requests list --status pending --priority high
    hitl-agent requests export --format csv --output requests.csv --created-after 2026-01-01
    hitl-agent requests cancel --status pending --loop 65f1... --yes

What they print is for people and files, not for the dispatcher: a request's callback token
(the last segment of its ``callback_url``) is redacted in every format, CSV cells are
formula-safe with invisible characters marked, and ``request_text`` shows in the table and CSV
as the plain text the console shows (the gate's markdown escapes resolved).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from .._capability import redact_record
from .._plain import markdown_to_plain
from ._api import (
    FORMATS,
    REQUEST_COLUMNS,
    api_options,
    api_session,
    echo_records,
    fetch_requests,
    request_filters,
    request_row,
    stderr_console,
)

__all__ = ["requests"]

_TABLE = ("id", "status", "priority", "response_type", "request_text", "response_data",
          "created_at")  # fmt: skip
_CSV = REQUEST_COLUMNS
_CANCELLABLE = ("pending", "claimed")


def _filters(
    status: str | None,
    priority: str | None,
    loop_id: str | None,
    created_before: datetime | None,
    created_after: datetime | None,
) -> dict[str, Any]:
    return {
        name: value
        for name, value in (
            ("status", status),
            ("priority", priority),
            ("loop_id", loop_id),
            ("created_before", created_before),
            ("created_after", created_after),
        )
        if value is not None
    }


@click.group()
def requests() -> None:
    """List, show, update, cancel and export review requests."""


@requests.command("list")
@request_filters
@click.option(
    "--sort",
    type=click.Choice(["created_at_desc", "created_at_asc", "priority_desc", "status_asc"]),
    default=None,
    help="Order (server default: newest first).",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@api_options
@click.pass_context
def list_requests(
    ctx: click.Context,
    status: str | None,
    priority: str | None,
    loop_id: str | None,
    created_before: datetime | None,
    created_after: datetime | None,
    sort: str | None,
    limit: int | None,
    fmt: str,
    api_key: str | None,
    base_url: str | None,
) -> None:
    """This key's requests, every page, filtered."""
    filters = _filters(status, priority, loop_id, created_before, created_after)
    with api_session(ctx, api_key, base_url) as client:
        found = fetch_requests(client, limit=limit, sort=sort, **filters)
    echo_records(
        [request_row(r) for r in found],
        fmt,
        columns=_TABLE if fmt == "table" else _CSV,
        title=f"{len(found)} request(s)",
        json_records=[_record(r) for r in found],
    )


def _record(request: Any) -> dict[str, Any]:
    """A request's JSON object without its callback capability token."""
    return redact_record(request.model_dump(mode="json"))


@requests.command("export")
@request_filters
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json",
              show_default=True)  # fmt: skip
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (default: stdout).")  # fmt: skip
@api_options
@click.pass_context
def export_requests(
    ctx: click.Context,
    status: str | None,
    priority: str | None,
    loop_id: str | None,
    created_before: datetime | None,
    created_after: datetime | None,
    fmt: str,
    output: Path | None,
    api_key: str | None,
    base_url: str | None,
) -> None:
    """Every matching request as JSON (the API's objects) or CSV (one row each)."""
    filters = _filters(status, priority, loop_id, created_before, created_after)
    with api_session(ctx, api_key, base_url) as client:
        found = fetch_requests(client, sort="created_at_asc", **filters)
    rows = [request_row(r) for r in found]
    records = [_record(r) for r in found]
    if output is None:
        echo_records(rows, fmt, columns=_CSV, json_records=records)
        return
    with output.open("w", encoding="utf-8", newline="") as handle:
        echo_records(rows, fmt, columns=_CSV, json_records=records, out=handle)
    click.echo(f"wrote {len(found)} request(s) to {output}", err=True)


@requests.command("get")
@click.argument("request_id")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@api_options
@click.pass_context
def get_request(
    ctx: click.Context, request_id: str, fmt: str, api_key: str | None, base_url: str | None
) -> None:
    """One request, with its answer once there is one."""
    with api_session(ctx, api_key, base_url) as client:
        request = client.requests.get(request_id)
    _show(request, fmt)


def _show(request: Any, fmt: str) -> None:
    data = _record(request)
    if fmt == "table":
        shown = {**data, "request_text": markdown_to_plain(str(data.get("request_text") or ""))}
        rows = [{"field": k, "value": v} for k, v in shown.items() if v is not None]
        echo_records(
            rows, "table", columns=("field", "value"), title=f"request {request.id}", cut=False
        )
    else:
        echo_records([request_row(request)], fmt, columns=_CSV, json_records=[data])


def _json_value(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not JSON (quote text: '\"no\"')", ctx, param
        ) from None


@requests.command("update")
@click.argument("request_id")
@click.option("--text", "request_text", default=None, help="New request_text.")
@click.option("--priority", type=click.Choice(["low", "medium", "high", "critical"]), default=None)
@click.option("--timeout", "timeout_seconds", type=click.IntRange(60, 86400), default=None,
              help="New timeout_seconds, counted from creation.")  # fmt: skip
@click.option("--response-type", default=None, help="New response type (with --config).")
@click.option("--config", "response_config", callback=_json_value, default=None,
              help="New response_config as JSON.")  # fmt: skip
@click.option("--default", "default_response", callback=_json_value, default=None,
              help="New default_response as JSON, e.g. '\"reject\"' or false.")  # fmt: skip
@click.option("--context", callback=_json_value, default=None, help="New context as JSON.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@api_options
@click.pass_context
def update_request(
    ctx: click.Context,
    request_id: str,
    request_text: str | None,
    priority: str | None,
    timeout_seconds: int | None,
    response_type: str | None,
    response_config: Any,
    default_response: Any,
    context: Any,
    fmt: str,
    api_key: str | None,
    base_url: str | None,
) -> None:
    """Change fields of a pending request."""
    with api_session(ctx, api_key, base_url) as client:
        updated = client.requests.update(
            request_id, request_text=request_text, priority=priority,  # type: ignore[arg-type]
            timeout_seconds=timeout_seconds, response_type=response_type,
            response_config=response_config, default_response=default_response, context=context,
        )  # fmt: skip
    _show(updated, fmt)


@requests.command("cancel")
@click.argument("request_ids", nargs=-1)
@request_filters
@click.option("--yes", "-y", is_flag=True, help="Cancel by filter without asking.")
@api_options
@click.pass_context
def cancel_requests(
    ctx: click.Context,
    request_ids: tuple[str, ...],
    status: str | None,
    priority: str | None,
    loop_id: str | None,
    created_before: datetime | None,
    created_after: datetime | None,
    yes: bool,
    api_key: str | None,
    base_url: str | None,
) -> None:
    """Cancel requests by id, or every open request matching a filter (asks first)."""
    from .._exceptions import APIStatusError

    filters = _filters(status, priority, loop_id, created_before, created_after)
    if request_ids and filters:
        raise click.UsageError("give request ids or filters, not both", ctx)
    if not request_ids and not filters:
        raise click.UsageError(
            "give request ids, or a filter (--status, --priority, --loop, --created-before/after)",
            ctx,
        )
    if status is not None and status not in _CANCELLABLE:
        raise click.BadParameter(
            f"{status} requests cannot be cancelled; use pending or claimed",
            ctx,
            param_hint="--status",
        )
    with api_session(ctx, api_key, base_url) as client:
        if not request_ids:
            found = [r for r in fetch_requests(client, **filters) if r.status in _CANCELLABLE]
            if not found:
                click.echo("nothing to cancel: no pending or claimed request matches")
                return
            if not yes:
                click.confirm(
                    f"Cancel {len(found)} request(s) on {client.base_url}?", abort=True, err=True
                )
            request_ids = tuple(r.id for r in found)
        refunded, failed = 0, 0
        for request_id in request_ids:
            try:
                result = client.requests.cancel(request_id)
            except APIStatusError as err:
                if len(request_ids) == 1:
                    raise
                # One answered meanwhile must not stop the others.
                failed += 1
                click.echo(f"not cancelled {request_id}: {err.msg}", err=True)
                continue
            refund = result.refund_info
            if refund is not None and refund.refunded:
                refunded += 1
            how = ("refunded" if refund is not None and refund.refunded else "not refunded") + (
                f" ({refund.reason})" if refund is not None and refund.reason else ""
            )
            click.echo(f"cancelled {request_id} (was {result.previous_status}); quota {how}")
    if len(request_ids) > 1:
        stderr_console().print(
            f"cancelled {len(request_ids) - failed} request(s); {refunded} call(s) refunded "
            "to the quota"
        )
    if failed:
        raise click.ClickException(f"{failed} request(s) could not be cancelled (see above)")
