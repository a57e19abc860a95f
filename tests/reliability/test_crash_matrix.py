"""T1: kill the agent or the worker (SIGKILL) at every named point, restart, finish; count harm.

One run, for one crash point on one backend:

1. the agent process starts the thread (a gate review, then an action that commits an effect
   row when approved); a gate-side point kills it, and a new agent process restarts the thread
   (sometimes after the reviewer already answered and a worker already swept: the decision
   lands before the interrupt is durable);
2. the reviewer answers every request of the thread through the server's reviewer API;
3. a worker process resolves (a poll sweep, or the callback posted to its receiver); a
   resolver-side point kills it;
4. a restarted worker alone (its clock past the resume lease) drives the thread to the end:
   the harness never invokes the graph for it (C1: a worker killed in ``act``, after the
   gate's step was saved, used to leave the approved action lost for good).

Then, from the server's list, the checkpointer and the effects table:

* duplicate reviews: more than one HITL request carrying the thread's correlation key;
* lost decisions: an answered request whose thread did not finish with that answer (or an
  approval whose action never ran);
* unauthorized runs: an effect without an approving answer, or more than one effect outside
  window (c);
* window (c) re-runs, counted apart: a crash after the action committed and before the
  checkpoint after it re-runs the (non-idempotent) action on recovery, as documented, in the
  hand-written ``act`` node; a tool that ``require_approval`` wraps has no such window (its
  execution record), so there any second run counts as duplicated;
* in doubt, counted apart from lost and duplicated (the tool graph, issue 19): a crash between
  the execution's start record and its recorded outcome ends the call ``in_doubt`` (the agent is
  told it may have run): acceptable only when the action ran at most once.

The local HITL server lives in the test process (uvicorn thread), so it outlives every crash.
Default: 1 run per point per backend (durability ``sync``); ``HITL_STRESS=full``: 10 runs per
point, durability ``sync`` and ``async``. Each matrix prints per point: runs, lost,
duplicated (reviews or executions), unauthorized, in doubt.

The policy cells (issue 23 item 3: every stage is one ledger record; exactly-once and
fail-closed hold across stages and crashes): the same graph under ``quorum=2``, two reviewer
accounts answering in turn, each point aimed at stage 1 or stage 2 (``crash_agent.POLICY_POINTS``,
with ``policy.after_stage_decided`` between the stages). After the aimed process dies (an agent
killed asking stage 1 is restarted: the agent's job), restarted workers alone (sweeps) drive the
thread, the reviewers answering whatever it asks. Harm there:
a stage asked twice (more than one request per key, or more stages than answers needed), an
effect before the second different approval or without two, a thread not ending with the last
stage's answer. Default: a seeded sample of the cells (every stage-transition cell, a few
others), 1 run each, ``sync``; ``HITL_STRESS=full``: every cell, 5 runs, ``sync`` and ``async``.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from crash_agent import (
    BETWEEN_STAGES,
    GATE_POINTS,
    IN_ACT,
    LEASE,
    POINTS,
    POLICY_POINTS,
    PRELOAD,
    RAISES,
    TOOL_POINTS,
    WINDOW_C,
    AgentConfig,
    Store,
    child_main,
    read_outcome,
    read_tool_outcome,
)
from rel_support import HITLServer, Stress, open_store, record_summary

from hitl_agent._hooks import CRASH_POINTS
from hitl_agent.testing import ScriptedReviewer

CTX = multiprocessing.get_context("forkserver")
# A child is a fork of an interpreter that already imported LangGraph, psycopg and hitl_agent
# (Python 3.11's forkserver ignores sys.path, so crash_agent itself is imported by the child).
CTX.set_forkserver_preload(list(PRELOAD))
KILLED = -9


def spawn(cfg: AgentConfig, role: str, thread_id: str, tmp: Path, **kwargs: Any) -> tuple[int, Any]:
    """Run one role in a fresh process; (exit code, its result or None)."""
    result_path = tmp / f"{uuid.uuid4().hex}.json"
    process = CTX.Process(
        target=child_main,
        args=(cfg, role, thread_id),
        kwargs={**kwargs, "result_path": str(result_path)},
    )
    process.start()
    process.join(120)
    if process.is_alive():
        process.kill()
        process.join()
        raise AssertionError(f"{role} process for {thread_id} hung")
    result = json.loads(result_path.read_text()) if result_path.exists() else None
    assert process.exitcode is not None
    return process.exitcode, result


def answer_pending(server: HITLServer, thread_id: str, answer: str) -> int:
    """The reviewer answers every still-pending request of the thread; how many."""
    answered = 0
    for request in server.requests_for(thread_id):
        if request.status == "pending":
            server.reviewer.respond(request.id, answer)
            answered += 1
    return answered


@dataclass
class Outcome:
    point: str
    backend: str
    durability: str
    run: int
    answer: str
    mode: str
    early_answer: bool
    crashed: bool
    reviews: int
    executions: int
    duplicate_reviews: int
    lost: int
    unauthorized: int
    duplicate_executions: int
    window_c_reruns: int
    recovery_sweeps: int
    ledger_left_open: int
    seconds: float
    in_doubt: int = 0
    execution_states: tuple[str, ...] = ()
    agent_not_told: int = 0


def crash_run(
    server: HITLServer,
    cfg: AgentConfig,
    point: str,
    run: int,
    rng: random.Random,
    tmp: Path,
    answer: str = "approve",
) -> Outcome:
    started = time.monotonic()
    if point in TOOL_POINTS:
        cfg = replace(cfg, shape="tool")
    store = cfg.store
    thread_id = f"t1-{point}-{run}-{uuid.uuid4().hex[:8]}"
    # The poller's batched fetch has no after_fetch point: that point needs the resolve path.
    mode = "webhook" if point == "resolver.after_fetch" else rng.choice(["poll", "webhook"])
    early = rng.random() < 0.5
    gate_side = point in GATE_POINTS

    code, _ = spawn(cfg, "start", thread_id, tmp, crash_point=point if gate_side else None)
    crashed = code == KILLED
    if gate_side:
        assert crashed, f"{point}: the agent was never killed (exit {code}): a dead crash point"
        if early and answer_pending(server, thread_id, answer):
            code, _ = spawn(cfg, "worker", thread_id, tmp, mode="poll")
            assert code == 0
        code, _ = spawn(cfg, "start", thread_id, tmp)  # the restarted agent
        assert code == 0, f"{point}: the restarted agent failed (exit {code})"
    else:
        assert code == 0, f"the agent failed (exit {code})"
    answer_pending(server, thread_id, answer)
    code, _ = spawn(
        cfg, "worker", thread_id, tmp, crash_point=None if gate_side else point, mode=mode
    )
    if not gate_side:
        crashed = code == KILLED
        # ``act`` is reached for either answer; its effect only for an approval; the
        # execution points only for an approval; the raising tool kills nothing.
        reachable = not (point == WINDOW_C and answer != "approve")
        if point in TOOL_POINTS:
            reachable = answer == "approve" and point != RAISES
        assert crashed == reachable, f"{point}: killed={crashed}, expected {reachable}"
    else:
        assert code == 0
    code, result = spawn(cfg, "recover", thread_id, tmp, clock_offset=LEASE + 1)
    assert code == 0, f"{point}: the recovery process failed (exit {code})"

    if cfg.shape == "tool":
        return _tool_outcome(
            server, cfg, thread_id, point, run, answer, mode, crashed, result, started
        )
    requests = server.requests_for(thread_id)
    outcome = read_outcome(store, thread_id)
    effects = store.effects().rows(thread_id)
    approved_ids = {
        r.id for r in requests if r.status == "completed" and r.response_value == "approve"
    }
    answered = [r for r in requests if r.status == "completed"]
    finished = outcome["exists"] and not outcome["unfinished"] and outcome["done"]
    decision = outcome["decision"] or {}
    lost = 0
    if answered and (
        not finished
        or decision.get("request_id") not in {r.id for r in answered}
        or bool(decision.get("approved")) != (decision.get("request_id") in approved_ids)
        or (decision.get("approved") and not effects)
    ):
        lost = 1
    unauthorized = sum(1 for e in effects if e[1] not in approved_ids)
    extra = max(0, len(effects) - 1)
    ledger = store.ledger(max_size=1)
    try:
        rows = [ledger.get(str(r.context["hitl_agent"]["key"])) for r in requests]
    finally:
        ledger.close()
    return Outcome(
        point=point,
        backend=store.backend,
        durability=cfg.durability,
        run=run,
        answer=answer,
        mode=mode,
        early_answer=early and gate_side,
        crashed=crashed,
        reviews=len(requests),
        executions=len(effects),
        duplicate_reviews=max(0, len(requests) - 1),
        lost=lost,
        unauthorized=unauthorized,
        duplicate_executions=0 if point == WINDOW_C else extra,
        window_c_reruns=extra if point == WINDOW_C else 0,
        recovery_sweeps=int((result or {}).get("sweeps", -1)),
        ledger_left_open=sum(1 for row in rows if row is None or row.state != "resumed"),
        seconds=time.monotonic() - started,
    )


def _tool_outcome(
    server: HITLServer,
    cfg: AgentConfig,
    thread_id: str,
    point: str,
    run: int,
    answer: str,
    mode: str,
    crashed: bool,
    result: Any,
    started: float,
) -> Outcome:
    """Count harm for the tool graph: effects, the execution record, the agent's ToolMessage."""
    store = cfg.store
    requests = server.requests_for(thread_id)
    outcome = read_tool_outcome(store, thread_id)
    effects = store.effects().rows(thread_id)
    approved_ids = {
        r.id for r in requests if r.status == "completed" and r.response_value == "approve"
    }
    answered = [r for r in requests if r.status == "completed"]
    ledger = store.ledger(max_size=1)
    try:
        rows = [ledger.get(str(r.context["hitl_agent"]["key"])) for r in requests]
        every: tuple[Any, ...] = ("started", "succeeded", "failed", "in_doubt")
        records = [x for x in ledger.list_executions(states=every) if x.thread_id == thread_id]
    finally:
        ledger.close()
    states = tuple(sorted(x.state for x in records))
    in_doubt = sum(x.state == "in_doubt" for x in records)
    finished = outcome["exists"] and not outcome["unfinished"]
    messages = outcome["tool_messages"]
    approved = bool(answered) and answered[-1].id in approved_ids
    lost = 0
    if answered and (not finished or len(messages) != 1):
        lost = 1
    elif approved and not effects and not in_doubt:
        lost = 1  # approved, never run, not reported in doubt
    # The agent is told what became of the call: the refund's result, its failure, or doubt.
    told = True
    if messages and approved:
        content = messages[0]["content"]
        if "in_doubt" in states:
            told = "may or may not have taken effect" in content
        elif "failed" in states:
            told = messages[0]["status"] == "error" and "failed" in content
        else:
            told = content == "refunded 1"
    return Outcome(
        point=point,
        backend=store.backend,
        durability=cfg.durability,
        run=run,
        answer=answer,
        mode=mode,
        early_answer=False,
        crashed=crashed,
        reviews=len(requests),
        executions=len(effects),
        duplicate_reviews=max(0, len(requests) - 1),
        lost=lost,
        unauthorized=sum(1 for e in effects if e[1] not in approved_ids),
        duplicate_executions=max(0, len(effects) - 1),
        window_c_reruns=0,
        recovery_sweeps=int((result or {}).get("sweeps", -1)),
        ledger_left_open=sum(1 for row in rows if row is None or row.state != "resumed")
        + sum(x.state == "started" for x in records),
        seconds=time.monotonic() - started,
        in_doubt=in_doubt,
        execution_states=states,
        agent_not_told=int(not told),
    )


