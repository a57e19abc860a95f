"""Answer → resumed graph: latency, throughput and the replayed review, SQLite and PostgreSQL.

Everything runs on loopback: two local HITL servers on uvicorn, each in a process of its own
as HITL.sh is another machine (``_hitl_process.py``; one that never sends callbacks, one whose
scheduler sends them as a real HITL.sh would), each with its keeper and a dispatcher whose
receiver is served on uvicorn in this process. The ledger and the checkpointer are the
backend's (SQLite files, or one fresh PostgreSQL schema ``hitl_bench_<hex>``, dropped after).

* **webhook → resume** (issue 12, item 2): a parked thread's request is answered, then the
  benchmark POSTs the callback to the receiver; timed from the POST until the resumer's
  ``invoke`` returned. The *local server sends* row times from the reviewer's answer until
  then, the local server delivering the callback. Baseline: a bare
  ``graph.invoke(Command(resume=True))`` of a thread parked at a bare ``interrupt()``, same
  graph shape, same checkpointer, interleaved with ours.
* **throughput** (item 3): N parked threads, all answered, then resumed by poll sweeps or by
  N callbacks (8 in flight, sent from another process: ``_sender_process.py``); resumes/s
  against a loop of bare resumes (one per run, measured between the two of ours).
* **replayed review** (item 4b): the time ``keeper.review()`` takes in the resumed node (it
  finds its ledger row and returns the decision) against a bare ``interrupt()`` returning its
  resume value in the same position.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import httpx
from _harness import INFO, Result, Target, percentile, skipped
from _loopback import Served, ServedProcess, listening_socket, serve, serve_hitl_process, spawn
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from hitl_agent import HITLClient, RetryPolicy
from hitl_agent._tokens import derive_token
from hitl_agent.decision import Decision
from hitl_agent.dispatch import CallBudget
from hitl_agent.gate import Gatekeeper
from hitl_agent.langgraph import GraphResumer
from hitl_agent.ledger import Ledger, ReviewRecord, SqliteLedger
from hitl_agent.protocol import read_payload
from hitl_agent.server import create_app
from hitl_agent.testing import ScriptedReviewer

PG_URL = os.environ.get("HITL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
SECRET = "bench-callback-secret-0123456789abcdef0123456789"
QUESTION = "Refund $42 to order 1234?"


class State(TypedDict, total=False):
    n: int
    approved: bool


class Probe:
    """What the graphs and the resumer record: when each thread's resume returned, and how
    long the review (or the bare interrupt) took in the resumed node."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.done: dict[str, float] = {}
        self.replay: list[float] = []
        self.bare: list[float] = []

    def finish(self, thread_id: str) -> None:
        now = time.perf_counter()
        with self.cond:
            self.done.setdefault(thread_id, now)
            self.cond.notify_all()

    def wait(self, thread_ids: Sequence[str], timeout: float = 120.0) -> float:
        """The latest finish time of ``thread_ids`` (waits for all of them)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not all(t in self.done for t in thread_ids):
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = [t for t in thread_ids if t not in self.done]
                    raise TimeoutError(f"{len(missing)} threads never resumed: {missing[:3]}")
                self.cond.wait(left)
            return max(self.done[t] for t in thread_ids)


class TimedResumer(GraphResumer):
    """GraphResumer that tells the probe when a resume returned."""

    def __init__(self, graph: Any, probe: Probe) -> None:
        super().__init__(graph)
        self.probe = probe

    def resume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool:
        resumed = super().resume(record, decisions)
        if resumed and record.thread_id:
            self.probe.finish(record.thread_id)
        return resumed

    async def aresume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool:
        resumed = await super().aresume(record, decisions)
        if resumed and record.thread_id:
            self.probe.finish(record.thread_id)
        return resumed


def _config(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


def build_ours(keeper: Gatekeeper, saver: Any, probe: Probe) -> Any:
    def gate(state: State) -> State:
        start = time.perf_counter()
        decision = keeper.review(QUESTION)
        probe.replay.append(time.perf_counter() - start)  # reached on the resume only
        return {"approved": decision.approved}

    def act(state: State) -> State:
        return {"n": state.get("n", 0) + 1}

    builder = StateGraph(State)
    builder.add_node("gate", gate)
    builder.add_node("act", act)
    builder.add_edge(START, "gate")
    builder.add_edge("gate", "act")
    builder.add_edge("act", END)
    return builder.compile(checkpointer=saver)


def build_bare(saver: Any, probe: Probe) -> Any:
    def gate(state: State) -> State:
        start = time.perf_counter()
        answer = interrupt(QUESTION)
        probe.bare.append(time.perf_counter() - start)
        return {"approved": answer is True}

    def act(state: State) -> State:
        return {"n": state.get("n", 0) + 1}

    builder = StateGraph(State)
    builder.add_node("gate", gate)
    builder.add_node("act", act)
    builder.add_edge(START, "gate")
    builder.add_edge("gate", "act")
    builder.add_edge("act", END)
    return builder.compile(checkpointer=saver)


# -- the stack ----------------------------------------------------------------------------


@contextlib.contextmanager
def open_backend(kind: str, directory: Path) -> Iterator[tuple[Any, Ledger]]:
    """(checkpointer, ledger) for ``kind``; PostgreSQL in a schema of its own, dropped after."""
    if kind == "sqlite":
        from langgraph.checkpoint.sqlite import SqliteSaver

        conn = sqlite3.connect(directory / "checkpoints.db", check_same_thread=False, timeout=30)
        saver = SqliteSaver(conn)
        saver.setup()
        ledger = SqliteLedger(directory / "ledger.db")
        ledger.setup()
        try:
            yield saver, ledger
        finally:
            ledger.close()
            conn.close()
        return
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg import sql
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool

    from hitl_agent.ledger import PostgresLedger

    schema = f"hitl_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    sep = "&" if "?" in PG_URL else "?"
    pool = ConnectionPool(
        f"{PG_URL}{sep}options=-csearch_path%3D{schema}",
        min_size=1,
        max_size=8,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=True,
    )
    ledger = PostgresLedger(PG_URL, schema=schema, min_size=1, max_size=8)
    try:
        saver = PostgresSaver(pool)  # type: ignore[arg-type]
        saver.setup()
        ledger.setup()
        yield saver, ledger
    finally:
        ledger.close()
        pool.close()
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE")
            admin.execute(drop.format(sql.Identifier(schema)))


@dataclass
class Side:
    """One local HITL server (its own process) with its keeper, graph, dispatcher and
    served receiver."""

    hitl: ServedProcess
    receiver: Served
    http: httpx.Client
    reviewer: ScriptedReviewer
    keeper: Gatekeeper
    graph: Any
    dispatcher: Any

    def close(self) -> None:
        self.receiver.stop()
        self.hitl.stop()
        self.http.close()


def open_side(
    directory: Path, name: str, saver: Any, ledger: Ledger, probe: Probe, *flags: str
) -> Side:
    """``flags`` for ``_hitl_process.py``: ``--sends`` runs its callback scheduler."""
    db = directory / f"hitl-{name}.db"
    app = create_app(db, scheduler_interval=None)  # credentials first; the child reuses them
    creds = app.state.hitl.bootstrap()
    app.state.hitl.close()
    hitl = serve_hitl_process(str(db), *flags)
    base_url = f"{hitl.url}/v1"
    http = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=32))
    client = HITLClient(
        creds.api_key, base_url=base_url, http_client=http, retry=RetryPolicy(max_retries=0)
    )
    sock = listening_socket()
    keeper = Gatekeeper(
        client=client,
        loop_id=creds.loop_id,
        ledger=ledger,
        callback_url=f"http://127.0.0.1:{sock.getsockname()[1]}/hitl",
        callback_secret=SECRET,
        budget=CallBudget(limit=10**9),
    )
    graph = build_ours(keeper, saver, probe)
    dispatcher = keeper.dispatcher(TimedResumer(graph, probe))
    receiver = serve(dispatcher.asgi_app, sock=sock)
    reviewer = ScriptedReviewer(http, creds.reviewer_token, base_url)
    return Side(hitl, receiver, http, reviewer, keeper, graph, dispatcher)


class Stack:
    def __init__(self, kind: str, directory: Path) -> None:
        self.kind = kind
        self.probe = Probe()
        self._exit = contextlib.ExitStack()
        self.saver, self.ledger = self._exit.enter_context(open_backend(kind, directory))
        self.quiet = open_side(directory, "quiet", self.saver, self.ledger, self.probe)
        self._exit.callback(self.quiet.close)
        self.sending = open_side(
            directory, "sending", self.saver, self.ledger, self.probe, "--sends"
        )
        self._exit.callback(self.sending.close)
        self.bare = build_bare(self.saver, self.probe)
        self.sender = httpx.Client(timeout=60)
        self._exit.callback(self.sender.close)

    def close(self) -> None:
        self._exit.close()

    def _thread(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    def park(self, side: Side) -> tuple[str, str]:
        """A thread parked at our gate: (thread id, request id)."""
        thread_id = self._thread(self.kind)
        out = side.graph.invoke({"n": 0}, _config(thread_id))
        stamp = read_payload(out["__interrupt__"][0].value)
        assert stamp is not None
        return thread_id, stamp["request_id"]

    def park_bare(self) -> str:
        thread_id = self._thread(f"bare-{self.kind}")
        out = self.bare.invoke({"n": 0}, _config(thread_id))
        assert out["__interrupt__"]
        return thread_id

    def resume_bare(self, thread_id: str) -> None:
        out = self.bare.invoke(Command(resume=True), _config(thread_id))
        assert out["approved"] is True and "__interrupt__" not in out

    def callback_url(self, side: Side, request_id: str) -> str:
        row = self.ledger.get_by_request_id(request_id)
        assert row is not None
        return f"{side.receiver.url}/hitl/{derive_token(SECRET, row.key)}"

    # -- item 2: latency ------------------------------------------------------------------

    def latency_benchmark_sends(self) -> float:
        thread_id, request_id = self.park(self.quiet)
        url = self.callback_url(self.quiet, request_id)
        self.quiet.reviewer.respond(request_id, True)
        start = time.perf_counter()
        response = self.sender.post(url, json={"request_id": request_id})
        assert response.status_code == 202, response.status_code
        return self.probe.wait([thread_id]) - start

    def latency_server_sends(self) -> float:
        return self._answer_to_resumed(self.sending)

    def _answer_to_resumed(self, side: Side) -> float:
        thread_id, request_id = self.park(side)
        start = time.perf_counter()
        side.reviewer.respond(request_id, True)
        return self.probe.wait([thread_id]) - start

    def latency_bare(self) -> float:
        thread_id = self.park_bare()
        start = time.perf_counter()
        self.resume_bare(thread_id)
        return time.perf_counter() - start

    # -- item 3: throughput ---------------------------------------------------------------

    def throughput(self, count: int, how: str) -> float:
        with ThreadPoolExecutor(4) as pool:  # parking is set-up, not what is measured
            parked = list(pool.map(lambda _: self.park(self.quiet), range(count)))
        urls = [self.callback_url(self.quiet, rid) for _, rid in parked]
        for _, request_id in parked:
            self.quiet.reviewer.respond(request_id, True)
        threads = [t for t, _ in parked]
        if how != "poll":  # HITL.sh's side of the callbacks: another process, as in the field
            sender = spawn("_sender_process.py", "--in-flight", "8")
            sender.send(json.dumps([[u, rid] for u, (_, rid) in zip(urls, parked, strict=True)]))
            sender.expect("ready")
        start = time.perf_counter()
        if how == "poll":
            for _ in range(20):
                self.quiet.dispatcher.poll_once()
                if all(t in self.probe.done for t in threads):
                    break
        else:
            sender.send("go")
        end = self.probe.wait(threads)
        if how != "poll":
            sender.expect("done")
            sender.stop()
        return count / (end - start)

    def throughput_bare(self, count: int) -> float:
        with ThreadPoolExecutor(4) as pool:
            threads = list(pool.map(lambda _: self.park_bare(), range(count)))
        start = time.perf_counter()
        for thread_id in threads:
            self.resume_bare(thread_id)
        return count / (time.perf_counter() - start)


# -- rows ---------------------------------------------------------------------------------


def _latency_rows(
    stack: Stack, runs: int, samples: int, label: str, ours_fn: Any, target50: Target
) -> list[Result]:
    p50 = Result(f"{label} p50 ({stack.kind})", "ms", target50, baseline_name="bare resume")
    p99 = Result(f"{label} p99 ({stack.kind})", "ms", INFO, baseline_name="bare resume")
    for _ in range(runs):
        ours, bare = [], []
        for _ in range(samples):  # interleaved: load drifts hit both alike
            ours.append(ours_fn() * 1000)
            bare.append(stack.latency_bare() * 1000)
        p50.ours_runs.append(percentile(ours, 50))
        p50.baseline_runs.append(percentile(bare, 50))
        p99.ours_runs.append(percentile(ours, 99))
        p99.baseline_runs.append(percentile(bare, 99))
    return [p50, p99]


def bench_backend(kind: str, quick: bool) -> list[Result]:
    runs = 3 if not quick else 2
    samples = 4 if quick else 24
    count = 10 if quick else 500
    rows: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(kind, Path(tmp))
        try:
            for _ in range(2 if quick else 3):  # warm up imports, connections, caches
                stack.latency_benchmark_sends()
                stack.latency_server_sends()
                stack.latency_bare()
            stack.probe.replay.clear()
            stack.probe.bare.clear()
            rows += _latency_rows(
                stack, runs, samples, "webhook→resume, benchmark sends",
                stack.latency_benchmark_sends, Target("ratio<=", 1.3),
            )  # fmt: skip
            replay_ours, replay_bare = list(stack.probe.replay), list(stack.probe.bare)
            rows += _latency_rows(
                stack, runs, samples, "answer→resumed, local server sends",
                stack.latency_server_sends, Target("ours<=", 10),
            )  # fmt: skip
            replay = Result(
                f"replayed review in the resumed node ({kind})", "µs", Target("over<=", 50),
                baseline_name="bare interrupt()",
            )  # fmt: skip
            per_run = max(1, len(replay_ours) // runs)
            for index in range(runs):
                chunk = slice(index * per_run, (index + 1) * per_run)
                replay.ours_runs.append(percentile(replay_ours[chunk], 50) * 1e6)
                replay.baseline_runs.append(percentile(replay_bare[chunk], 50) * 1e6)
            rows.append(replay)
            throughput = {
                how: Result(
                    f"resumes/s, {count} decisions at once, by {how} ({kind})",
                    "1/s",
                    Target("ratio>=", 0.8),
                    baseline_name="bare resume loop",
                )
                for how in ("poll", "callbacks")
            }
            for _ in range(runs):  # one bare loop per run, between the two of ours
                poll = stack.throughput(count, "poll")
                bare = stack.throughput_bare(count)
                callbacks = stack.throughput(count, "callbacks")
                for how, ours in (("poll", poll), ("callbacks", callbacks)):
                    throughput[how].ours_runs.append(ours)
                    throughput[how].baseline_runs.append(bare)
            rows += throughput.values()
        finally:
            stack.close()
    return rows


def _postgres_missing() -> str | None:
    try:
        import psycopg
    except ImportError as exc:
        return f"the postgres extra is not installed ({exc})"
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            return None
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_URL} ({type(exc).__name__})"


def run(quick: bool) -> list[Result]:
    rows = bench_backend("sqlite", quick)
    reason = _postgres_missing()
    if reason is None:
        rows += bench_backend("postgres", quick)
    else:
        rows.append(skipped("webhook→resume (postgres)", "ms", Target("ratio<=", 1.3), reason))
    return rows


if __name__ == "__main__":
    import sys

    from _harness import print_table

    print_table(run("--quick" in sys.argv))
