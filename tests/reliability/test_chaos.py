"""Chaos (issues 19 and 20): three ``hitl-agent worker`` processes as shipped, SIGKILLed at random.

One run, in one mode:

* the local HITL server in this process (uvicorn thread, as the crash matrix's), outliving all;
* a fresh PostgreSQL schema (127.0.0.1:5432, database ``test``) holding the ledger, the
  checkpoints and ``chaos_effects``, shared by every process;
* 3 ``hitl-agent worker`` processes, the CLI with its own wiring
  (``--graph chaos_graph:build --checkpointer postgresql://… --ledger postgresql://…``);
* an agent process (``python chaos_graph.py agent``) starting threads whose tool calls are gated
  by ``require_approval`` (README shape: ``tools_condition`` + ``ToolNode``); each approved
  call's side effect is an INSERT keyed by its tool call id (no unique key: a repeat is a row);
* a scripted reviewer (this process) approving about 4 in 5 and rejecting the rest; in the
  callback modes it also delivers each answer's signed callback to a live worker, retrying
  until one accepts (as a callback sender behind a load balancer does);
* a killer: every 1–3 s one worker gets SIGKILL and is started again.

Modes: ``callbacks+poll`` (callbacks and the workers' poller), ``poll`` (no callbacks),
``callbacks`` (``--no-poll``: callbacks and the ledger-only recovery step), ``storm``
(callbacks+poll, and every second ``pg_terminate_backend`` of every worker connection).

After the chaos the killer stops and the three workers get a final recovery window. Counted,
per mode: approved calls, executions per approved call (max), duplicated (an approved call
executed more than once), lost (approved, never executed, not in doubt), unapproved executed,
stuck (ledger rows still open, execution records still ``started``, threads not finished,
parked deliveries), in doubt (execution records ``in_doubt``: allowed only with at most one
execution). A row still ``resuming`` under the claim of a killed worker whose lease (300 s,
the worker's default) has not run out yet is counted as ``awaiting_lease``: the default
sample's window is shorter than a lease, the full run's is longer.

Default: a small seeded sample per mode (3 threads × 2 calls, 6 s of chaos, 25 s window).
``HITL_STRESS=full`` (``make stress``): 40 threads × 2 calls, 60 s of chaos, and a window
past the lease (330 s), after which ``awaiting_lease`` must be 0 too.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from rel_support import HITLServer, Stress, record_summary

from hitl_agent._tokens import derive_token

pytestmark = pytest.mark.postgres

HERE = Path(__file__).resolve().parent
SECRET = "chaos-callback-secret-0123456789abcdef0123"
HITL_AGENT = Path(sys.executable).parent / "hitl-agent"
LEASE = 300.0
MODES = ("callbacks+poll", "poll", "callbacks", "storm")
_CALL = re.compile(r"call id `+ (\S+) `+")


@dataclass
class Sizes:
    threads: int
    calls: int
    chaos: float
    window: float
    kills: bool = True


def sizes(stress: Stress) -> Sizes:
    if stress.full:
        return Sizes(threads=40, calls=2, chaos=60.0, window=LEASE + 30)
    return Sizes(threads=3, calls=2, chaos=6.0, window=25.0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Slot:
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0


@dataclass
class Run:
    mode: str
    server: HITLServer
    tmp: Path
    rng: random.Random
    schema: str = field(default_factory=lambda: f"hitl_chaos_{uuid.uuid4().hex[:10]}")
    app: str = field(default_factory=lambda: f"hitl-chaos-{uuid.uuid4().hex[:10]}")
    slots: list[Slot] = field(default_factory=list)
    answers: dict[str, str] = field(default_factory=dict)  # request id -> answer
    undelivered: dict[str, str] = field(default_factory=dict)  # request id -> token
    kills: int = 0
    terminated: int = 0
    callbacks: int = 0

    @property
    def callbacks_on(self) -> bool:
        return self.mode != "poll"

    def url(self, kind: str, app: str | None = None) -> str:
        from pg_support import PG_URL

        base = PG_URL.split("?")[0]
        name = app or self.app
        if kind == "ledger":
            return f"{base}?schema={self.schema}&application_name={name}"
        return f"{base}?application_name={name}&options=-csearch_path%3D{self.schema}"

    def env(self, app: str | None = None) -> dict[str, str]:
        return {
            **os.environ,
            "HITL_API_KEY": self.server.api_key,
            "HITL_BASE_URL": self.server.base_url,
            "HITL_LOOP_ID": self.server.loop_id,
            "HITL_LEDGER": self.url("ledger", app),
            "HITL_CALLBACK_URL": "http://127.0.0.1:9/hitl",  # the reviewer delivers callbacks
            "HITL_CALLBACK_SECRET": SECRET,
            "CHAOS_EFFECTS": self.url("effects", "hitl-chaos-harness"),
            "PYTHONPATH": str(HERE),
        }

    # -- set-up ---------------------------------------------------------------------------

    def setup(self) -> None:
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver
        from pg_support import PG_URL
        from psycopg.rows import dict_row

        from hitl_agent.ledger import open_ledger

        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'CREATE SCHEMA "{self.schema}"')
        ledger = open_ledger(self.url("ledger", "hitl-chaos-harness"))
        try:
            ledger.setup()
        finally:
            ledger.close()
        with psycopg.connect(
            self.url("checkpoints", "hitl-chaos-harness"),
            autocommit=True,
            prepare_threshold=0,
            row_factory=dict_row,
        ) as conn:
            PostgresSaver(conn).setup()  # type: ignore[arg-type]
            sys.path.insert(0, str(HERE))
            from chaos_graph import EFFECTS_DDL

            conn.execute(EFFECTS_DDL)

    def drop(self) -> None:
        import psycopg
        from pg_support import PG_URL

        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

    # -- workers --------------------------------------------------------------------------

    def start(self, slot: Slot) -> None:
        command = [
            str(HITL_AGENT),
            "worker",
            "--graph",
            "chaos_graph:build",
            "--checkpointer",
            self.url("checkpoints"),
            "--ledger",
            self.url("ledger"),
            "--loop-id",
            self.server.loop_id,
            "--callback-url",
            "http://127.0.0.1:9/hitl",
            "--port",
            str(slot.port),
        ]
        if self.mode == "callbacks":
            command.append("--no-poll")
        with slot.log.open("ab") as log:
            log.write(f"\n=== start {slot.starts} at {time.time():.3f}\n".encode())
            log.flush()
            slot.process = subprocess.Popen(
                command, cwd=HERE, env=self.env(), stdout=log, stderr=subprocess.STDOUT
            )
        slot.starts += 1

    def kill_one(self) -> None:
        slot = self.rng.choice(self.slots)
        if slot.process is not None and slot.process.poll() is None:
            slot.process.send_signal(signal.SIGKILL)
            slot.process.wait()
            self.kills += 1
        self.start(slot)

    def ensure_running(self) -> None:
        for slot in self.slots:
            if slot.process is None or slot.process.poll() is not None:
                self.start(slot)

    def stop_all(self) -> None:
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is None:
                slot.process.send_signal(signal.SIGKILL)
                slot.process.wait()

    def storm(self) -> None:
        """pg_terminate_backend of every worker connection (by application_name)."""
        import psycopg
        from pg_support import PG_URL

        with psycopg.connect(PG_URL, autocommit=True) as admin:
            rows = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = %s",
                (self.app,),
            ).fetchall()
        self.terminated += len(rows)

    # -- the reviewer -----------------------------------------------------------------------

    def mine(self) -> list[Any]:
        prefix = f"lg|{self.schema}-"
        return [
            request
            for key, requests in self.server.requests_by_key().items()
            if key.startswith(prefix)
            for request in requests
        ]

    def review(self) -> None:
        for request in self.mine():
            if request.status != "pending" or request.id in self.answers:
                continue
            answer = "reject" if self.rng.random() < 0.2 else "approve"
            self.server.reviewer.respond(request.id, answer)
            self.answers[request.id] = answer
            if self.callbacks_on:
                key = str(request.context["hitl_agent"]["key"])
                self.undelivered[request.id] = derive_token(SECRET, key)

    def deliver(self, http: httpx.Client) -> None:
        """Post each answered request's callback to a live worker; keep it until accepted."""
        for request_id, token in list(self.undelivered.items()):
            slots = [s for s in self.slots if s.process is not None and s.process.poll() is None]
            self.rng.shuffle(slots)
            for slot in slots:
                body = {"event": "request.completed", "request_id": request_id}
                try:
                    response = http.post(f"http://127.0.0.1:{slot.port}/hitl/{token}", json=body)
                except httpx.HTTPError:
                    continue
                if response.status_code < 300:
                    del self.undelivered[request_id]
                    self.callbacks += 1
                    break


