"""The agent and worker processes of the crash matrix (T1), and what they share with the tests.

A child process runs one *role* against a :class:`Store` (ledger + checkpointer + the action's
effects table, on SQLite files or in one PostgreSQL schema) and the local HITL server:

* ``start``: the agent. Starts the thread, or, restarted after *its own* crash, continues the
  run it was in (``invoke(None)`` when a task is pending without an interrupt: LangGraph's
  documented restart of a crashed run; the agent's job, since nothing else can tell a dead
  agent from a slow one before its interrupt is durable).
* ``worker``: the dispatcher, one pass: a poll sweep, or the callback of every open row posted
  to its own receiver (the webhook path, through the ASGI app).
* ``recover``: a restarted worker and nothing else: ``keeper.dispatcher(GraphResumer(graph))``
  sweeps until the thread is finished (at most ``MAX_SWEEPS``); writes how many sweeps it took.
  The harness never invokes the graph to help a recovery: a thread that a crashed worker left
  half-way is the dispatcher's to finish (C1).

A crash point kills the process with SIGKILL when reached: the gate's and the resolver's named
points (``hitl_agent._hooks.set_hook``) plus these of the harness:

* ``client.after_create_sent``: the create POST was processed by the server, its response not
  yet seen by the gate (a transport that dies after the round trip);
* ``agent.after_interrupt``: the thread is parked and checkpointed, the agent dies before exit;
* ``action.before_execute``: the resume ran the gate's step (checkpointed) and the process dies
  as the next node, ``act``, starts: the interrupt is consumed and the thread stops short of
  its action (the C1 window);
* ``action.after_execute``: the approved action committed its effect row; the process dies
  before the node returns, so the checkpoint after the action is never written (window (c)).

The execution points run a second graph, the README's shape (issue 19): an agent node emits one
tool call, ``hitl_agent.langgraph.tools_condition`` routes it to a ``ToolNode`` holding
``keeper.require_approval(refund)``; the wrapper records each approved call's execution in the
ledger (started, then its outcome), so no re-run of the task runs the refund again:

* ``execution.after_start``: the start is recorded, the refund has not run: recovery must not
  run it (the call ends *in doubt*, 0 effects);
* ``execution.after_action``: the refund committed its effect row, its outcome is not recorded:
  recovery must not run it again (in doubt, 1 effect; window (c) closed for wrapped tools);
* ``tool.raises_after_effect``: no crash: the refund commits its effect, then raises (a payment
  API charged the card, then reading the receipt timed out); the failed resume is retried and
  must report the failure, not charge again (1 effect, execution ``failed``).

The policy cells (issue 23 item 3) run the first graph with ``keeper.review(..., quorum=2)``:
two stages, each its own ledger row and request, the second asked by the run that resumes the
first's decision. A point is then aimed at one stage (``crash_stage``): the hook counts the
stages decided so far in the node's run (``policy.after_stage_decided``), so a replay of
stage 1 in the run that resumes stage 2 does not die in stage 1's place. The gate points of
stage 2 are reached in the worker that resumes stage 1 (``agent.after_interrupt`` there: the
worker dies after its pass), and ``policy.after_stage_decided`` sits between the stages.

Every module this file imports is preloaded by the forkserver, so a child costs a fork.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import httpx
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph

from hitl_agent import HITLClient, RetryPolicy
from hitl_agent._hooks import set_hook
from hitl_agent._tokens import derive_token
from hitl_agent.decision import Decision
from hitl_agent.gate import Gatekeeper
from hitl_agent.langgraph import GraphResumer
from hitl_agent.ledger import Ledger, SqliteLedger

try:  # preloaded when installed; the postgres legs skip without it
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg import sql
    from psycopg.rows import dict_row

    from hitl_agent.ledger import PostgresLedger
except ImportError:  # pragma: no cover - the postgres extra is missing
    psycopg = None  # type: ignore[assignment]

PG_URL = os.environ.get("HITL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
CALLBACK_URL = "http://127.0.0.1:9/hitl"  # nothing listens: the tests deliver callbacks
SECRET = "reliability-callback-secret-0123456789abcdef"
LEASE = 300.0
MAX_SWEEPS = 5

GATE_POINTS = (
    "gate.after_intent",
    "gate.before_create",
    "client.after_create_sent",
    "gate.after_create",
    "gate.after_mark_created",
    "gate.before_interrupt",
    "agent.after_interrupt",
)
RESUME_POINTS = (
    "resolver.after_fetch",
    "resolver.after_record_decision",
    "resolver.after_claim",
    "gate.before_interrupt@resume",  # the gate node replaying inside the resume run
    "action.before_execute",
    "action.after_execute",
    "resolver.after_resume",
)
TOOL_POINTS = (
    "execution.after_start",
    "execution.after_action",
    "tool.raises_after_effect",
)
POINTS = GATE_POINTS + RESUME_POINTS + TOOL_POINTS
BETWEEN_STAGES = "policy.after_stage_decided"
# The policy cells: (point, stage). Stage 1's act never runs before stage 2 is asked, so its
# action points belong to stage 2 only.
POLICY_POINTS = tuple(
    (point, 1)
    for point in GATE_POINTS + RESUME_POINTS[:4] + (BETWEEN_STAGES, "resolver.after_resume")
) + tuple(
    (point, 2) for point in GATE_POINTS + RESUME_POINTS[:4] + (BETWEEN_STAGES,) + RESUME_POINTS[4:]
)
WINDOW_C = "action.after_execute"
RAISES = "tool.raises_after_effect"
IN_ACT = ("action.before_execute", WINDOW_C)  # reached only once the gate's step is saved
PRELOAD = (
    "httpx",
    "langchain_core.runnables",
    "langgraph.graph",
    "langgraph.checkpoint.sqlite",
    "langgraph.checkpoint.postgres",
    "psycopg",
    "psycopg_pool",
    "hitl_agent.gate",
    "hitl_agent.langgraph",
    "hitl_agent.ledger",
    "langchain_core.tools",
    "langgraph.prebuilt",
)


def die() -> None:
    """A hard crash: no finally blocks, no flushes, no connection closes."""
    os.kill(os.getpid(), signal.SIGKILL)


# -- storage ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Store:
    """Where one backend keeps ledger, checkpoints and effects (picklable)."""

    backend: str  # "sqlite" | "postgres"
    root: str  # sqlite: a directory; postgres: a schema name

    @property
    def pg_conninfo(self) -> str:
        sep = "&" if "?" in PG_URL else "?"
        return f"{PG_URL}{sep}options=-csearch_path%3D{self.root}"

    def ledger(self, max_size: int = 4, clock: Callable[[], float] | None = None) -> Ledger:
        """The store's ledger; ``clock`` stands in for the ledger's own (time moved on for
        the whole system, not only for one process: leases are judged on the ledger's)."""
        if self.backend == "sqlite":
            if clock is None:
                return SqliteLedger(Path(self.root) / "ledger.db")
            return SqliteLedger(Path(self.root) / "ledger.db", clock=clock)
        return PostgresLedger(PG_URL, schema=self.root, min_size=1, max_size=max_size, clock=clock)

    def saver(self) -> tuple[Any, Any]:
        """(connection, checkpointer); close the connection when done."""
        if self.backend == "sqlite":
            from langgraph.checkpoint.sqlite import SqliteSaver

            conn = sqlite3.connect(
                Path(self.root) / "checkpoints.db", check_same_thread=False, timeout=30
            )
            return conn, SqliteSaver(conn)
        conn = psycopg.connect(
            self.pg_conninfo, autocommit=True, prepare_threshold=0, row_factory=dict_row
        )
        return conn, PostgresSaver(conn)

    def effects(self) -> Effects:
        return Effects(self)

    def setup(self) -> None:
        if self.backend == "postgres":
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.root)))
        ledger = self.ledger()
        try:
            ledger.setup()
        finally:
            ledger.close()
        conn, saver = self.saver()
        try:
            saver.setup()
        finally:
            conn.close()
        self.effects().setup()

    def drop(self) -> None:
        if self.backend == "postgres":
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.root))
                )