def run_matrix(
    server: HITLServer, store: Store, durability: str, runs: int, seed: int, tmp: Path
) -> list[Outcome]:
    cfg = AgentConfig(
        store=store,
        base_url=server.base_url,
        api_key=server.api_key,
        loop_id=server.loop_id,
        durability=durability,
    )
    rng = random.Random(f"{seed}-{store.backend}-{durability}")
    outcomes = []
    for run in range(runs):
        for index, point in enumerate(POINTS):
            # A quarter of the runs reject (window (c) needs an approval to be reached).
            reject = (run + index) % 4 == 3 and point != WINDOW_C
            answer = "reject" if reject else "approve"
            outcomes.append(crash_run(server, cfg, point, run, rng, tmp, answer))
    return outcomes


def _raw(outcome: Outcome) -> str:
    """The crash point's name, without a policy cell's stage."""
    return outcome.point.split(" [stage ")[0]


def summarize(title: str, outcomes: list[Outcome]) -> dict[str, Any]:
    totals: Counter[str] = Counter()
    for o in outcomes:
        for name in (
            "duplicate_reviews",
            "lost",
            "unauthorized",
            "duplicate_executions",
            "window_c_reruns",
            "ledger_left_open",
            "in_doubt",
            "agent_not_told",
        ):
            totals[name] += getattr(o, name)
    points = {o.point for o in outcomes}
    sweeps = [o.recovery_sweeps for o in outcomes]
    per_point = {}
    for point in sorted(points):
        rows = [o for o in outcomes if o.point == point]
        per_point[point] = {
            "runs": len(rows),
            "lost": sum(o.lost for o in rows),
            "duplicated": sum(o.duplicate_reviews + o.duplicate_executions for o in rows),
            "unauthorized": sum(o.unauthorized for o in rows),
            "in_doubt": sum(o.in_doubt for o in rows),
            "max_executions": max(o.executions for o in rows),
        }
    summary = {
        "matrix": title,
        "runs": len(outcomes),
        "points": len(points),
        "runs_per_point": len(outcomes) // max(1, len(points)),
        "approved_runs": sum(o.answer == "approve" for o in outcomes),
        "killed": sum(o.crashed for o in outcomes),
        **totals,
        "window_c_runs": sum(_raw(o) == WINDOW_C and o.answer == "approve" for o in outcomes),
        "max_recovery_sweeps": max(sweeps),
        "left_open_points": sorted({o.point for o in outcomes if o.ledger_left_open}),
        "in_act_runs": sum(_raw(o) in IN_ACT for o in outcomes),
        "seconds": round(sum(o.seconds for o in outcomes), 1),
        "per_point": per_point,
    }
    record_summary(summary)
    return summary


