"""``hitl-agent demo``: the whole product, offline, in about ten seconds.

A support agent (a scripted chat model standing in for an LLM) wants to issue two refunds.
Its ``refund`` tool asks a human first. The demo runs, for real and on loopback only:

* the embedded HITL server (SQLite, reviewer API, console, callbacks);
* a LangGraph graph with a SQLite checkpointer, suspended durably at each review;
* the dispatcher's webhook receiver, which resumes exactly the waiting thread;
* a reviewer who approves the first refund and rejects the second — scripted by default,
  or you, in the reviewer console, with ``--interactive``.

Nothing waits in memory while a review is open: the graph is a checkpoint row and a ledger row.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import click
import httpx
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import InjectedToolCallId, tool
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from .. import Gatekeeper, HITLClient
from ..langgraph import GraphResumer
from ..server import create_app

__all__ = ["demo"]

_REFUNDS = (
    ("1234", 250, "approve", "Order 1234 arrived broken; photo attached."),
    ("5678", 9000, "reject", "Customer asks for a refund of the whole year's orders."),
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _serve(app: Any, port: int) -> Iterator[None]:
    """Run an ASGI app with uvicorn on 127.0.0.1:port in a thread until the block ends."""
    import uvicorn

    server = uvicorn.Server(
        # No access log: the receiver's paths carry capability tokens (they are also
        # redacted by a filter on uvicorn.access, for apps served with uvicorn's defaults).
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, name=f"uvicorn:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise click.ClickException(f"the demo server on port {port} did not start")
        time.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class _Refunds:
    """The refunds that really ran: a table, so 'ran exactly once' is something to count."""

    path: Path

    def __post_init__(self) -> None:
        with contextlib.closing(sqlite3.connect(self.path)) as db, db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS refunds "
                "(idempotency_key TEXT PRIMARY KEY, order_id TEXT, amount INTEGER)"
            )

    def issue(self, idempotency_key: str, order_id: str, amount: int) -> None:
        # A crash after the refund but before LangGraph's checkpoint re-runs the tool on
        # recovery; the decision's idempotency key makes that second refund a no-op.
        with contextlib.closing(sqlite3.connect(self.path)) as db, db:
            row = (idempotency_key, order_id, amount)
            db.execute("INSERT OR IGNORE INTO refunds VALUES (?, ?, ?)", row)

    def issued(self) -> list[tuple[str, int]]:
        with contextlib.closing(sqlite3.connect(self.path)) as db:
            rows = db.execute("SELECT order_id, amount FROM refunds ORDER BY rowid")
            return [(row[0], row[1]) for row in rows]


def _build_graph(keeper: Any, refunds: _Refunds, checkpointer: Any) -> Any:
    script: list[AIMessage] = []
    for order_id, amount, _, _ in _REFUNDS:
        script.append(
            AIMessage(
                content="",
                tool_calls=[
                    {
                        "name": "refund",
                        "args": {"order_id": order_id, "amount": amount},
                        "id": f"call_refund_{order_id}",
                    }
                ],
            )
        )
        script.append(AIMessage(content=f"Done with order {order_id}."))
    # The scripted model plays an LLM: it proposes each refund, then reports back.
    model = GenericFakeChatModel(messages=iter(script))

    @tool
    def refund(order_id: str, amount: int, tool_call_id: Annotated[str, InjectedToolCallId]) -> str:
        """Refund an order. A human must approve it first."""
        decision = keeper.review(
            f"**Refund ${amount:,}** for order `{order_id}`?",
            response_type="single_select",
            response_config={"options": ["Approve", "Reject"]},
            default_response="reject",
            priority="high" if amount >= 1000 else "medium",
            context={"order_id": order_id, "amount": amount},
            tool_call_id=tool_call_id,
        )
        if not decision.approved:
            return f"Refund NOT issued: {decision.reason}"
        refunds.issue(decision.idempotency_key, order_id, amount)
        return f"Refund of ${amount:,} issued for order {order_id}."

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([refund]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


def _wait(check: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise click.ClickException(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def _finished(graph: Any, config: Any) -> Callable[[], bool]:
    return lambda: not graph.get_state(config).next


def _review_as_script(base_url: str, token: str, request_id: str, answer: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as reviewer:
        reviewer.post(f"/reviewer/requests/{request_id}/claim").raise_for_status()
        body = {"response_data": answer}
        reviewer.post(f"/reviewer/requests/{request_id}/respond", json=body).raise_for_status()


@click.command()
@click.option(
    "--interactive",
    is_flag=True,
    help="Answer the reviews yourself in the reviewer console instead of the scripted reviewer.",
)
@click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the databases here (default: a temporary directory, removed afterwards).",
)
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait per step.")
def demo(interactive: bool, workdir: Path | None, timeout: float) -> None:
    """Run an agent whose refund tool needs a human's approval, offline."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hitl-demo-")))
        workdir.mkdir(parents=True, exist_ok=True)
        _run(stack, workdir, interactive, timeout)