class Effects:
    """The action's durable side effects: one row per execution, committed at once."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _sqlite(self) -> sqlite3.Connection:
        conn = sqlite3.connect(Path(self.store.root) / "effects.db", timeout=30)
        conn.isolation_level = None  # autocommit: a row is durable when execute returns
        return conn

    def setup(self) -> None:
        ddl = (
            "CREATE TABLE IF NOT EXISTS effects (thread_id TEXT NOT NULL, request_id TEXT, "
            "approved INTEGER NOT NULL, pid INTEGER NOT NULL, at DOUBLE PRECISION NOT NULL)"
        )
        if self.store.backend == "sqlite":
            conn = self._sqlite()
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(ddl)
            finally:
                conn.close()
        else:
            with psycopg.connect(self.store.pg_conninfo, autocommit=True) as conn:
                conn.execute(ddl)

    def record(self, thread_id: str, request_id: str | None, approved: bool) -> None:
        row = (thread_id, request_id, int(approved), os.getpid(), time.time())
        if self.store.backend == "sqlite":
            conn = self._sqlite()
            try:
                conn.execute("INSERT INTO effects VALUES (?, ?, ?, ?, ?)", row)
            finally:
                conn.close()
        else:
            with psycopg.connect(self.store.pg_conninfo, autocommit=True) as conn:
                conn.execute("INSERT INTO effects VALUES (%s, %s, %s, %s, %s)", row)

    def executed(self, request_id: str) -> bool:
        """Whether an effect for ``request_id`` exists (the idempotent action's check)."""
        return any(r[1] == request_id for r in self.rows())

    def rows(self, thread_id: str | None = None) -> list[tuple[Any, ...]]:
        if self.store.backend == "sqlite":
            conn = self._sqlite()
            try:
                if thread_id is None:
                    return list(conn.execute("SELECT * FROM effects"))
                return list(conn.execute("SELECT * FROM effects WHERE thread_id = ?", (thread_id,)))
            finally:
                conn.close()
        with psycopg.connect(self.store.pg_conninfo, autocommit=True) as conn:
            if thread_id is None:
                return [tuple(r) for r in conn.execute("SELECT * FROM effects")]
            cur = conn.execute("SELECT * FROM effects WHERE thread_id = %s", (thread_id,))
            return [tuple(r) for r in cur]


# -- the graph ----------------------------------------------------------------------------


class State(TypedDict, total=False):
    amount: int
    decision: dict[str, Any]
    done: bool


def build_graph(
    keeper: Gatekeeper | None,
    saver: Any,
    effects: Effects,
    *,
    crash_point: str | None = None,
    idempotent: bool = False,
    quorum: int | None = None,
) -> Any:
    """START -> gate (a review, under ``quorum`` when set) -> act (records an effect row when
    approved) -> END."""

    def gate(state: State) -> dict[str, Any]:
        assert keeper is not None, "this graph only reads state"
        _DECIDED[0] = 0  # every run of the node asks (or replays) its stages from the first
        decision = keeper.review(
            f"Refund ${state['amount']}?",
            response_type="single_select",
            response_config={"options": ["Approve", "Reject"]},
            default_response="reject",
            quorum=quorum,
        )
        return {"decision": decision.model_dump(mode="json")}

    def act(state: State, config: RunnableConfig) -> dict[str, Any]:
        if crash_point == "action.before_execute":
            die()
        decision = Decision.model_validate(state["decision"])
        if decision.approved:
            thread_id = config["configurable"]["thread_id"]
            if not (idempotent and effects.executed(decision.request_id)):
                effects.record(thread_id, decision.request_id, decision.approved)
            if crash_point == "action.after_execute":
                die()
        return {"done": True}

    builder = StateGraph(State)
    builder.add_node("gate", gate)
    builder.add_node("act", act)
    builder.add_edge(START, "gate")
    builder.add_edge("gate", "act")
    builder.add_edge("act", END)
    return builder.compile(checkpointer=saver)


# Stages of the policy decided so far in the gate node's current run (one node runs at a time
# in a child process): the crash hook's way to tell stage 1's points from stage 2's.
_DECIDED = [0]


def tool_call_id(thread_id: str) -> str:
    return f"call-{thread_id}"


def build_tool_graph(
    keeper: Gatekeeper | None, saver: Any, effects: Effects, *, crash_point: str | None = None
) -> Any:
    """START -> agent (one AIMessage: refund(thread)) -> tools (ToolNode with the wrapped
    refund, routed by hitl_agent's tools_condition) -> END."""
    from langchain_core.messages import AIMessage
    from langchain_core.tools import tool
    from langgraph.graph import MessagesState
    from langgraph.prebuilt import ToolNode

    from hitl_agent.langchain import approved_call
    from hitl_agent.langgraph import tools_condition

    @tool
    def refund(thread: str, amount: int) -> str:
        """Refund an order."""
        approval = approved_call()
        effects.record(thread, approval.request_id if approval else None, approval is not None)
        if crash_point == RAISES:
            raise TimeoutError("reading the receipt timed out")
        return f"refunded {amount}"

    def agent(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
        if state["messages"]:
            return {}
        thread_id = config["configurable"]["thread_id"]
        call = {
            "name": "refund",
            "args": {"thread": thread_id, "amount": 1},
            "id": tool_call_id(thread_id),
        }
        return {"messages": [AIMessage("", tool_calls=[call], id=f"turn-{thread_id}")]}

    tools = [keeper.require_approval(refund)] if keeper is not None else [refund]
    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode(tools))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition, ["tools", END])
    builder.add_edge("tools", END)
    return builder.compile(checkpointer=saver)