def assert_no_harm(outcomes: list[Outcome], sweeps: Callable[[Outcome], int] = lambda o: 1) -> None:
    bad = [
        asdict(o)
        for o in outcomes
        if o.duplicate_reviews
        or o.lost
        or o.unauthorized
        or o.duplicate_executions
        or o.agent_not_told
        or (o.in_doubt and o.executions > 1)
    ]
    assert not bad, json.dumps(bad, indent=1)
    # Window (c): the effect may run again (documented), never a third time.
    assert all(o.window_c_reruns <= 1 for o in outcomes)
    # Every run reaches its terminal state within one sweep of the restarted worker (or
    # ``sweeps(outcome)``).
    assert all(0 <= o.recovery_sweeps <= sweeps(o) for o in outcomes), [
        (o.point, o.recovery_sweeps) for o in outcomes if o.recovery_sweeps > sweeps(o)
    ]
    # ... and the sweep after that leaves no ledger row open (invariant 9: reconciled).
    assert not [o.point for o in outcomes if o.ledger_left_open]


def test_every_named_crash_point_is_in_the_matrix() -> None:
    assert set(CRASH_POINTS) <= {p.removesuffix("@resume") for p in POINTS} | {BETWEEN_STAGES}
    # The policy cells aim every gate and resume point at each stage it can reach.
    for stage in (1, 2):
        aimed = {p for p, s in POLICY_POINTS if s == stage}
        assert set(GATE_POINTS) | {BETWEEN_STAGES, "resolver.after_resume"} <= aimed
        assert (set(POINTS) - set(TOOL_POINTS) <= aimed) == (stage == 2)
    assert WINDOW_C in POINTS
    assert {"execution.after_start", "execution.after_action", RAISES} <= set(TOOL_POINTS)


