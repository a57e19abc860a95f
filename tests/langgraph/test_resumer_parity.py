"""GraphResumer's sync and async twins stay twins (issue 18): the same scenario through
``resume``/``finished``/``proceed`` and through ``aresume``/``afinished``/``aproceed`` gives
the same answers, leaves the thread in the same state and makes the same calls on the graph
(state reads, checkpoints read back, runs and what they resume).

What to resume, when a thread is finished and what proceed may do are decided without IO
(``find_interrupt``, ``resume_map``, ``ThreadScan``); the twins only read and run. Before the
change the async twins read the thread's history eagerly (up to 200 checkpoints) on every
``afinished``/``aproceed`` whose verdict needed none, where the sync ones read it lazily.

Each scenario runs twice on fresh, identical graphs (InMemorySaver, no HITL server): the
setup is sync in both, only the operations under test differ. With a sync-only checkpointer
(SqliteSaver) the async twins run the sync ones in a worker thread: the same answers and
calls but for the one refused ``aget_state``.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import operator
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Send, interrupt

from hitl_agent.decision import Decision
from hitl_agent.langgraph import GraphResumer
from hitl_agent.langgraph.pregel import node_path, walk_tasks
from hitl_agent.ledger import ReviewRecord
from hitl_agent.protocol import read_payload, review_payload

THREAD = "t-1"
CONFIG: RunnableConfig = {"configurable": {"thread_id": THREAD}}
# The checkpointer each scenario's graph gets (a test may swap in a sync-only one).
SAVER: dict[str, Callable[[], Any]] = {"make": InMemorySaver}


class Kill(BaseException):
    """A SIGKILL inside the process: nothing catches it, LangGraph saves nothing more."""


class State(TypedDict, total=False):
    amount: int
    answers: Annotated[list[Any], operator.add]
    done: bool
    call: str  # a Send's argument (parallel tool calls)


def _payload(call: str) -> Any:
    return review_payload(
        request_id=f"req-{call}",
        key=f"k-{call}",
        summary=f"Refund {call}?",
        priority="medium",
        response_type="boolean",
        timeout_at=None,
    )


def _decision(call: str) -> Decision:
    return Decision(request_id=f"req-{call}", status="completed", outcome="approved", approved=True)


@dataclass
class World:
    """One scenario's graph (built fresh for each twin), its effects and its rows."""

    graph: Any
    effects: list[str]
    kill_in_act: list[bool]
    rows: dict[str, ReviewRecord] = field(default_factory=dict)


def _gate(effects: list[str]) -> Any:  # a node: State -> update
    def gate(state: State) -> dict[str, Any]:
        answer = interrupt(_payload("a"))
        effects.append("gate passed")
        return {"answers": [answer]}

    return gate


def _linear(*, before_gate: bool = False) -> World:
    """``gate -> act`` (the review_node shape); ``act`` dies once when asked to."""
    effects: list[str] = []
    kill = [False]

    def act(state: State) -> dict[str, Any]:
        if kill[0]:
            kill[0] = False
            raise Kill("killed inside act")
        effects.append(f"refund {state.get('amount')}")
        return {"done": True}

    builder = StateGraph(State)
    builder.add_node("gate", _gate(effects))
    builder.add_node("act", act)
    builder.add_edge(START, "gate")
    builder.add_edge("gate", "act")
    builder.add_edge("act", END)
    graph = builder.compile(
        checkpointer=SAVER["make"](), interrupt_before=["gate"] if before_gate else None
    )
    return World(graph, effects, kill)


def _subgraph() -> World:
    """``outer`` is a compiled subgraph whose ``gate`` waits; then ``act``."""
    effects: list[str] = []
    inner = StateGraph(State)
    inner.add_node("gate", _gate(effects))
    inner.add_edge(START, "gate")
    inner.add_edge("gate", END)

    def act(state: State) -> dict[str, Any]:
        effects.append("act")
        return {"done": True}

    builder = StateGraph(State)
    builder.add_node("outer", inner.compile())
    builder.add_node("act", act)
    builder.add_edge(START, "outer")
    builder.add_edge("outer", "act")
    builder.add_edge("act", END)
    return World(builder.compile(checkpointer=SAVER["make"]()), effects, [False])