# -- counting -------------------------------------------------------------------------------


def _call_id(request: Any) -> str | None:
    match = _CALL.search(request.request_text or "")
    return match.group(1) if match else None


def count(run: Run, sizes: Sizes) -> dict[str, Any]:
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row

    from hitl_agent.ledger import open_ledger

    requests = run.mine()
    by_call: dict[str, list[Any]] = {}
    for request in requests:
        by_call.setdefault(_call_id(request) or f"?{request.id}", []).append(request)
    approved = {
        call
        for call, reqs in by_call.items()
        if any(r.status == "completed" and r.response_value == "approve" for r in reqs)
    }
    with psycopg.connect(run.url("effects", "hitl-chaos-harness"), autocommit=True) as conn:
        effects = conn.execute("SELECT tool_call_id, approved FROM chaos_effects").fetchall()
    executions = Counter(str(call) for call, _ in effects)
    unapproved = sum(1 for call, ok in effects if not ok or call not in approved)
    ledger = open_ledger(run.url("ledger", "hitl-chaos-harness"))
    try:
        every: Any = ("started", "succeeded", "failed", "in_doubt")
        records = ledger.list_executions(states=every, limit=100_000)
        open_rows = ledger.list_open(limit=100_000)
        parked = ledger.list_delivery_faults(parked=True)
    finally:
        ledger.close()
    request_call = {r.id: call for call, reqs in by_call.items() for r in reqs}
    in_doubt_calls = {
        request_call.get(x.request_id or "") for x in records if x.state == "in_doubt"
    }
    started_left = [x for x in records if x.state == "started"]
    now = time.time()
    awaiting = [r for r in open_rows if r.state == "resuming" and (r.lease_until or 0) > now]
    with psycopg.connect(
        run.url("checkpoints", "hitl-chaos-harness"),
        autocommit=True,
        prepare_threshold=0,
        row_factory=dict_row,
    ) as conn:
        graph = _reader(PostgresSaver(conn))  # type: ignore[arg-type]
        unfinished: list[tuple[str, list[str], int, int]] = []
        for n in range(sizes.threads):
            config: Any = {"configurable": {"thread_id": f"{run.schema}-{n}"}}
            snap = graph.get_state(config)
            tool_messages = [m for m in snap.values.get("messages", []) if m.type == "tool"]
            # Finished: nothing next, and one ToolMessage per call (snap.tasks keeps the last
            # step's Send tasks, so it is no sign of work left here).
            if snap.next or len(tool_messages) != sizes.calls:
                unfinished.append(
                    (f"{run.schema}-{n}", list(snap.next), len(snap.tasks), len(tool_messages))
                )
    # Calls of threads that a killed worker's unexpired claim holds wait for the lease.
    waiting_threads = {r.thread_id for r in awaiting}
    waiting_calls = {
        c for c in approved if any(c.startswith(f"{t}-c") for t in waiting_threads if t)
    }
    started_left = [x for x in started_left if x.thread_id not in waiting_threads]
    lost = sorted(
        c
        for c in approved
        if executions[c] == 0 and c not in in_doubt_calls and c not in waiting_calls
    )
    duplicated = sorted(c for c in approved if executions[c] > 1)
    doubt_multi = sorted(c for c in in_doubt_calls if c and executions[c] > 1)
    stuck_rows = [r for r in open_rows if r not in awaiting]
    summary = {
        "matrix": f"chaos {run.mode}",
        "threads": sizes.threads,
        "gated_calls": len(by_call),
        "reviews": len(requests),
        "approved_calls": len(approved),
        "rejected_calls": len(by_call) - len(approved),
        "max_executions_per_approved_call": max((executions[c] for c in approved), default=0),
        "duplicated": len(duplicated),
        "lost": len(lost),
        "unapproved_executed": unapproved,
        "stuck": len(stuck_rows)
        + len(started_left)
        + len(parked)
        + len([u for u in unfinished if u[0] not in waiting_threads]),
        "awaiting_lease": len(waiting_calls),
        "unfinished_threads": len([u for u in unfinished if u[0] not in waiting_threads]),
        "in_doubt": len(in_doubt_calls),
        "in_doubt_ran_once": sum(1 for c in in_doubt_calls if c and executions[c] == 1),
        "in_doubt_executed_twice": len(doubt_multi),
        "kills": run.kills,
        "terminated_connections": run.terminated,
        "callbacks_delivered": run.callbacks,
        "detail": {
            "lost": lost,
            "duplicated": duplicated,
            "stuck_rows": [(r.request_id, r.state, r.thread_id) for r in stuck_rows],
            "awaiting_lease": [(r.request_id, r.thread_id) for r in awaiting],
            "started_left": [(x.request_id, x.thread_id) for x in started_left],
            "parked": [(p.request_id, p.reason) for p in parked],
            "unfinished": unfinished,
        },
    }
    return summary