@pytest.mark.parametrize(
    ("point", "states", "executions"),
    [
        ("execution.after_start", ("in_doubt",), 0),
        ("execution.after_action", ("in_doubt",), 1),
        (RAISES, ("failed",), 1),
    ],
)
def test_the_execution_cells_end_once_or_in_doubt(
    hitl_server: HITLServer, tmp_path: Path, point: str, states: tuple[str, ...], executions: int
) -> None:
    """Each cell the execution record creates, on SQLite, approved: the refund never runs a
    second time; a crash between the start record and the outcome is reported in doubt."""
    store = open_store("sqlite", tmp_path / "store")
    cfg = AgentConfig(
        store=store,
        base_url=hitl_server.base_url,
        api_key=hitl_server.api_key,
        loop_id=hitl_server.loop_id,
    )
    outcome = crash_run(hitl_server, cfg, point, 0, random.Random(3), tmp_path)
    assert outcome.crashed == (point != RAISES)
    assert outcome.execution_states == states, outcome
    assert outcome.executions == executions, outcome
    assert outcome.in_doubt == (states == ("in_doubt",))
    assert_no_harm([outcome])


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a full cell (170 runs) takes 3-6 min on a loaded machine
@pytest.mark.parametrize("durability", ["sync", "async"])
def test_crash_matrix_no_dup_no_loss(
    hitl_server: HITLServer, store: Store, durability: str, stress: Stress, tmp_path: Path
) -> None:
    if durability == "async" and not stress.full:
        pytest.skip("durability=async runs under HITL_STRESS=full (make stress)")
    runs = stress.pick(default=1, full=10)
    outcomes = run_matrix(hitl_server, store, durability, runs, stress.seed, tmp_path)
    summarize(f"T1 {store.backend} durability={durability}", outcomes)
    assert_no_harm(outcomes)


