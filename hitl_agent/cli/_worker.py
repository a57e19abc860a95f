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
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

__all__ = ["load_graph", "worker"]


@contextmanager
def _checkpointer(url: str) -> Iterator[Any]:
    if url.startswith("sqlite:///"):
        from langgraph.checkpoint.sqlite import SqliteSaver

        conn = sqlite3.connect(url[len("sqlite:///") :], check_same_thread=False)
        try:
            yield SqliteSaver(conn)
        finally:
            conn.close()
    elif url.startswith(("postgresql://", "postgres://")):
        try:
            from langgraph.checkpoint.postgres import PostgresSaver
        except ImportError as err:
            raise click.UsageError(
                "--checkpointer postgresql:// needs pip install 'hitl-agent[postgres]'"
            ) from err
        with PostgresSaver.from_conn_string(url) as saver:
            saver.setup()
            yield saver
    elif url == "memory":
        from langgraph.checkpoint.memory import InMemorySaver

        yield InMemorySaver()
    else:
        raise click.UsageError(
            f"--checkpointer {url!r}: use sqlite:///path.db, postgresql://... or memory"
        )


def load_graph(target: str, checkpointer: Any) -> Any:
    """Import ``module:attr``; call it with the checkpointer when it is not a graph."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise click.UsageError(f"--graph {target!r}: expected module:attribute")
    # A console script's sys.path starts at its bin directory, not the current directory:
    # look there first, as `python -m` and uvicorn do.
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise click.UsageError(f"--graph {target!r}: {err}") from err
    if hasattr(obj, "get_state") and hasattr(obj, "invoke"):
        return obj
    if callable(obj):
        return obj(checkpointer)
    raise click.UsageError(f"--graph {target!r} is neither a compiled graph nor a builder")


@click.command()
@click.option("--graph", "graph_target", required=True, help="module:attr of the graph or builder.")
@click.option(
    "--checkpointer", required=True, help="sqlite:///path.db, postgresql://... or memory."
)
@click.option("--ledger", default="sqlite:///hitl.db", show_default=True, help="Ledger URL.")
@click.option("--loop-id", envvar="HITL_LOOP_ID", help="Loop to poll (default: HITL_LOOP_ID).")
@click.option("--callback-url", envvar="HITL_CALLBACK_URL", help="Public receiver base URL.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-poll", is_flag=True, help="Serve callbacks only; do not poll.")
@click.option("--once", is_flag=True, help="Run one poll sweep and exit (cron).")
def worker(
    graph_target: str,
    checkpointer: str,
    ledger: str,
    loop_id: str | None,
    callback_url: str | None,
    host: str,
    port: int,
    no_poll: bool,
    once: bool,
) -> None:
    """Resume LangGraph threads as reviews are answered (webhook receiver + poller)."""
    from .._client import HITLClient
    from .._exceptions import HITLError
    from ..gate import Gatekeeper
    from ..langgraph import GraphResumer

    if not loop_id:
        raise click.UsageError("--loop-id (or HITL_LOOP_ID) is required")
    try:
        with HITLClient() as client, _checkpointer(checkpointer) as saver:
            graph = load_graph(graph_target, saver)
            keeper = Gatekeeper(
                client=client,
                loop_id=loop_id,
                ledger=ledger,
                callback_url=callback_url,
                callback_secret=os.environ.get("HITL_CALLBACK_SECRET"),
            )
            with keeper:
                dispatcher = keeper.dispatcher(GraphResumer(graph))
                if once:
                    delivered = dispatcher.poll_once()
                    click.echo(f"resumed {len(delivered)} review(s)")
                    return
                click.echo(f"worker on http://{host}:{port}{dispatcher.receiver.path}/<token>")
                dispatcher.serve(host=host, port=port, poll=not no_poll)
    except HITLError as err:
        raise click.ClickException(str(err)) from err