def _reader(saver: Any) -> Any:
    """The chaos graph without a keeper: reads a thread's state, never runs it."""
    from chaos_graph import agent, refund
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode

    from hitl_agent.langgraph import tools_condition

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([refund]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition, ["tools", END])
    builder.add_edge("tools", END)
    return builder.compile(checkpointer=saver)


def open_state(run: Run) -> tuple[bool, Any]:
    """(settled, what is still open): settled when every request is answered and delivered
    and nothing is open in the ledger (no row, no ``started`` execution)."""
    from hitl_agent.ledger import open_ledger

    requests = run.mine()
    ledger = open_ledger(run.url("ledger", "hitl-chaos-harness"))
    try:
        rows = ledger.list_open()
        started = ledger.list_executions(states=("started",))
    finally:
        ledger.close()
    pending = [r.id for r in requests if r.status == "pending"]
    snapshot = (
        sorted(run.undelivered),
        pending,
        sorted((r.key, r.state, r.updated_at) for r in rows),
        sorted(x.key for x in started),
    )
    only_resuming = bool(rows) and all(r.state == "resuming" for r in rows)
    done = not run.undelivered and not pending and not rows and not started
    return done, (snapshot, only_resuming)


def chaos_run(
    server: HITLServer,
    mode: str,
    sizes: Sizes,
    seed: int,
    tmp: Path,
    *,
    full_window: bool,
    plant: Callable[[Run], None] | None = None,
) -> dict[str, Any]:
    rng = random.Random(f"{seed}-{mode}")
    run = Run(mode=mode, server=server, tmp=tmp, rng=rng)
    run.setup()
    run.slots = [Slot(port=_free_port(), log=tmp / f"{mode}-worker{i}.log") for i in range(3)]
    started = time.monotonic()
    agent = None
    try:
        run.ensure_running()
        agent_log = (tmp / f"{mode}-agent.log").open("ab")
        agent = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "chaos_graph.py"),
                "agent",
                run.url("checkpoints", "hitl-chaos-agent"),
                run.schema,
                str(sizes.threads),
            ],
            cwd=HERE,
            env={**run.env("hitl-chaos-agent"), "CHAOS_CALLS": str(sizes.calls)},
            stdout=agent_log,
            stderr=subprocess.STDOUT,
        )
        next_kill = time.monotonic() + rng.uniform(1, 3)
        next_storm = time.monotonic() + 1
        chaos_end = time.monotonic() + sizes.chaos
        with httpx.Client(timeout=5) as http:
            while time.monotonic() < chaos_end or agent.poll() is None:
                run.review()
                run.deliver(http)
                now = time.monotonic()
                if sizes.kills and now >= next_kill:
                    run.kill_one()
                    next_kill = now + rng.uniform(1, 3)
                if mode == "storm" and now >= next_storm:
                    run.storm()
                    next_storm = now + 1
                time.sleep(0.2)
                assert time.monotonic() - started < sizes.chaos + 600, "the agent hung"
            assert agent.returncode == 0, (tmp / f"{mode}-agent.log").read_text()[-3000:]
            # The final recovery window: no more kills; the workers finish what is left.
            run.ensure_running()
            window_end = time.monotonic() + sizes.window
            history: list[Any] = []
            while time.monotonic() < window_end:
                run.review()
                run.deliver(http)
                done, (snapshot, only_resuming) = open_state(run)
                if done:
                    break
                history.append(snapshot)
                # Default sample: what is left only waits for a killed worker's lease (no
                # change for 5 s while the live workers sweep): counted as awaiting_lease.
                if not full_window and only_resuming and history[-10:].count(snapshot) >= 10:
                    break
                time.sleep(0.5)
        if plant is not None:
            plant(run)
        summary = count(run, sizes)
        summary["seconds"] = round(time.monotonic() - started, 1)
        return summary
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()
            agent.wait()
        run.stop_all()
        run.drop()