def test_crash_harness_detects_a_duplicate_review(
    hitl_server: HITLServer, tmp_path: Path, stress: Stress
) -> None:
    """Canary: a gate that forgets to reconcile its intent after a crash creates twice."""

    store = open_store("sqlite", tmp_path / "store")
    cfg = AgentConfig(
        store=store,
        base_url=hitl_server.base_url,
        api_key=hitl_server.api_key,
        loop_id=hitl_server.loop_id,
        break_reconcile=True,
    )
    outcome = crash_run(hitl_server, cfg, "gate.after_create", 0, random.Random(1), tmp_path)
    assert outcome.duplicate_reviews == 1
    with pytest.raises(AssertionError):
        assert_no_harm([outcome])


def test_crash_harness_detects_a_double_execution(hitl_server: HITLServer, tmp_path: Path) -> None:
    """Canary: window (c) re-runs the naive action; the idempotent one (keyed by the
    decision's request id) runs once."""

    for idempotent, expected in ((False, 1), (True, 0)):
        store = open_store("sqlite", tmp_path / f"idem-{idempotent}")
        cfg = AgentConfig(
            store=store,
            base_url=hitl_server.base_url,
            api_key=hitl_server.api_key,
            loop_id=hitl_server.loop_id,
            idempotent=idempotent,
        )
        outcome = crash_run(hitl_server, cfg, WINDOW_C, 0, random.Random(2), tmp_path)
        assert outcome.crashed and outcome.window_c_reruns == expected, outcome
        assert outcome.duplicate_reviews == outcome.lost == outcome.unauthorized == 0