def read_tool_outcome(store: Store, thread_id: str) -> dict[str, Any]:
    """The tool graph's final state: finished, and the refund's ToolMessage."""
    conn, saver = store.saver()
    try:
        graph = build_tool_graph(None, saver, store.effects())
        snap = graph.get_state(thread_config(thread_id))
        messages = [m for m in snap.values.get("messages", []) if m.type == "tool"]
        return {
            "exists": snap.created_at is not None,
            "unfinished": unfinished(snap),
            "interrupts": len(snap.interrupts),
            "tool_messages": [{"status": m.status, "content": str(m.content)} for m in messages],
        }
    finally:
        conn.close()


def thread_config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


def unfinished(snap: Any) -> bool:
    """Whether a thread still has work: a finished thread's last checkpoint has no tasks.

    ``next`` alone is not enough: when a crash lost the checkpoint after a step whose task
    writes were saved (``durability="async"``), ``next`` is empty but the task is still there.
    """
    return bool(snap.next or snap.tasks)


def agent_step(
    graph: Any, thread_id: str, amount: int, durability: str, shape: str = "gate"
) -> str:
    """What a (re)started agent does with its thread; returns what it did."""
    config = thread_config(thread_id)
    snap = graph.get_state(config)
    if snap.created_at is None:
        first = {"messages": []} if shape == "tool" else {"amount": amount}
        graph.invoke(first, config, durability=durability)
        return "started"
    if unfinished(snap) and not snap.interrupts:
        graph.invoke(None, config, durability=durability)  # continue the crashed run
        return "continued"
    return "idle"