def _parallel() -> World:
    """Two tool calls of one model turn, each its own task (``Send``), each waiting."""
    effects: list[str] = []

    def tool(state: State) -> dict[str, Any]:
        answer = interrupt(_payload(state["call"]))
        effects.append(f"tool {state['call']}")
        return {"answers": [answer]}

    def fan_out(state: State) -> list[Send]:
        return [Send("tool", {"call": "a"}), Send("tool", {"call": "b"})]

    builder = StateGraph(State)
    builder.add_node("tool", tool)
    builder.add_conditional_edges(START, fan_out, ["tool"])
    builder.add_edge("tool", END)
    return World(builder.compile(checkpointer=SAVER["make"]()), effects, [False])


def _row(world: World, call: str, decided_at: float) -> ReviewRecord:
    """The decided row of the gate waiting on ``req-<call>``, read off the parked thread."""
    state = world.graph.get_state(CONFIG, subgraphs=True)
    # A subgraph's interrupt shows on its parent task too: the gate's task is the deepest.
    found = [
        ns
        for ns, task in walk_tasks(state)
        for pending in task.interrupts
        if (read_payload(pending.value) or {}).get("request_id") == f"req-{call}"
    ]
    assert found, f"nothing waits on req-{call}"
    return _record(call, max(found, key=len), decided_at)


def _record(
    call: str, ns: str | None, decided_at: float, thread: str | None = THREAD
) -> ReviewRecord:
    return ReviewRecord(
        key=f"k-{call}",
        state="decided",
        request_id=f"req-{call}",
        thread_id=thread,
        checkpoint_ns=ns,
        decided_at=decided_at,
    )


def _resume(world: World, row: ReviewRecord, call: str) -> None:
    state = world.graph.get_state(CONFIG, subgraphs=True)
    ids = [
        pending.id
        for ns, task in walk_tasks(state)
        if ns == row.checkpoint_ns
        for pending in task.interrupts
    ]
    bundle = {"hitl_agent_decisions": [_decision(call).model_dump(mode="json")]}
    world.graph.invoke(Command(resume={ids[0]: bundle}), CONFIG, durability="sync")


# -- scenarios: a setup (sync, not compared) and the operations compared -----------------

Op = tuple[str, str]  # (method, row name): "resume a" resumes row a with its decision


def waiting() -> tuple[World, list[Op]]:
    world = _linear()
    world.graph.invoke({"amount": 7}, CONFIG)
    world.rows["a"] = _row(world, "a", time.time())
    ops = [("finished", "a"), ("proceed", "a"), ("resume", "a"), ("resume", "a")]
    return world, [*ops, ("finished", "a"), ("proceed", "a")]


def not_waiting_yet() -> tuple[World, list[Op]]:
    """The decision is recorded before the gate's interrupt is durable (T15)."""
    world = _linear(before_gate=True)
    world.graph.invoke({"amount": 7}, CONFIG)
    state = world.graph.get_state(CONFIG)
    ns = next(ns for ns, task in walk_tasks(state) if task.name == "gate")
    world.rows["a"] = _record("a", ns, time.time())
    return world, [("resume", "a"), ("finished", "a"), ("proceed", "a")]


def unknown_thread() -> tuple[World, list[Op]]:
    world = _linear()
    world.rows["a"] = _record("a", "gate:unknown", time.time(), thread="t-unknown")
    world.rows["blocking"] = _record("blocking", None, time.time(), thread=None)
    return world, [
        ("resume", "a"),
        ("finished", "a"),
        ("proceed", "a"),
        ("resume", "blocking"),
        ("finished", "blocking"),
        ("proceed", "blocking"),
    ]


def finished_thread() -> tuple[World, list[Op]]:
    """Someone else resumed the thread after the decision; it ran to the end."""
    world = _linear()
    world.graph.invoke({"amount": 7}, CONFIG)
    world.rows["a"] = _row(world, "a", time.time())
    _resume(world, world.rows["a"], "a")
    return world, [("finished", "a"), ("resume", "a"), ("proceed", "a")]


def consumed_not_finished() -> tuple[World, list[Op]]:
    """The resume ran the gate's step and died in ``act``: proceed drives it on, once."""
    world = _linear()
    world.graph.invoke({"amount": 7}, CONFIG)
    world.rows["a"] = _row(world, "a", time.time())
    world.kill_in_act[0] = True
    with pytest.raises(Kill):
        _resume(world, world.rows["a"], "a")
    return world, [
        ("resume", "a"),
        ("finished", "a"),
        ("proceed", "a"),
        ("proceed", "a"),
        ("finished", "a"),
    ]


def consumed_then_new_turn() -> tuple[World, list[Op]]:
    """After the killed resume, a new message started a new turn: the row is abandoned."""
    world, _ = consumed_not_finished()
    world.graph.update_state(CONFIG, {"amount": 9}, as_node="__input__")
    return world, [("proceed", "a"), ("finished", "a"), ("resume", "a")]