@pytest.mark.parametrize("mode", MODES)
def test_chaos_three_workers_sigkill(
    hitl_server: HITLServer, mode: str, stress: Stress, tmp_path: Path
) -> None:
    from pg_support import require_postgres

    require_postgres()
    if stress.full:
        pytest.skip("the full chaos runs in test_chaos_full (make stress)")
    summary = chaos_run(hitl_server, mode, sizes(stress), stress.seed, tmp_path, full_window=False)
    record_summary(summary)
    _check(summary, full=False)


@pytest.mark.slow
@pytest.mark.timeout(1200)  # 60 s of chaos, the agent, and a window past the 300 s lease
@pytest.mark.parametrize("mode", MODES)
def test_chaos_full(hitl_server: HITLServer, mode: str, stress: Stress, tmp_path: Path) -> None:
    from pg_support import require_postgres

    require_postgres()
    if not stress.full:
        pytest.skip("the full chaos runs under HITL_STRESS=full (make stress)")
    summary = chaos_run(hitl_server, mode, sizes(stress), stress.seed, tmp_path, full_window=True)
    record_summary(summary)
    _check(summary, full=True)


def _check(summary: dict[str, Any], *, full: bool) -> None:
    shown = json.dumps(summary, indent=1)
    assert summary["approved_calls"] > 0, shown
    assert summary["duplicated"] == 0, shown
    assert summary["unapproved_executed"] == 0, shown
    assert summary["lost"] == 0, shown
    assert summary["stuck"] == 0, shown
    assert summary["in_doubt_executed_twice"] == 0, shown
    if full:
        assert summary["awaiting_lease"] == 0, shown