def read_outcome(store: Store, thread_id: str) -> dict[str, Any]:
    """The thread's final state as the checkpointer has it."""
    conn, saver = store.saver()
    try:
        graph = build_graph(None, saver, store.effects())
        snap = graph.get_state(thread_config(thread_id))
        return {
            "exists": snap.created_at is not None,
            "next": list(snap.next),
            "unfinished": unfinished(snap),
            "tasks": [task.name for task in snap.tasks],
            "interrupts": len(snap.interrupts),
            "decision": snap.values.get("decision"),
            "done": bool(snap.values.get("done")),
        }
    finally:
        conn.close()


# -- the child process --------------------------------------------------------------------


@dataclass(frozen=True)
class AgentConfig:
    store: Store
    base_url: str
    api_key: str
    loop_id: str
    durability: str = "sync"
    idempotent: bool = False
    break_reconcile: bool = False  # canary: the gate forgets to reconcile an unfinished intent
    shape: str = "gate"  # "gate": gate -> act; "tool": the README's ToolNode + require_approval
    quorum: int | None = None  # the gate graph's review under quorum (the policy cells)


class _DieAfterCreate(httpx.BaseTransport):
    """Dies once the create POST has round-tripped (the server has the request)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST" and request.url.path.endswith("/requests"):
            die()
        return response

    def close(self) -> None:
        self.inner.close()


def child_main(
    cfg: AgentConfig,
    role: str,
    thread_id: str,
    *,
    amount: int = 1,
    crash_point: str | None = None,
    crash_stage: int | None = None,
    mode: str = "poll",
    clock_offset: float = 0.0,
    result_path: str | None = None,
    until: str = "finished",
) -> None:
    """The entry point of an agent/worker process (see the module docstring)."""
    hook_name = (crash_point or "").removesuffix("@resume")
    transport: httpx.BaseTransport = httpx.HTTPTransport()
    if crash_point == "client.after_create_sent":
        transport = _DieAfterCreate(transport)
    if (
        crash_point
        and "." in hook_name
        and not hook_name.startswith(("client.", "action.", "tool."))
    ):

        def hook(name: str) -> None:
            stage = _DECIDED[0] + 1
            if name == BETWEEN_STAGES:
                _DECIDED[0] += 1
            # A resolver's points come before or after the node's run: the harness aims them
            # by which worker it gives the point to.
            staged = name.startswith(("gate.", "policy."))
            if name == hook_name and (not staged or crash_stage in (None, stage)):
                die()

        set_hook(hook)
    if cfg.break_reconcile:
        import hitl_agent.gate._create as create_module

        create_module._reconcile = lambda *args, **kwargs: None  # type: ignore[assignment]
    http = httpx.Client(transport=transport, timeout=30)
    client = HITLClient(
        cfg.api_key, base_url=cfg.base_url, http_client=http, retry=RetryPolicy(max_retries=0)
    )
    # A worker started "later" (clock_offset) finds the ledger's time moved on too.
    ledger = cfg.store.ledger(clock=(lambda: time.time() + clock_offset) if clock_offset else None)
    conn, saver = cfg.store.saver()
    keeper = Gatekeeper(
        client=client,
        loop_id=cfg.loop_id,
        ledger=ledger,
        callback_url=CALLBACK_URL,
        callback_secret=SECRET,
        clock=lambda: time.time() + clock_offset,
    )
    if cfg.shape == "tool":
        graph = build_tool_graph(keeper, saver, cfg.store.effects(), crash_point=crash_point)
    else:
        graph = build_graph(
            keeper,
            saver,
            cfg.store.effects(),
            crash_point=crash_point,
            idempotent=cfg.idempotent,
            quorum=cfg.quorum,
        )
    result: dict[str, Any] = {}
    if role == "start":
        result["step"] = agent_step(graph, thread_id, amount, cfg.durability, cfg.shape)
        if crash_point == "agent.after_interrupt":
            die()
    elif role == "worker":
        dispatcher = keeper.dispatcher(GraphResumer(graph, durability=cfg.durability))
        if mode == "poll":
            result["delivered"] = len(dispatcher.poll_once())
        else:
            result["statuses"] = asyncio.run(_ring(dispatcher, ledger, thread_id))
        if crash_point == "agent.after_interrupt":
            die()  # a policy's next stage is asked here: the worker dies once it is parked
    elif role == "recover":
        # A restarted worker: sweeps only. Reading the thread's state decides when to stop
        # looking, it never moves the thread. until="human": also stop once the thread waits
        # for an answer nobody gave yet (a policy's next stage).
        dispatcher = keeper.dispatcher(GraphResumer(graph, durability=cfg.durability))
        sweeps = 0
        while sweeps < MAX_SWEEPS:
            snap = graph.get_state(thread_config(thread_id))
            if not unfinished(snap) or (
                until == "human" and _waits_for_human(ledger, client, thread_id)
            ):
                break
            sweeps += 1
            dispatcher.poll_once()
        finished = not unfinished(graph.get_state(thread_config(thread_id)))
        result.update(sweeps=sweeps, finished=finished, stats=dict(dispatcher.resolver.stats))
        if finished:
            # The next regular sweep closes rows whose thread finished without their resume
            # (a crash between a resume and its ledger write).
            dispatcher.poll_once()
    else:
        raise ValueError(role)
    if result_path is not None:
        Path(result_path).write_text(json.dumps(result))
    conn.close()
    ledger.close()
    http.close()


def _waits_for_human(ledger: Ledger, client: HITLClient, thread_id: str) -> bool:
    """Whether the thread waits for an answer nobody gave yet: a request it asked, recorded and
    undecided, still pending. (Its interrupt may not be durable yet: a worker killed between
    asking a policy's next stage and parking leaves the previous stage's decision unresumed,
    and the dispatcher resumes a task only once every request it asked is answered.)"""
    return any(
        client.requests.get(row.request_id).status == "pending"
        for row in ledger.list_open()
        if row.thread_id == thread_id and row.request_id and row.decision is None
    )


async def _ring(dispatcher: Any, ledger: Ledger, thread_id: str) -> list[int]:
    """Post the server's callback for each open row of the thread to our own receiver."""
    rows = [r for r in ledger.list_open() if r.thread_id == thread_id and r.request_id]
    statuses = []
    transport = httpx.ASGITransport(app=dispatcher.asgi_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://worker") as http:
        for row in rows:
            token = derive_token(SECRET, row.key)
            body = {"event": "request.completed", "request_id": row.request_id}
            response = await http.post(f"/hitl/{token}", json=body)
            statuses.append(response.status_code)
    return statuses