def subgraph_gate() -> tuple[World, list[Op]]:
    world = _subgraph()
    world.graph.invoke({"amount": 7}, CONFIG)
    world.rows["a"] = _row(world, "a", time.time())
    assert node_path(world.rows["a"].checkpoint_ns or "") == "outer|gate"
    return world, [("finished", "a"), ("proceed", "a"), ("resume", "a"), ("finished", "a")]


def parallel_calls() -> tuple[World, list[Op]]:
    world = _parallel()
    world.graph.invoke({}, CONFIG)
    now = time.time()
    world.rows["a"] = _row(world, "a", now)
    world.rows["b"] = _row(world, "b", now)
    return world, [
        ("resume", "a"),
        ("resume", "a"),
        ("finished", "a"),
        ("proceed", "a"),
        ("proceed", "b"),
        ("resume", "b"),
        ("finished", "a"),
        ("finished", "b"),
    ]


SCENARIOS: dict[str, Callable[[], tuple[World, list[Op]]]] = {
    "waiting thread": waiting,
    "not waiting yet": not_waiting_yet,
    "unknown thread, blocking row": unknown_thread,
    "finished thread": finished_thread,
    "consumed, not finished": consumed_not_finished,
    "consumed, then a new turn": consumed_then_new_turn,
    "subgraph gate": subgraph_gate,
    "parallel tool calls": parallel_calls,
}

# -- a graph that records what the resumer asks of it --------------------------------------


class Recorder:
    """The compiled graph, recording each call with its async name mapped to the sync one.

    A resume is recorded by the node path of the task whose interrupt it answers (interrupt
    ids are hashes of task ids, which differ between the two runs).
    """

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.calls: list[tuple[Any, ...]] = []

    def _thread(self, config: RunnableConfig) -> Any:
        return (config.get("configurable") or {}).get("thread_id")

    def _input(self, value: Any, config: RunnableConfig) -> Any:
        if not isinstance(value, Command):
            return value
        state = self.graph.get_state(config, subgraphs=True)
        where = {p.id: node_path(ns) for ns, task in walk_tasks(state) for p in task.interrupts}
        resume = value.resume if isinstance(value.resume, dict) else {}
        return sorted((where.get(key, "?"), repr(val)) for key, val in resume.items())

    def get_state(self, config: RunnableConfig, *, subgraphs: bool = False) -> Any:
        self.calls.append(("get_state", self._thread(config), subgraphs))
        return self.graph.get_state(config, subgraphs=subgraphs)

    async def aget_state(self, config: RunnableConfig, *, subgraphs: bool = False) -> Any:
        self.calls.append(("get_state", self._thread(config), subgraphs))
        return await self.graph.aget_state(config, subgraphs=subgraphs)

    def get_state_history(self, config: RunnableConfig, **kwargs: Any) -> Iterator[Any]:
        self.calls.append(("get_state_history", self._thread(config), kwargs))
        for snapshot in self.graph.get_state_history(config, **kwargs):
            self.calls.append(("checkpoint read",))
            yield snapshot

    async def aget_state_history(self, config: RunnableConfig, **kwargs: Any) -> AsyncIterator[Any]:
        self.calls.append(("get_state_history", self._thread(config), kwargs))
        async for snapshot in self.graph.aget_state_history(config, **kwargs):
            self.calls.append(("checkpoint read",))
            yield snapshot

    def invoke(self, value: Any, config: RunnableConfig, **kwargs: Any) -> Any:
        self.calls.append(("invoke", self._input(value, config), self._thread(config), kwargs))
        return self.graph.invoke(value, config, **kwargs)

    async def ainvoke(self, value: Any, config: RunnableConfig, **kwargs: Any) -> Any:
        self.calls.append(("invoke", self._input(value, config), self._thread(config), kwargs))
        return await self.graph.ainvoke(value, config, **kwargs)


@dataclass
class Outcome:
    answers: list[tuple[str, str, bool]]
    calls: list[list[tuple[Any, ...]]]
    effects: list[str]
    values: dict[str, Any]
    next: tuple[str, ...]
    waiting: list[str]


