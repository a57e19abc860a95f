"""``hitl-agent demo``: the whole product, offline, in a few seconds.

A support agent (a scripted chat model standing in for an LLM) wants to refund order 1234. Its
``refund`` tool is wrapped in one line, ``keeper.require_approval(refund)``, so a human decides
first. The demo runs, for real and on loopback only:

* the embedded HITL server (SQLite, reviewer API, console, callbacks);
* a LangGraph agent with a SQLite checkpointer, suspended durably at the review;
* the dispatcher's webhook receiver, which resumes exactly the waiting thread;
* a reviewer who approves (``--reject``: rejects) — scripted by default, or you with
  ``--interactive``, in the reviewer console or ``hitl-agent review`` in another terminal.

``--bridge`` tells the same story through an unchanged LangChain ``create_agent`` with
``HumanInTheLoopMiddleware``, whose interrupts ``keeper.bridge(agent)`` sends to reviewers.
Each step prints how long after the start it happened. Nothing waits in memory while a review
is open: the thread is a checkpoint row and a ledger row.
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
from typing import Any

import click
import httpx2
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from .. import Gatekeeper, HITLClient
from ..dispatch import Resumer
from ..langgraph import GraphResumer
from ..langgraph.pregel import has_work
from ..protocol import read_payload
from ..server import create_app

__all__ = ["demo"]

_ORDER, _AMOUNT = "1234", 250
_STORY = "Order 1234 arrived broken; the customer sent a photo and asks for $250 back."


def _listen() -> socket.socket:
    """A listening loopback socket on a free port, bound now so no other process can take the
    port between choosing it and serving on it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # A pre-bound socket misses asyncio's TCP_NODELAY: without it each loopback call waits
    # ~40 ms for delayed ACKs.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@contextlib.contextmanager
def _serve(app: Any, sock: socket.socket) -> Iterator[None]:
    """Run an ASGI app with uvicorn on ``sock`` (see :func:`_listen`) until the block ends."""
    import uvicorn

    from ..server._app import UVICORN_OPTIONS

    port = sock.getsockname()[1]
    # The served app's options: lifespan on, no access log (callback paths carry capability
    # tokens), and no uvicorn Date header on top of the app's own (one Date per response).
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", **UVICORN_OPTIONS))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn:{port}", daemon=True
    )
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
                "CREATE TABLE IF NOT EXISTS refunds (order_id TEXT PRIMARY KEY, amount INTEGER)"
            )

    def issue(self, order_id: str, amount: int) -> None:
        # Keyed by order: if a crash re-runs the approved tool on recovery (at least once),
        # the repeat is a no-op here.
        with contextlib.closing(sqlite3.connect(self.path)) as db, db:
            db.execute("INSERT OR IGNORE INTO refunds VALUES (?, ?)", (order_id, amount))

    def issued(self) -> list[tuple[str, int]]:
        with contextlib.closing(sqlite3.connect(self.path)) as db:
            rows = db.execute("SELECT order_id, amount FROM refunds ORDER BY rowid")
            return [(row[0], row[1]) for row in rows]


class _ScriptedModel(GenericFakeChatModel):
    """Stands in for an LLM: ``create_agent`` binds tools, which a script has no use for."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


def _script() -> GenericFakeChatModel:
    """The scripted model: it proposes the refund, then reports what the tool said."""
    call = {"name": "refund", "args": {"order_id": _ORDER, "amount": _AMOUNT}, "id": "call_1"}
    messages = [
        AIMessage(content="", tool_calls=[call]),
        AIMessage(content="I have handled the refund request for order 1234."),
    ]
    return _ScriptedModel(messages=iter(messages))


def _refund_tool(refunds: _Refunds) -> Any:
    @tool
    def refund(order_id: str, amount: int) -> str:
        """Refund an order to the customer's card."""
        refunds.issue(order_id, amount)
        return f"Refund of ${amount:,} issued for order {order_id}."

    return refund