# -- the policy cells (quorum=2: two stages) ----------------------------------------------

SECOND_REVIEWER = "second@localhost"


def policy_plan(stage: int, reject: bool) -> list[str]:
    """The answers of a run, in the order they are given (one per stage asked): the rejection
    comes in the aimed stage, so a stage-2 cell still reaches stage 2."""
    if not reject:
        return ["approve", "approve"]
    return ["reject"] if stage == 1 else ["approve", "reject"]


def answer_in_turn(
    server: HITLServer, thread_id: str, reviewers: list[ScriptedReviewer], plan: list[str]
) -> int:
    """Each pending request of the thread answered in turn: the n-th answer of the thread is
    ``plan[n]`` by ``reviewers[n]`` (different people); one past the plan (a stage asked
    again) is rejected. How many were answered."""
    requests = sorted(server.requests_for(thread_id), key=lambda r: (r.created_at, r.id))
    given = sum(r.status == "completed" for r in requests)
    answered = 0
    for request in requests:
        if request.status == "pending":
            n = given + answered
            value = plan[n] if n < len(plan) else "reject"
            reviewers[n % len(reviewers)].respond(request.id, value)
            answered += 1
    return answered


def _approvals(requests: list[Any]) -> list[Any]:
    return [r for r in requests if r.status == "completed" and r.response_value == "approve"]


def _identity(request: Any) -> str:
    reviewer = request.reviewer
    return str(reviewer.id or reviewer.email) if reviewer is not None else ""


