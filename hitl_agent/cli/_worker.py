"""``hitl-agent worker``: run the callback receiver and the poller for a LangGraph graph.

``--graph module:attr`` names either a compiled graph (used as is; it must carry its
checkpointer) or a builder function taking a checkpointer and returning the compiled graph
(the worker passes the one it opened from ``--checkpointer``)::

    hitl-agent worker --graph app.graphs:build --checkpointer sqlite:///checkpoints.db \\
        --ledger sqlite:///hitl.db --loop-id LOOP --port 8000
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from ..dispatch._health import scrub, url_secrets
from ._checkpointer import OpenCheckpointer, open_checkpointer

if TYPE_CHECKING:
    from .._client import HITLClient
    from ..dispatch import Dispatcher
    from ..gate import Gatekeeper

__all__ = ["Worker", "load_graph", "open_worker", "worker"]


@contextmanager
def _checkpointer(url: str) -> Iterator[Any]:
    """The saver alone, opened as :func:`open_checkpointer` does (``hitl-agent bridge``)."""
    with open_checkpointer(url) as opened:
        yield opened.saver


def import_target(option: str, target: str) -> Any:
    """Import ``module:attr`` for the command-line option ``option`` (UsageError naming it)."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise click.UsageError(f"{option} {target!r}: expected module:attribute")
    # A console script's sys.path starts at its bin directory, not the current directory:
    # look there first, as `python -m` and uvicorn do.
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise click.UsageError(f"{option} {target!r}: {err}") from err


def load_graph(target: str, checkpointer: Any) -> Any:
    """Import ``module:attr``; call it with the checkpointer when it is not a graph."""
    obj = import_target("--graph", target)
    if hasattr(obj, "get_state") and hasattr(obj, "invoke"):
        return obj
    if callable(obj):
        return obj(checkpointer)
    raise click.UsageError(f"--graph {target!r} is neither a compiled graph nor a builder")


@dataclass(frozen=True)
class Worker:
    """What ``hitl-agent worker`` runs: the graph, its keeper and dispatcher, and the
    checkpointer it opened."""

    graph: Any
    keeper: Gatekeeper
    dispatcher: Dispatcher
    checkpointer: OpenCheckpointer


def _graph_probe(graph: Any, opened: OpenCheckpointer) -> Any:
    saver: Any = getattr(graph, "checkpointer", None)
    if saver is opened.saver or not hasattr(saver, "get_tuple"):
        return opened.probe
    # A compiled graph that brought its own checkpointer: ask that one.
    config: Any = {"configurable": {"thread_id": "hitl-agent-readiness-probe"}}
    return lambda: saver.get_tuple(config)


@contextmanager
def open_worker(
    *,
    graph_target: str,
    checkpointer: str,
    ledger: str,
    loop_id: str | None,
    client: HITLClient,
    workflow: str | None = None,
    callback_url: str | None = None,
    callback_secret: str | None = None,
    signing_secret: str | None = None,
) -> Iterator[Worker]:
    """Open the checkpointer (PostgreSQL: a reconnecting pool), load the graph, open the
    keeper's ledger and build the dispatcher, its readiness probing both stores: the
    wiring of ``hitl-agent worker``, closed on exit."""
    from .._config import CallbackConfig
    from ..gate import Gatekeeper
    from ..langgraph import GraphResumer

    with open_checkpointer(checkpointer) as opened:
        graph = load_graph(graph_target, opened.saver)
        keeper = Gatekeeper(
            client=client,
            loop_id=loop_id,
            workflow=workflow,
            ledger=ledger,
            callbacks=CallbackConfig(callback_url, callback_secret, signing_secret=signing_secret),
        )
        with keeper:
            dispatcher = keeper.dispatcher(GraphResumer(graph))
            dispatcher.readiness.add(
                "checkpointer",
                _graph_probe(graph, opened),
                secrets=url_secrets(checkpointer, ledger),
            )
            yield Worker(graph, keeper, dispatcher, opened)


def _require_ready(dispatcher: Dispatcher, done: str = "") -> None:
    """Exit non-zero, in one line, when the ledger or the checkpointer does not answer."""
    failing = dispatcher.readiness.check()
    if failing:
        what = "; ".join(f"{name}: {reason}" for name, reason in sorted(failing.items()))
        raise click.ClickException(
            f"{done}the worker cannot reach its {' and '.join(sorted(failing))} ({what}); "
            "check the URL and that the database is up"
        )


@click.command()
@click.option("--graph", "graph_target", required=True, help="module:attr of the graph or builder.")
@click.option(
    "--checkpointer",
    required=True,
    help="sqlite:///path.db, postgresql://... (a reconnecting pool) or memory.",
)
@click.option("--ledger", default="sqlite:///hitl.db", show_default=True, help="Ledger URL.")
@click.option("--loop-id", envvar="HITL_LOOP_ID", help="Loop to poll (default: HITL_LOOP_ID).")
@click.option(
    "--workflow",
    envvar="HITL_WORKFLOW",
    help="A HITL.sh workflow (id or trigger URL) instead of --loop-id (HITL_WORKFLOW).",
)
@click.option("--callback-url", envvar="HITL_CALLBACK_URL", help="Public receiver base URL.")
@click.option(
    "--signing-secret",
    envvar="HITL_SIGNING_SECRET",
    help="HITL.sh's webhook signing secret: refuse unsigned callbacks (HITL_SIGNING_SECRET).",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--no-poll",
    is_flag=True,
    help="Callbacks only: never list requests at the API. Recovery from the ledger "
    "(decided rows, expired claims) still runs at start-up and every few seconds.",
)
@click.option(
    "--once",
    is_flag=True,
    help="Run one sweep (with --no-poll: one recovery step) and exit (cron); exit 1 when "
    "the ledger or checkpointer does not answer.",
)
def worker(
    graph_target: str,
    checkpointer: str,
    ledger: str,
    loop_id: str | None,
    workflow: str | None,
    callback_url: str | None,
    signing_secret: str | None,
    host: str,
    port: int,
    no_poll: bool,
    once: bool,
) -> None:
    """Resume LangGraph threads as reviews are answered (webhook receiver + recovery +
    poller). Serves GET /healthz, GET /readyz and GET /metrics (Prometheus) on its port."""
    from .._client import HITLClient
    from .._exceptions import HITLError

    if bool(loop_id) == bool(workflow):
        raise click.UsageError(
            "pass --loop-id (HITL_LOOP_ID) or --workflow (HITL_WORKFLOW), not both"
        )
    secrets = url_secrets(checkpointer, ledger)
    try:
        with (
            HITLClient() as client,
            open_worker(
                graph_target=graph_target,
                checkpointer=checkpointer,
                ledger=ledger,
                loop_id=loop_id,
                client=client,
                workflow=workflow,
                callback_url=callback_url,
                callback_secret=os.environ.get("HITL_CALLBACK_SECRET"),
                signing_secret=signing_secret,
            ) as opened,
        ):
            dispatcher = opened.dispatcher
            if once:
                _require_ready(dispatcher)
                delivered = dispatcher.recover_once() if no_poll else dispatcher.poll_once()
                done = f"resumed {len(delivered)} review(s)"
                _require_ready(dispatcher, f"{done}, then ")
                click.echo(done)
                return
            click.echo(
                f"worker on http://{host}:{port}{dispatcher.receiver.path}/<token> "
                "(health: /healthz, /readyz; metrics: /metrics)"
            )
            dispatcher.serve(host=host, port=port, poll=not no_poll)
    except HITLError as err:
        raise click.ClickException(scrub(str(err), secrets)) from err
