"""``hitl-agent serve``: the embedded, HITL.sh-compatible server with its reviewer console.

It binds its port first, so a port in use is a one-line error (exit 1) before any key is
made or the database file is created. On the first start against a database it creates an API
key, a loop and a reviewer who is an active member of that loop; later starts on the same
``--db`` reuse them. It prints everything a developer needs (base URL, console URL, loop id,
key, reviewer token, and an ``export`` line for the first three) and stops cleanly on Ctrl-C
or SIGTERM, closing the database::

    hitl-agent serve --port 8765 --db ./hitl-local.db
    export HITL_BASE_URL=http://127.0.0.1:8765/v1 HITL_API_KEY=<key> HITL_LOOP_ID=<loop id>

It also runs workflows (HITL.sh's successor to loops): those of ``--workflow FILE`` (JSON, or
YAML when PyYAML is installed), else one default workflow (trigger → human review:
single_select Approve/Reject, 1 h, default Reject). Each one's trigger URL is printed beside
the loop id.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import signal
import socket
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import click

from .._extras import MissingExtraError, require

__all__ = ["serve"]


def _url_host(host: str) -> str:
    # An IPv6 literal needs brackets inside a URL.
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _listen(host: str, port: int) -> list[socket.socket]:
    """Bind ``host:port`` now, on every address the host resolves to (as asyncio would), so a
    busy port fails before anything is created; uvicorn then serves on these sockets."""
    shown = f"{_url_host(host)}:{port}"
    try:
        addresses = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as err:
        raise click.ClickException(f"cannot listen on {shown}: {err.strerror}") from None
    bound: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(addresses):
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as err:
        for sock in bound:
            sock.close()
        if err.errno == errno.EADDRINUSE:
            raise click.ClickException(
                f"cannot listen on {shown}: port {port} is already in use (another "
                "`hitl-agent serve`?); stop that process or pick another --port"
            ) from None
        raise click.ClickException(f"cannot listen on {shown}: {err.strerror or err}") from None
    return bound


def _read_workflows(path: Path) -> Any:
    """The parsed workflow file: the data for ``LocalHITLServer.add_workflows``.

    JSON always; YAML (``.yaml``/``.yml``) when PyYAML is installed. Validated here, before
    the port is bound or the database created, so a bad file is a one-line error.
    """
    from ..models.workflows import WorkflowFile

    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise click.BadParameter(
                "reading YAML needs PyYAML, which is not installed: pip install pyyaml, or "
                "write the file as JSON",
                param_hint="--workflow",
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise click.BadParameter(f"not valid YAML: {err}", param_hint="--workflow") from None
    else:
        import json

        try:
            data = json.loads(text)
        except ValueError as err:
            raise click.BadParameter(f"not valid JSON: {err}", param_hint="--workflow") from None
    from .._exceptions import ConfigError
    from ..server._workflows import check_workflows

    try:
        workflows = WorkflowFile.parse(data)
        check_workflows(workflows)
    except ConfigError as err:
        raise click.BadParameter(str(err), param_hint="--workflow") from None
    return workflows


def _close(server: Any) -> None:
    # The server owns its SQLite connection; close it even if its lifespan did not run.
    close = getattr(server, "close", None)
    if callable(close):
        close()


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--db",
    "db_path",
    default="./hitl-local.db",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite file holding keys, loops and requests (created if missing).",
)
@click.option(
    "--api-key",
    envvar="HITL_LOCAL_API_KEY",
    default=None,
    help="API key to create on first start [env HITL_LOCAL_API_KEY]; generated if omitted.",
)
@click.option(
    "--reviewer-token",
    envvar="HITL_LOCAL_REVIEWER_TOKEN",
    default=None,
    help="Reviewer token to create on first start [env HITL_LOCAL_REVIEWER_TOKEN]; "
    "generated if omitted.",
)
@click.option(
    "--signing-secret",
    envvar="HITL_LOCAL_SIGNING_SECRET",
    default=None,
    help="Secret for signing callback deliveries [env HITL_LOCAL_SIGNING_SECRET].",
)
@click.option(
    "--rate-limit",
    type=click.IntRange(min=1),
    default=None,
    help="API calls per hour per key (HITL.sh allows about 100); unlimited if omitted.",
)
@click.option(
    "--allow-private-callbacks",
    is_flag=True,
    default=False,
    help="Let callback_url point at private networks (10/8, 172.16/12, 192.168/16, "
    "100.64/10, fc00::/7). Loopback is always allowed; link-local and cloud metadata never.",
)
@click.option(
    "--plain-callbacks",
    is_flag=True,
    envvar="HITL_LOCAL_PLAIN_CALLBACKS",
    default=False,
    help='Send callback response_data plain ("approve", as Make and Zapier show) instead '
    'of HITL.sh\'s webhooks-page shape {"selected_value": ...} [env HITL_LOCAL_PLAIN_CALLBACKS].',
)
@click.option(
    "--workflow",
    "workflow_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Workflows to run (JSON, or YAML with PyYAML): trigger -> human review node "
    "(response type, options, timeout/default, reviewers/groups). Default: one workflow, "
    "Approve/Reject, 1 h, default Reject. See docs/server.md#workflows.",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
)
def serve(
    host: str,
    port: int,
    db_path: Path,
    api_key: str | None,
    reviewer_token: str | None,
    signing_secret: str | None,
    rate_limit: int | None,
    allow_private_callbacks: bool,
    plain_callbacks: bool,
    workflow_file: Path | None,
    log_level: str,
) -> None:
    """Run the local HITL server and the reviewer console."""
    try:
        from hitl_agent.server import create_app
        from hitl_agent.server._app import UVICORN_OPTIONS

        (uvicorn,) = require("server", "hitl-agent serve", "uvicorn")
    except MissingExtraError as err:
        raise click.ClickException(str(err)) from err

    for name, value in (("--api-key", api_key), ("--reviewer-token", reviewer_token)):
        if value is not None and len(value.strip()) < 16:
            raise click.BadParameter(
                "must be at least 16 characters (or omit it to generate one)", param_hint=name
            )

    workflows = _read_workflows(workflow_file) if workflow_file is not None else None
    # First the port: a busy one is an error before any key or database file is created.
    sockets = _listen(host, port)
    with contextlib.ExitStack() as stack:
        for sock in sockets:
            stack.callback(sock.close)
        app = create_app(
            str(db_path),
            signing_secret=signing_secret,
            rate_limit=rate_limit,
            allow_private_callbacks=allow_private_callbacks,
            plain_callbacks=plain_callbacks,
        )
        local = app.state.hitl
        stack.callback(_close, local)
        boot = local.bootstrap(
            api_key=api_key, reviewer_token=reviewer_token, default_workflow=workflows is None
        )
        if workflows is not None:
            owner = local.add_api_key(boot.api_key)  # the key's account (it exists)
            # A review node that names no reviewers goes to the bootstrap reviewer.
            local.add_workflows(owner.user_id, workflows, default_reviewers=[boot.reviewer_email])

        base = f"http://{_url_host(host)}:{port}"
        click.echo("hitl-agent local server")
        click.echo(f"  API base URL    {base}/v1")
        click.echo(f"  Console         {base}/console/")
        click.echo(f"  Loop id         {boot.loop_id}")
        for workflow in local.workflows():  # an earlier start's too: they still run
            draft = "" if workflow["status"] == "active" else "  (draft: ignores triggers)"
            click.echo(f"  Workflow id     {workflow['id']}  {workflow['name']}{draft}")
            click.echo(f"  Trigger URL     {base}/v1/workflows/{workflow['id']}/trigger")
        click.echo(f"  API key         {boot.api_key}")
        click.echo(f"  Reviewer token  {boot.reviewer_token}")
        click.echo(f"  Reviewer        {boot.reviewer_email}")
        click.echo(f"  Database        {db_path.resolve()}")
        click.echo(
            f"Use it: export HITL_BASE_URL={base}/v1 HITL_API_KEY={boot.api_key} "
            f"HITL_LOOP_ID={boot.loop_id}"
        )
        if not _is_loopback(host):
            click.echo(
                f"warning: binding {host} exposes the API key and reviewer token over plain "
                "HTTP; put TLS in front of it or bind 127.0.0.1",
                err=True,
            )
        sys.stdout.flush()

        # uvicorn handles SIGINT/SIGTERM itself, then re-raises the captured signal with the
        # handler that was installed before it started. With Python's defaults that would end
        # the process by the signal (exit 143/KeyboardInterrupt); a no-op handler makes a
        # requested shutdown exit 0 after the database is closed.
        received: list[int] = []

        def _remember(signum: int, frame: FrameType | None) -> None:
            received.append(signum)

        previous = {sig: signal.signal(sig, _remember) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            config = uvicorn.Config(
                app, host=host, port=port, log_level=log_level, **UVICORN_OPTIONS
            )
            uvicorn.Server(config).run(sockets=sockets)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    click.echo("hitl-agent local server stopped", err=True)