def policy_run(
    server: HITLServer,
    cfg: AgentConfig,
    point: str,
    stage: int,
    run: int,
    rng: random.Random,
    tmp: Path,
    plan: list[str],
) -> Outcome:
    """One run of the quorum=2 graph with ``point`` aimed at ``stage``; its counted harm."""
    started = time.monotonic()
    store = cfg.store
    thread_id = f"t1p-{stage}-{point}-{run}-{uuid.uuid4().hex[:8]}"
    reviewers = [server.reviewer, server.add_reviewer(SECOND_REVIEWER)]
    gate_side = point in GATE_POINTS
    # The process the point is reached in: 0 the agent (stage 1 is asked there), k the worker
    # resuming stage k (stage k+1 is asked there, so stage 2's gate points are in worker 1).
    target = stage - 1 if gate_side else stage
    mode = "webhook" if point == "resolver.after_fetch" else rng.choice(["poll", "webhook"])
    early = rng.random() < 0.5
    reachable = not (point == WINDOW_C and plan[-1] != "approve")
    effects_early = 0
    sweeps: list[int] = []

    def answer() -> int:
        nonlocal effects_early
        # Until the second different approval is given, nothing may have run.
        if len({_identity(r) for r in _approvals(server.requests_for(thread_id))}) < 2:
            effects_early = max(effects_early, len(store.effects().rows(thread_id)))
        return answer_in_turn(server, thread_id, reviewers, plan)

    def aimed(k: int) -> dict[str, Any]:
        return {"crash_point": point, "crash_stage": stage} if k == target else {}

    code, _ = spawn(cfg, "start", thread_id, tmp, **aimed(0))
    crashed = code == KILLED
    if target == 0:
        assert crashed, f"{point}@{stage}: the agent was never killed (exit {code})"
        if early and answer():
            assert spawn(cfg, "worker", thread_id, tmp, mode="poll")[0] == 0
        code, _ = spawn(cfg, "start", thread_id, tmp)  # the restarted agent
        assert code == 0, f"{point}@{stage}: the restarted agent failed (exit {code})"
    else:
        assert code == 0, f"the agent failed (exit {code})"
    for k in range(1, target + 1):
        answer()
        worker_mode = mode if k == target else rng.choice(["poll", "webhook"])
        code, _ = spawn(cfg, "worker", thread_id, tmp, mode=worker_mode, **aimed(k))
        if k < target:
            assert code == 0, f"{point}@{stage}: worker {k} failed (exit {code})"
            continue
        crashed = code == KILLED
        assert crashed == reachable, f"{point}@{stage}: killed={crashed}, expected {reachable}"
        if gate_side and early and answer():
            # Stage 2 answered (and swept) before its interrupt is durable.
            assert spawn(cfg, "worker", thread_id, tmp, mode="poll")[0] == 0
    # Restarted workers alone from here; the reviewers answer what the thread asks.
    for _ in range(len(plan) + 2):
        code, result = spawn(cfg, "recover", thread_id, tmp, clock_offset=LEASE + 1, until="human")
        assert code == 0, f"{point}@{stage}: the recovery process failed (exit {code})"
        sweeps.append(int(result["sweeps"]))
        if result["finished"] or not answer():
            break

    requests = server.requests_for(thread_id)
    keys = Counter(str(r.context["hitl_agent"]["key"]) for r in requests)
    answered = sorted(
        (r for r in requests if r.status == "completed"), key=lambda r: (r.created_at, r.id)
    )
    approvers = {_identity(r) for r in _approvals(answered)}
    last = answered[-1].id if answered else None
    outcome = read_outcome(store, thread_id)
    decision = outcome["decision"] or {}
    effects = store.effects().rows(thread_id)
    approve = plan == ["approve", "approve"]
    finished = outcome["exists"] and not outcome["unfinished"] and outcome["done"]
    lost = int(
        not finished
        or len(keys) < len(plan)  # a stage never asked
        or len(answered) < len(plan)
        or decision.get("request_id") != last
        or bool(decision.get("approved")) != approve
        or (approve and not effects)
    )
    # An effect counts as authorized only under the last stage's approval, after two
    # different reviewers approved.
    wrong = sum(1 for e in effects if len(approvers) < 2 or e[1] != last or not approve)
    extra = max(0, len(effects) - 1)
    ledger = store.ledger(max_size=1)
    try:
        rows = [ledger.get(key) for key in keys]
    finally:
        ledger.close()
    return Outcome(
        point=f"{point} [stage {stage}]",
        backend=store.backend,
        durability=cfg.durability,
        run=run,
        answer="approve" if approve else f"reject (stage {len(plan)})",
        mode=mode,
        early_answer=early and gate_side,
        crashed=crashed,
        reviews=len(requests),
        executions=len(effects),
        duplicate_reviews=sum(n - 1 for n in keys.values()) + max(0, len(keys) - len(plan)),
        lost=lost,
        unauthorized=max(wrong, effects_early),
        duplicate_executions=0 if point == WINDOW_C else extra,
        window_c_reruns=extra if point == WINDOW_C else 0,
        recovery_sweeps=max(sweeps),
        ledger_left_open=sum(1 for row in rows if row is None or row.state != "resumed"),
        seconds=time.monotonic() - started,
    )


def policy_sweeps(outcome: Outcome) -> int:
    """Sweeps a policy run's recovery may take until it finishes or waits for a reviewer.

    One, as everywhere, except when the worker died asking stage 2 and stage 2 was answered
    before its request was recorded as created: one sweep resumes stage 1 (its run finds
    stage 2's request and parks), the next delivers the answer. In the other cells that pair
    of steps is the restarted agent's run and a worker's pass, which no recovery counts.
    """
    return 2 if outcome.early_answer and outcome.point.endswith("[stage 2]") else 1


def policy_cells(stress: Stress, backend: str) -> list[tuple[str, int]]:
    """Every cell under HITL_STRESS=full; else the stage-transition cells and a seeded few."""
    if stress.full:
        return list(POLICY_POINTS)
    between = [cell for cell in POLICY_POINTS if cell[0] == BETWEEN_STAGES]
    others = [cell for cell in POLICY_POINTS if cell[0] != BETWEEN_STAGES]
    picked = random.Random(f"{stress.seed}-policy-{backend}").sample(others, 4)
    return between + sorted(picked, key=POLICY_POINTS.index)


