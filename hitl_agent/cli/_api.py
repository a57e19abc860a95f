"""What the operations commands share: the client from flags or env, one-line errors, output.

Every command that talks to the API takes ``--api-key`` / ``--base-url`` (defaults
``HITL_API_KEY`` / ``HITL_BASE_URL``, as everywhere else in hitl_agent). An API error prints
one line naming the host and the fix and exits 1; a bad flag exits 2 (click's usage rule).

Tests hand in an HTTP client through ``ctx.obj["http_client"]`` (``CliRunner.invoke(...,
obj=...)``) so the commands run against the local server's ASGI app, never the network.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import click

from .._plain import markdown_to_plain
from .._text import reveal_invisible

if TYPE_CHECKING:
    from .._client import HITLClient
    from ..models.requests import Request

__all__ = [
    "FORMATS",
    "REQUEST_COLUMNS",
    "api_error_line",
    "api_options",
    "api_root_hint",
    "api_session",
    "csv_cell",
    "echo_records",
    "fetch_requests",
    "parse_time",
    "request_filters",
    "request_row",
    "stderr_console",
    "stdout_console",
]

FORMATS = ("table", "json", "csv")
F = TypeVar("F", bound=Callable[..., Any])


def api_options(func: F) -> F:
    """``--api-key`` and ``--base-url``, read from the environment when not given."""
    func = click.option(
        "--base-url",
        envvar="HITL_BASE_URL",
        default=None,
        help="API base URL, ending in /v1 [env HITL_BASE_URL; default https://api.hitl.sh/v1].",
    )(func)
    func = click.option(
        "--api-key",
        envvar="HITL_API_KEY",
        default=None,
        show_envvar=False,
        help="API key [env HITL_API_KEY].",
    )(func)
    return func


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


_NOT_THE_API_ROOT = frozenset({"console", "api", "reviewer"})
"""Last path segments of URLs users paste instead of the API root: the console, endpoints."""


def api_root_hint(base_url: str) -> str | None:
    """The fix for a base URL that does not end in ``/v1``, naming the ``/v1`` root; else None.

    ``http://127.0.0.1:8765`` → ``.../v1``; the console's ``.../console/`` and an endpoint's
    ``.../api`` or ``.../v1/api/requests`` → the ``/v1`` root of the same server.
    """
    parts = urlsplit(base_url)
    segments = [segment for segment in parts.path.split("/") if segment]
    if segments and segments[-1] == "v1":
        return None
    problem = "does not end in /v1" if "v1" in segments else "has no /v1"
    if "v1" in segments:
        segments = segments[: segments.index("v1") + 1]
    else:
        while segments and segments[-1] in _NOT_THE_API_ROOT:
            segments.pop()
        segments.append("v1")
    root = urlunsplit((parts.scheme, parts.netloc, "/" + "/".join(segments), "", ""))
    return f"the base URL {base_url.rstrip('/')} {problem}; use {root}"


def _fix(status: int, base_url: str, msg: str) -> str:
    hint = api_root_hint(base_url)
    if hint is not None:  # whatever the server said, it was not the API's root it said it to
        return hint
    if status == 401:
        return "check HITL_API_KEY (your dashboard key, or the one `hitl-agent serve` printed)"
    if status == 403:
        return "use the key that created the loop or request"
    if status == 404:
        return "check the id (requests of other keys are not found either)"
    if status == 429:
        return "the hourly quota is spent; wait for the reset (see `hitl-agent check`)"
    if status >= 500:
        return "the server failed; retry later"
    return "correct the value named above" if msg else "see the server's message"


def api_error_line(err: Exception, base_url: str) -> str:
    """One line: what failed, on which host, and how to fix it."""
    from .._exceptions import (
        APIConnectionError,
        APIResponseValidationError,
        APIStatusError,
        RateLimitError,
    )

    request = getattr(err, "request", None)
    url = str(request.url) if request is not None else base_url
    host = _host(url)
    if isinstance(err, APIConnectionError):
        detail = str(err).split(" failed: ", 1)[-1]
        return (
            f"cannot reach {host} ({detail}); check HITL_BASE_URL / --base-url and that the "
            "server is running"
        )
    if isinstance(err, APIStatusError):
        detail = f": {err.data}" if isinstance(err.data, str) and err.data else ""
        line = f"{host} answered {err.status_code} {err.msg}{detail}"
        if isinstance(err, RateLimitError) and err.reset_at is not None:
            line += f" (resets at {err.reset_at.isoformat()})"
        return f"{line}. Fix: {_fix(err.status_code, base_url, err.msg)}"
    if isinstance(err, APIResponseValidationError):
        status = err.status_code
        hint = api_root_hint(base_url) or "check HITL_BASE_URL points at the API"
        return f"{host} answered {status} with something that is not the HITL API. Fix: {hint}"
    return f"{host}: {err}"


@contextmanager
def api_session(
    ctx: click.Context, api_key: str | None, base_url: str | None
) -> Iterator[HITLClient]:
    """A client from the flags (or env), closed afterwards; errors become one line.

    A missing or malformed setting, or a value the client refuses before sending
    (ConfigError), is a usage error: exit 2. An API error: one line, exit 1.
    """
    from .._client import HITLClient
    from .._exceptions import APIError, ConfigError

    obj = ctx.obj if isinstance(ctx.obj, dict) else {}
    try:
        client = HITLClient(api_key, base_url=base_url, http_client=obj.get("http_client"))
    except ConfigError as err:
        raise click.UsageError(str(err), ctx) from None
    try:
        with client:
            yield client
    except ConfigError as err:
        raise click.UsageError(str(err), ctx) from None
    except APIError as err:
        raise click.ClickException(api_error_line(err, client.base_url)) from None


def stdout_console() -> Any:
    """A rich console on stdout (wide enough that ids are never cut)."""
    from rich.console import Console

    return Console(width=200, soft_wrap=False, highlight=False)


def stderr_console() -> Any:
    """A rich console on stderr, for progress bars and prompts."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def parse_time(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """A ``--created-before/after`` value: ISO 8601 (naive = UTC) or ``now``."""
    if value is None:
        return None
    if value == "now":
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time; use e.g. 2026-01-31T12:00:00Z", ctx, param
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def request_filters(func: F) -> F:
    """The list filters every request command shares."""
    from typing import get_args

    from ..models.requests import Priority, RequestStatus

    options = [
        click.option(
            "--created-after",
            callback=parse_time,
            help="Only requests created after this ISO 8601 time (UTC if no offset).",
        ),
        click.option(
            "--created-before",
            callback=parse_time,
            help="Only requests created before this ISO 8601 time (UTC if no offset).",
        ),
        click.option("--loop", "loop_id", default=None, help="Only requests in this loop id."),
        click.option(
            "--priority", type=click.Choice(get_args(Priority)), default=None, help="Priority."
        ),
        click.option(
            "--status", type=click.Choice(get_args(RequestStatus)), default=None, help="Status."
        ),
    ]
    for option in options:
        func = option(func)
    return func


def fetch_requests(
    client: HITLClient, *, limit: int | None = None, progress: bool = True, **filters: Any
) -> list[Request]:
    """Every matching request, page by page (100 a call), with a progress bar on stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    found: list[Request] = []
    offset = 0
    console = stderr_console()
    # Drawn only on a terminal: piped or captured stderr stays clean for error lines.
    with Progress(
        TextColumn("fetching requests"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
        disable=not progress or not console.is_terminal,
    ) as bar:
        task = bar.add_task("fetch", total=None)
        while True:
            page_size = 100 if limit is None else max(1, min(100, limit - len(found)))
            page = client.requests.list(limit=page_size, offset=offset, **filters)
            found.extend(page.requests)
            total = page.total if limit is None else min(limit, page.total or limit)
            bar.update(task, completed=len(found), total=total)
            if not page.requests or page.has_more is False:
                break
            if limit is not None and len(found) >= limit:
                break
            if page.has_more is None and len(page.requests) < page_size:
                break
            offset += len(page.requests)
    return found[:limit] if limit is not None else found


REQUEST_COLUMNS = (
    "id",
    "loop_id",
    "status",
    "priority",
    "response_type",
    "request_text",
    "response_data",
    "default_response",
    "response_time_seconds",
    "created_at",
    "timeout_at",
    "response_at",
)
_JSON_COLUMNS = frozenset({"response_data", "default_response"})
"""Cells holding any JSON value: written as JSON text so that CSV reads back losslessly."""


def request_row(request: Request) -> dict[str, str]:
    """One request as CSV/table cells: ``request_text`` as the plain text the console shows
    (the gate's markdown escapes resolved; see :func:`hitl_agent._plain.markdown_to_plain`)."""
    data = request.model_dump(mode="json")
    row: dict[str, str] = {}
    for name in REQUEST_COLUMNS:
        value = data.get(name)
        if name in _JSON_COLUMNS:
            row[name] = "" if value is None else json.dumps(value, ensure_ascii=False)
        elif name == "request_text" and isinstance(value, str):
            row[name] = markdown_to_plain(value)
        else:
            row[name] = "" if value is None else str(value)
    return row


# OWASP "CSV Injection": a cell starting with = + - @ tab or CR is a formula to a spreadsheet.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")


def csv_cell(value: Any) -> str:
    """One CSV cell that a spreadsheet shows as text and that hides nothing.

    Invisible and direction-changing characters become ``⟦U+XXXX⟧`` markers (a U+202E would
    reorder the cell), and a cell a spreadsheet would run as a formula gets a leading ``'``
    (OWASP's advice), except a plain number (``-3``, ``1.5e-3``), which no spreadsheet runs.
    """
    text = "" if value is None else value if isinstance(value, str) else json.dumps(value)
    text = reveal_invisible(text)
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def echo_records(
    records: Sequence[dict[str, Any]],
    fmt: str,
    *,
    columns: Sequence[str],
    title: str | None = None,
    json_records: Sequence[Any] | None = None,
    out: IO[str] | None = None,
    cut: bool = True,
) -> None:
    """Print ``records`` as a rich table, JSON (``json_records`` when given) or CSV.

    Table cells are cut at 60 characters unless ``cut`` is false (one record's fields)."""
    if fmt == "json":
        text = json.dumps(list(json_records if json_records is not None else records), indent=2)
        _write(text + "\n", out)
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(
            {name: csv_cell(record.get(name)) for name in columns} for record in records
        )
        _write(buffer.getvalue(), out)
    else:
        from rich.table import Table

        table = Table(title=title)
        for name in columns:
            table.add_column(name, no_wrap=name.endswith("id"), overflow="fold")
        for record in records:
            table.add_row(*(_cell(record.get(name), cut) for name in columns))
        stdout_console().print(table)


def _cell(value: Any, cut: bool = True) -> Any:
    from rich.text import Text

    if value is None:
        return Text("")
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text if not cut or len(text) <= 60 else text[:59] + "…"
    # A Text, not a str: rich reads "[link=…]" or "[bold]" in a str as its own markup, and a
    # terminal obeys escape sequences; agent text must be neither.
    return Text(reveal_invisible(text))


def _write(text: str, out: IO[str] | None) -> None:
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write(text)