def _wrapped_agent(keeper: Gatekeeper, refunds: _Refunds, checkpointer: Any) -> Any:
    """A LangGraph agent whose refund tool is ``keeper.require_approval(refund)``."""
    safe_refund = keeper.require_approval(_refund_tool(refunds))  # the one line
    model = _script()

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([safe_refund]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


def _middleware_agent(refunds: _Refunds, checkpointer: Any) -> Any:
    """An unchanged LangChain agent with HumanInTheLoopMiddleware on its refund tool."""
    try:
        from langchain.agents import create_agent
        from langchain.agents.middleware import HumanInTheLoopMiddleware
    except ImportError:
        raise click.ClickException(
            "--bridge needs LangChain: pip install 'hitl-agent[langchain]'"
        ) from None
    return create_agent(
        _script(),
        tools=[_refund_tool(refunds)],
        middleware=[HumanInTheLoopMiddleware(interrupt_on={"refund": True})],
        checkpointer=checkpointer,
    )


class _Clock:
    """Prints each step with the seconds since the story started."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def step(self, text: str) -> None:
        click.echo(f"[{time.perf_counter() - self.start:6.2f} s] {text}")

    @staticmethod
    def more(text: str) -> None:
        click.echo(f"           {text}")


def _wait(check: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise click.ClickException(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.01)


class _Reviewer:
    """The reviewer API of the local server, as the console and `hitl-agent review` use it."""

    def __init__(self, base_url: str, token: str) -> None:
        self.http = httpx2.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    def close(self) -> None:
        self.http.close()

    def get(self, request_id: str) -> dict[str, Any]:
        response = self.http.get(f"/reviewer/requests/{request_id}")
        response.raise_for_status()
        data: dict[str, Any] = response.json()["data"]
        return dict(data.get("request") or data)

    def answer(self, request_id: str, value: Any) -> None:
        self.http.post(f"/reviewer/requests/{request_id}/claim").raise_for_status()
        body = {"response_data": value}
        self.http.post(f"/reviewer/requests/{request_id}/respond", json=body).raise_for_status()


def _show_request(item: dict[str, Any]) -> None:
    _Clock.more("the reviewer sees:")
    for line in str(item.get("request_text", "")).splitlines():
        _Clock.more(f"  │ {line}")
    config = item.get("response_config") or {}
    labels = [
        str(option.get("label", option.get("value")) if isinstance(option, dict) else option)
        for option in config.get("options") or []
    ]
    if labels:
        _Clock.more("  │ choices: " + " · ".join(labels))


def _approve_value(item: dict[str, Any], approve: bool) -> Any:
    """The option a reviewer picks to approve or reject, by value (never by label)."""
    config = item.get("response_config") or {}
    values = [
        str(option.get("value")) if isinstance(option, dict) else str(option)
        for option in config.get("options") or []
    ]
    wanted = ("approve", "accept") if approve else ("reject",)
    for value in values:
        if value.lower() in wanted:
            return value
    if item.get("response_type") == "boolean":
        return approve
    draft = str(config.get("draft_text") or "")
    if item.get("response_type") == "editable_text" and draft.startswith("decision:"):
        # The bridge's form: the reviewer keeps one word on the decision line.
        first, _, rest = draft.partition("\n")
        word = "approve" if approve else "reject"
        if word in first:
            return {"revised_text": f"decision: {word}\n{rest}"}
    raise click.ClickException(f"no {'approve' if approve else 'reject'} option in {values}")


@click.command()
@click.option("--reject", is_flag=True, help="The reviewer rejects: see the safe path.")
@click.option(
    "--interactive",
    is_flag=True,
    help="Answer the review yourself (reviewer console or `hitl-agent review`).",
)
@click.option(
    "--bridge",
    is_flag=True,
    help="Tell the story with an unchanged HumanInTheLoopMiddleware agent and keeper.bridge().",
)
@click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the databases here (default: a temporary directory, removed afterwards).",
)
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait per step.")
def demo(
    reject: bool, interactive: bool, bridge: bool, workdir: Path | None, timeout: float
) -> None:
    """Run an agent whose refund tool needs a human's approval, offline."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hitl-demo-")))
        workdir.mkdir(parents=True, exist_ok=True)
        _run(stack, workdir, reject=reject, interactive=interactive, bridge=bridge, timeout=timeout)


def _run(
    stack: contextlib.ExitStack,
    workdir: Path,
    *,
    reject: bool,
    interactive: bool,
    bridge: bool,
    timeout: float,
) -> None:
    clock = _Clock()
    hitl_sock, receiver_sock = _listen(), _listen()
    stack.callback(hitl_sock.close)
    stack.callback(receiver_sock.close)
    hitl_port, receiver_port = hitl_sock.getsockname()[1], receiver_sock.getsockname()[1]
    app = create_app(workdir / "hitl-server.db", scheduler_interval=0.05, callback_base_delay=0.05)
    stack.callback(app.state.hitl.close)
    credentials = app.state.hitl.bootstrap()
    base_url = f"http://127.0.0.1:{hitl_port}/v1"
    stack.enter_context(_serve(app, hitl_sock))
    clock.step(f"local HITL server {base_url}  (console http://127.0.0.1:{hitl_port}/console/)")

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
    saver = SqliteSaver(checkpoints)
    if bridge:
        graph = _middleware_agent(refunds, saver)
        middleware = keeper.bridge(graph)
        resumer: Resumer = middleware.resumer
        shape = "create_agent + HumanInTheLoopMiddleware(interrupt_on={'refund': True})"
    else:
        graph = _wrapped_agent(keeper, refunds, saver)
        resumer = GraphResumer(graph)
        shape = "ToolNode([keeper.require_approval(refund)])"
    dispatcher = keeper.dispatcher(resumer)
    stack.enter_context(_serve(dispatcher.asgi_app, receiver_sock))
    clock.step(f"webhook receiver http://127.0.0.1:{receiver_port}/hitl/<token>; agent: {shape}")

    config: Any = {"configurable": {"thread_id": f"refund-{_ORDER}"}}
    click.echo(f"\n-- Customer: {_STORY}")
    result = graph.invoke({"messages": [("user", f"Refund order {_ORDER}")]}, config)
    interrupts = result.get("__interrupt__") or ()
    if not interrupts:
        raise click.ClickException("the agent finished without asking for a review")
    if bridge:
        middleware.submit(config)
    request_id = _request_of(keeper, config, interrupts)
    clock.step(f"agent calls refund(order_id={_ORDER!r}, amount={_AMOUNT}) → review {request_id}")
    snapshot = graph.get_state(config)
    clock.more(
        f"graph suspended: thread {config['configurable']['thread_id']} waits at "
        f"{list(snapshot.next)} — a checkpoint row and a ledger row, no process waiting"
    )
    reviewer = _Reviewer(base_url, credentials.reviewer_token)
    stack.callback(reviewer.close)
    item = reviewer.get(request_id)
    _show_request(item)

    accepted = dispatcher.receiver.accepted
    if interactive:
        clock.step("your turn: answer in the console or in another terminal:")
        clock.more(
            f"console http://127.0.0.1:{hitl_port}/console/  token {credentials.reviewer_token}"
        )
        clock.more(f"hitl-agent review --base-url {base_url} --token {credentials.reviewer_token}")
    else:
        value = _approve_value(item, approve=not reject)
        reviewer.answer(request_id, value)
        shown = value["revised_text"].partition("\n")[0] if isinstance(value, dict) else value
        clock.step(f"reviewer answers {shown!r} (scripted; --interactive to answer yourself)")

    _wait(lambda: dispatcher.receiver.accepted > accepted, "the callback", timeout)
    clock.step("webhook received (token checked) → GET the request (truth) → ledger claim")
    _wait(lambda: not has_work(graph.get_state(config)), "the graph to resume", timeout)
    clock.step("graph resumed and finished")

    def closed() -> bool:
        row = keeper.ledger.get_by_request_id(request_id)
        return row is not None and row.state == "resumed"

    _wait(closed, "the ledger row to close", timeout)
    clock.more("ledger row: resumed (one resume for this decision, claimed before it ran)")
    final = graph.get_state(config).values["messages"]
    tool_message = next(m for m in reversed(final) if m.type == "tool")
    status = getattr(tool_message, "status", "success")
    clock.more(f"tool result ({status}): {tool_message.content}")

    issued = refunds.issued()
    created = client.requests.list(loop_id=credentials.loop_id).total
    click.echo(f"\nRefunds issued: {issued}  ·  review requests created: {created}")
    if issued:
        click.echo("The refund ran once, with exactly the arguments the reviewer approved.")
    else:
        click.echo("Nothing ran: only an explicit approval runs the refund.")


def _request_of(keeper: Gatekeeper, config: Any, interrupts: Any) -> str:
    """The review request behind the thread's interrupt (the gate's stamp, or the bridge's row)."""
    for interrupt in interrupts:
        stamp = read_payload(interrupt.value)
        if stamp is not None:
            return str(stamp["request_id"])
    thread_id = config["configurable"]["thread_id"]
    for row in keeper.ledger.list_open(limit=100):
        if row.thread_id == thread_id and row.request_id is not None:
            return row.request_id
    raise click.ClickException("no review request was created for the thread")
