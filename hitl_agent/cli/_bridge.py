"""``hitl-agent bridge``: serve an unchanged ``HumanInTheLoopMiddleware`` agent's interrupts.

Runs the bridge's sweep (finds interrupted threads, creates one HITL request per gated
action), the callback receiver and the poller (resume with the reviewers' decisions)::

    hitl-agent bridge --graph app.agent:agent --checkpointer sqlite:///checkpoints.db \\
        --ledger sqlite:///hitl.db --loop-id LOOP --port 8000
    hitl-agent bridge --langgraph-url http://127.0.0.1:2024 --assistant-id agent \\
        --ledger sqlite:///hitl.db --loop-id LOOP

``--graph`` is the compiled agent (its checkpointer replaced by ``--checkpointer``'s when it
was compiled without one) or a builder taking the checkpointer, as for ``worker``.
``--policies`` names the app's approval policies per tool (``module:attr``, the mapping the
app passes as ``keeper.bridge(agent, policies=...)``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import click

from ._worker import _checkpointer, import_target, load_graph

__all__ = ["bridge"]

log = logging.getLogger("hitl_agent.bridge")


@contextmanager
def _graph(target: str | None, checkpointer: str | None) -> Iterator[Any]:
    if target is None:
        yield None
        return
    if checkpointer is None:
        raise click.UsageError("--graph needs --checkpointer (the one the agent runs with)")
    with _checkpointer(checkpointer) as saver:
        graph = load_graph(target, saver)
        if getattr(graph, "checkpointer", None) in (None, True, False):
            graph = graph.copy(update={"checkpointer": saver})
        yield graph


def _policies(target: str) -> Any:
    """The mapping ``module:attr`` names (the app's own ``policies=``: the sweep sends the
    first requests, so it must ask under the same policies as the app)."""
    policies = import_target("--policies", target)
    if not isinstance(policies, Mapping):
        raise click.UsageError(f"--policies {target!r} is not a mapping of tool names to policies")
    return policies


async def _sweep_forever(bridge: Any, every: float) -> None:
    while True:
        try:
            rows = await bridge.asweep()
            log.info("bridge sweep: %d action(s) pending review", len(rows))
        except Exception:
            log.exception("bridge sweep failed")
        await asyncio.sleep(every)


async def _serve(
    dispatcher: Any, bridge: Any, host: str, port: int, poll: bool, every: float
) -> None:
    import uvicorn

    dispatcher.poll_on_startup = poll
    # No access log: every callback path carries a capability token.
    server = uvicorn.Server(
        uvicorn.Config(
            dispatcher.health_app,  # the receiver plus GET /healthz and /readyz
            host=host,
            port=port,
            lifespan="on",
            log_level="info",
            access_log=False,
        )
    )
    sweeper = asyncio.create_task(_sweep_forever(bridge, every))
    try:
        await server.serve()
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper


@click.command()
@click.option("--graph", "graph_target", help="module:attr of the compiled agent or a builder.")
@click.option(
    "--checkpointer", help="sqlite:///path.db, postgresql://... or memory (with --graph)."
)
@click.option("--langgraph-url", help="A LangGraph Server serving the agent (instead of --graph).")
@click.option("--assistant-id", help="The assistant or graph id on the LangGraph Server.")
@click.option(
    "--policies",
    "policies_target",
    help="module:attr of the approval policies per tool (docs/bridge.md, Policies).",
)
@click.option("--ledger", default="sqlite:///hitl.db", show_default=True, help="Ledger URL.")
@click.option("--loop-id", envvar="HITL_LOOP_ID", help="Loop to create reviews in (HITL_LOOP_ID).")
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
@click.option("--sweep-interval", default=30.0, show_default=True, help="Seconds between sweeps.")
@click.option(
    "--poll-interval", default=60.0, show_default=True, help="Seconds between answer polls."
)
@click.option("--no-poll", is_flag=True, help="Serve callbacks only; do not poll.")
@click.option("--once", is_flag=True, help="One sweep and one poll, then exit (cron).")
def bridge(
    graph_target: str | None,
    checkpointer: str | None,
    langgraph_url: str | None,
    assistant_id: str | None,
    policies_target: str | None,
    ledger: str,
    loop_id: str | None,
    workflow: str | None,
    callback_url: str | None,
    signing_secret: str | None,
    host: str,
    port: int,
    sweep_interval: float,
    poll_interval: float,
    no_poll: bool,
    once: bool,
) -> None:
    """Give a HumanInTheLoopMiddleware agent reviewers on HITL.sh (sweep + receiver + poller)."""
    from .._client import HITLClient
    from .._config import CallbackConfig
    from .._exceptions import HITLError
    from .._extras import MissingExtraError, require
    from ..gate import Gatekeeper

    if bool(loop_id) == bool(workflow):
        raise click.UsageError(
            "pass --loop-id (HITL_LOOP_ID) or --workflow (HITL_WORKFLOW), not both"
        )
    if (graph_target is None) == (langgraph_url is None):
        raise click.UsageError("pass either --graph (with --checkpointer) or --langgraph-url")
    if langgraph_url is not None and not assistant_id:
        raise click.UsageError("--langgraph-url needs --assistant-id")
    policies = _policies(policies_target) if policies_target else None
    if not once:
        # Serving callbacks needs the web server: say so before loading or sweeping anything.
        try:
            require("server", "hitl-agent bridge (serving callbacks)", "uvicorn", "starlette")
        except MissingExtraError as err:
            raise click.ClickException(str(err)) from None
    try:
        with HITLClient() as client, _graph(graph_target, checkpointer) as graph:
            keeper = Gatekeeper(
                client=client,
                loop_id=loop_id,
                workflow=workflow,
                ledger=ledger,
                callbacks=CallbackConfig(
                    callback_url,
                    os.environ.get("HITL_CALLBACK_SECRET"),
                    signing_secret=signing_secret,
                ),
            )
            with keeper:
                served = (
                    keeper.bridge(graph, policies=policies)
                    if graph is not None
                    else keeper.bridge(
                        langgraph_url=langgraph_url, assistant_id=assistant_id, policies=policies
                    )
                )
                dispatcher = keeper.dispatcher(served.resumer, poll_interval=poll_interval)
                if once:
                    rows = served.sweep()
                    delivered = dispatcher.poll_once()
                    click.echo(
                        f"{len(rows)} action(s) pending review, resumed {len(delivered)} review(s)"
                    )
                    return
                click.echo(f"bridge on http://{host}:{port}{dispatcher.receiver.path}/<token>")
                asyncio.run(_serve(dispatcher, served, host, port, not no_poll, sweep_interval))
    except HITLError as err:
        raise click.ClickException(str(err)) from err