def run_policy_matrix(
    server: HITLServer,
    store: Store,
    durability: str,
    cells: list[tuple[str, int]],
    runs: int,
    seed: int,
    tmp: Path,
) -> list[Outcome]:
    cfg = AgentConfig(
        store=store,
        base_url=server.base_url,
        api_key=server.api_key,
        loop_id=server.loop_id,
        durability=durability,
        quorum=2,
    )
    rng = random.Random(f"{seed}-policy-{store.backend}-{durability}")
    outcomes = []
    for run in range(runs):
        for index, (point, stage) in enumerate(cells):
            # A quarter of the runs reject (window (c) needs the approval to be reached).
            reject = (run + index) % 4 == 3 and point != WINDOW_C
            plan = policy_plan(stage, reject)
            outcomes.append(policy_run(server, cfg, point, stage, run, rng, tmp, plan))
    return outcomes


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("durability", ["sync", "async"])
def test_policy_stages_crash_matrix(
    hitl_server: HITLServer, store: Store, durability: str, stress: Stress, tmp_path: Path
) -> None:
    """quorum=2 killed at every point of either stage: each approved call ran once, after two
    different approvals, never after one; no stage asked twice; nothing lost."""
    if durability == "async" and not stress.full:
        pytest.skip("durability=async runs under HITL_STRESS=full (make stress)")
    cells = policy_cells(stress, store.backend)
    runs = stress.pick(default=1, full=5)
    outcomes = run_policy_matrix(hitl_server, store, durability, cells, runs, stress.seed, tmp_path)
    summary = summarize(f"T1 policy quorum=2 {store.backend} durability={durability}", outcomes)
    assert_no_harm(outcomes, policy_sweeps)
    approved = [o for o in outcomes if o.answer == "approve"]
    assert all(o.reviews == 2 and o.executions >= 1 for o in approved), summary


def test_policy_harness_detects_a_single_approval_run(
    hitl_server: HITLServer, tmp_path: Path
) -> None:
    """Canary: the same run without the quorum (one approval runs it) is counted as
    unauthorized and as a stage never asked."""
    store = open_store("sqlite", tmp_path / "store")
    cfg = AgentConfig(
        store=store,
        base_url=hitl_server.base_url,
        api_key=hitl_server.api_key,
        loop_id=hitl_server.loop_id,
    )
    plan = ["approve", "approve"]
    outcome = policy_run(
        hitl_server, cfg, "resolver.after_claim", 1, 0, random.Random(4), tmp_path, plan
    )
    assert outcome.crashed and outcome.executions == 1 and outcome.reviews == 1, outcome
    assert outcome.unauthorized == 1 and outcome.lost == 1
    with pytest.raises(AssertionError):
        assert_no_harm([outcome])


def test_policy_harness_detects_stage_2_asked_twice(
    hitl_server: HITLServer, tmp_path: Path
) -> None:
    """Canary: the crash aimed at stage 2's create, and a gate that forgets to reconcile its
    intent: the recovery asks stage 2 again, which the policy run counts as duplicated."""
    store = open_store("sqlite", tmp_path / "store")
    cfg = AgentConfig(
        store=store,
        base_url=hitl_server.base_url,
        api_key=hitl_server.api_key,
        loop_id=hitl_server.loop_id,
        quorum=2,
        break_reconcile=True,
    )
    plan = ["approve", "approve"]
    outcome = policy_run(
        hitl_server, cfg, "gate.after_create", 2, 0, random.Random(1), tmp_path, plan
    )
    assert outcome.crashed and outcome.duplicate_reviews >= 1, outcome
    with pytest.raises(AssertionError):
        assert_no_harm([outcome], policy_sweeps)