def test_chaos_counter_flags_planted_harm(hitl_server: HITLServer, tmp_path: Path) -> None:
    """Self-test: a calm run (no kills), then a double run, a missing run and a rejected run
    planted in the effects table: the counter must flag each one, and _check must fail."""
    import psycopg
    from pg_support import require_postgres

    require_postgres()

    def plant(run: Run) -> None:
        requests = run.mine()
        approved = sorted(
            c for r in requests if r.response_value == "approve" and (c := _call_id(r))
        )
        rejected = sorted(
            c for r in requests if r.response_value == "reject" and (c := _call_id(r))
        )
        assert len(approved) >= 2, "the seeded reviewer approved fewer than 2 calls"
        with psycopg.connect(run.url("effects", "hitl-chaos-harness"), autocommit=True) as conn:
            row = (approved[0], "planted", True, 0, 0.0)
            conn.execute("INSERT INTO chaos_effects VALUES (%s, %s, %s, %s, %s)", row)
            conn.execute("DELETE FROM chaos_effects WHERE tool_call_id = %s", (approved[1],))
            for call in rejected[:1] or [f"{run.schema}-unknown"]:
                row = (call, "planted", True, 0, 0.0)
                conn.execute("INSERT INTO chaos_effects VALUES (%s, %s, %s, %s, %s)", row)

    calm = Sizes(threads=2, calls=2, chaos=0.0, window=20.0, kills=False)
    summary = chaos_run(
        hitl_server, "callbacks+poll", calm, 7, tmp_path, full_window=False, plant=plant
    )
    assert summary["duplicated"] == 1, summary
    assert summary["lost"] == 1, summary
    assert summary["unapproved_executed"] == 1, summary
    assert summary["stuck"] == 0 and summary["in_doubt"] == 0, summary
    with pytest.raises(AssertionError):
        _check(summary, full=False)