def _run(scenario: str, twin: str) -> Outcome:
    world, ops = SCENARIOS[scenario]()
    recorder = Recorder(world.graph)
    resumer = GraphResumer(recorder)
    answers: list[tuple[str, str, bool]] = []
    calls: list[list[tuple[Any, ...]]] = []

    async def arun(method: str, row: ReviewRecord, call: str) -> bool:
        fn = getattr(resumer, f"a{method}")
        result = await (fn(row, [_decision(call)]) if method == "resume" else fn(row))
        return bool(result)

    for method, call in ops:
        row = world.rows[call]
        recorder.calls = []
        if twin == "sync":
            fn = getattr(resumer, method)
            answer = fn(row, [_decision(call)]) if method == "resume" else fn(row)
        else:
            answer = asyncio.run(arun(method, row, call))
        answers.append((method, call, answer))
        calls.append(recorder.calls)
    state = world.graph.get_state(CONFIG, subgraphs=True)
    waiting = sorted(node_path(ns) for ns, task in walk_tasks(state) if task.interrupts)
    return Outcome(answers, calls, world.effects, state.values, state.next, waiting)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_resume_finished_proceed_twins_answer_alike_and_make_the_same_calls(
    scenario: str,
) -> None:
    sync, async_ = _run(scenario, "sync"), _run(scenario, "async")
    assert async_.answers == sync.answers
    assert async_.calls == sync.calls
    assert (async_.effects, async_.values, async_.next, async_.waiting) == (
        sync.effects,
        sync.values,
        sync.next,
        sync.waiting,
    )


EXPECTED: dict[str, list[bool]] = {
    # finished, proceed (waiting: no), resume, resume again (consumed), finished, proceed (done)
    "waiting thread": [False, False, True, False, True, False],
    "not waiting yet": [False, False, False],
    "unknown thread, blocking row": [False] * 6,
    "finished thread": [True, False, False],
    # resume (consumed), finished, proceed (runs act), proceed (nothing left), finished
    "consumed, not finished": [False, False, True, False, True],
    "consumed, then a new turn": [False, True, False],
    "subgraph gate": [False, False, True, True],
    "parallel tool calls": [True, False, False, True, False, True, True, True],
}
if importlib.metadata.version("langgraph") == "1.2.4":
    # The lowest LangGraph the pins allow still lists "a"'s interrupt on the task after "a"
    # was resumed while "b" waits (the quirk pregel.has_work reads around): a second resume
    # of "a" is delivered (the dispatcher never sends one: the row is resumed by then) and
    # "a" cannot be proceeded yet. Both twins answer alike there too.
    EXPECTED["parallel tool calls"] = [True, True, False, False, False, True, True, True]


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_the_scenarios_answer_what_the_rules_say(scenario: str) -> None:
    """The parity above compares like with like; this pins what both answer."""
    outcome = _run(scenario, "sync")
    assert [answer for _, _, answer in outcome.answers] == EXPECTED[scenario]


def test_no_history_is_read_when_the_state_decides() -> None:
    """A waiting thread is decided from its state alone, by both twins (the async ones used
    to read up to 200 checkpoints back on every ``afinished``/``aproceed``)."""
    for twin in ("sync", "async"):
        outcome = _run("waiting thread", twin)
        finished_calls, proceed_calls = outcome.calls[0], outcome.calls[1]
        assert [call[0] for call in finished_calls] == ["get_state"], twin
        assert [call[0] for call in proceed_calls] == ["get_state"], twin


def test_proceed_reads_back_only_to_the_gate_checkpoint() -> None:
    outcome = _run("consumed, not finished", "async")
    proceed = outcome.calls[2]
    assert [call[0] for call in proceed] == [
        "get_state",
        "get_state_history",
        "checkpoint read",
        "checkpoint read",
        "invoke",
    ]
    assert outcome.effects == ["gate passed", "refund 7"]


@pytest.mark.parametrize("scenario", ["waiting thread", "consumed, not finished"])
def test_a_sync_only_checkpointer_runs_the_sync_twin_off_the_loop(
    scenario: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SqliteSaver has no async methods: ``aget_state`` raises NotImplementedError and the
    async twin runs the sync one in a worker thread, so both answer and call alike but for
    that one refused read."""
    conns: list[sqlite3.Connection] = []

    def saver() -> Any:
        conns.append(sqlite3.connect(tmp_path / f"cp{len(conns)}.db", check_same_thread=False))
        return SqliteSaver(conns[-1])

    monkeypatch.setitem(SAVER, "make", saver)
    try:
        sync, async_ = _run(scenario, "sync"), _run(scenario, "async")
    finally:
        for conn in conns:
            conn.close()
    assert async_.answers == sync.answers
    assert [calls[1:] for calls in async_.calls] == sync.calls
    assert all(calls[0][0] == "get_state" for calls in async_.calls)
    assert (async_.effects, async_.values, async_.next) == (sync.effects, sync.values, sync.next)