def _run(stack: contextlib.ExitStack, workdir: Path, interactive: bool, timeout: float) -> None:
    say = click.echo
    hitl_port, receiver_port = _free_port(), _free_port()
    app = create_app(workdir / "hitl-server.db", scheduler_interval=0.1, callback_base_delay=0.2)
    stack.callback(app.state.hitl.close)
    credentials = app.state.hitl.bootstrap()
    base_url = f"http://127.0.0.1:{hitl_port}/v1"
    stack.enter_context(_serve(app, hitl_port))
    say(f"1. Local HITL server   {base_url}  (console: http://127.0.0.1:{hitl_port}/console/)")

    client = stack.enter_context(HITLClient(credentials.api_key, base_url=base_url))
    keeper = stack.enter_context(
        Gatekeeper(
            client=client,
            loop_id=credentials.loop_id,
            ledger=f"sqlite:///{workdir / 'ledger.db'}",
            callback_url=f"http://127.0.0.1:{receiver_port}/hitl",
            callback_secret=secrets.token_urlsafe(32),
        )
    )
    checkpoints = sqlite3.connect(workdir / "checkpoints.db", check_same_thread=False)
    stack.callback(checkpoints.close)
    refunds = _Refunds(workdir / "refunds.db")
    graph = _build_graph(keeper, refunds, SqliteSaver(checkpoints))
    dispatcher = keeper.dispatcher(GraphResumer(graph))
    stack.enter_context(_serve(dispatcher.asgi_app, receiver_port))
    say(f"2. Webhook receiver    http://127.0.0.1:{receiver_port}/hitl/<token>")
    if interactive:
        say(f"   Reviewer token: {credentials.reviewer_token}  (paste it into the console)")

    for order_id, amount, answer, story in _REFUNDS:
        config: Any = {"configurable": {"thread_id": f"refund-{order_id}"}}
        say(f"\n-- Customer: {story}")
        result = graph.invoke({"messages": [("user", f"Refund order {order_id}")]}, config)
        pending = result.get("__interrupt__") or ()
        if not pending:
            raise click.ClickException("the agent finished without asking for a review")
        stamp = pending[0].value["hitl_agent"]
        request_id = stamp["request_id"]
        say(f"3. Agent proposes refund(order_id={order_id!r}, amount={amount})")
        say(f"   review {request_id} created; graph suspended in its checkpoint")
        if interactive:
            say(f"   >>> open the console and answer it (waiting up to {timeout:.0f} s)")
        else:
            _review_as_script(base_url, credentials.reviewer_token, request_id, answer)
            say(f"4. Reviewer answers {answer!r} (scripted; --interactive to do it yourself)")
        _wait(_finished(graph, config), "the graph to resume", timeout)
        final = graph.get_state(config).values["messages"]
        tool_result = next(m.content for m in reversed(final) if m.type == "tool")
        row = keeper.ledger.get_by_request_id(request_id)
        state = row.state if row is not None else "missing"
        say(f"5. Callback -> receiver -> GET (truth) -> claim -> resume; ledger row: {state}")
        say(f"   tool said: {tool_result}")

    issued = refunds.issued()
    created = client.requests.list(loop_id=credentials.loop_id).total
    say(f"\nRefunds issued: {issued}  ·  review requests created: {created}")
    say("Only the approved refund ran; the rejected one never did.")
