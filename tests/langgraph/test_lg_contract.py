"""The LangGraph internals hitl_agent reads, asserted on the installed version.

Every private read lives in ``hitl_agent/langgraph/pregel.py``; each test here pins down one of its
assumptions, so a LangGraph upgrade that breaks one fails here by name instead of somewhere
deep in a resume. ``make test`` runs this file (with tests/gate, tests/dispatch and
tests/langgraph) on the newest and on the lowest LangGraph the pins allow.
"""

from __future__ import annotations

import importlib.metadata
import time
from typing import Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.config import get_config
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Interrupt, PregelTask, StateSnapshot, interrupt

from hitl_agent import ConfigError
from hitl_agent.langgraph.pregel import (
    _CHECKPOINTER,
    _SCRATCHPAD,
    graph_context,
    has_work,
    node_path,
    task_namespace,
    walk_tasks,
    written_at,
)
from hitl_agent.langgraph.remote import snapshot_from_thread_state

VERSION = importlib.metadata.version("langgraph")


class S(TypedDict, total=False):
    seen: list[Any]


def _one_node(node: Any, checkpointer: Any = None) -> Any:
    builder = StateGraph(S)
    builder.add_node("gate", node)
    builder.add_edge(START, "gate")
    builder.add_edge("gate", END)
    return builder.compile(checkpointer=checkpointer or InMemorySaver())


def _config(thread: str) -> Any:
    return {"configurable": {"thread_id": thread}}


def test_config_keys_inside_a_node() -> None:
    """``__pregel_scratchpad`` and ``__pregel_checkpointer`` are in the node's config, with
    ``thread_id`` and a ``checkpoint_ns`` of ``<node>:<task id>``."""
    seen: dict[str, Any] = {}
    saver = InMemorySaver()

    def node(state: S) -> S:
        conf = get_config()["configurable"]
        seen.update(
            scratchpad=conf.get(_SCRATCHPAD),
            checkpointer=conf.get(_CHECKPOINTER),
            thread_id=conf.get("thread_id"),
            ns=conf.get("checkpoint_ns"),
        )
        interrupt({"q": 1})
        return {}

    graph = _one_node(node, saver)
    graph.invoke({}, _config("keys"))
    assert seen["scratchpad"] is not None
    assert seen["checkpointer"] is saver
    assert seen["thread_id"] == "keys"
    (task,) = graph.get_state(_config("keys")).tasks
    assert seen["ns"] == task_namespace("", task) == f"gate:{task.id}"
    assert node_path(seen["ns"]) == "gate"


def test_graph_context_outside_a_run_and_without_a_checkpointer() -> None:
    """``get_config()`` raises RuntimeError outside a run (blocking mode); a run without a
    checkpointer has no ``__pregel_checkpointer`` (a ConfigError for a review)."""
    with pytest.raises(RuntimeError):
        get_config()
    assert graph_context() is None
    errors: list[Exception] = []

    def node(state: S) -> S:
        try:
            graph_context()
        except ConfigError as exc:
            errors.append(exc)
        return {}

    builder = StateGraph(S)
    builder.add_node("gate", node)
    builder.add_edge(START, "gate")
    builder.compile().invoke({})
    assert len(errors) == 1 and errors[0].field == "checkpointer"


def test_one_scratchpad_per_task_run() -> None:
    """Within one run of a task the scratchpad is one object (review indexes count up); a
    resume re-runs the task with a fresh one (indexes start again, so keys repeat)."""
    runs: list[list[str]] = []

    def node(state: S) -> S:
        ctx = graph_context()
        assert ctx is not None
        keys = [ctx.key(None), ctx.key(None), ctx.key("call-1")]
        runs.append(keys)
        value = interrupt({"q": 1})
        return {"seen": [value]}

    graph = _one_node(node)
    graph.invoke({}, _config("pad"))
    (pending,) = graph.get_state(_config("pad")).interrupts
    graph.invoke(Command(resume={pending.id: "yes"}), _config("pad"))
    assert len(runs) == 2 and runs[0] == runs[1]
    first, second, tool = runs[0]
    assert first.endswith("|node|0") and second.endswith("|node|1")
    assert tool.endswith("|tool:call-1|0")
    assert graph.get_state(_config("pad")).values == {"seen": ["yes"]}


def test_snapshot_shape_of_a_waiting_and_a_finished_thread() -> None:
    """A waiting thread: tasks carry name, id, and interrupts with id and the very value
    passed to ``interrupt()``; ``created_at`` is ISO 8601. Finished: no work left."""
    payload = {"hitl_agent": {"request_id": "r1"}}

    def node(state: S) -> S:
        return {"seen": [interrupt(payload)]}

    graph = _one_node(node)
    before = time.time()
    graph.invoke({}, _config("shape"))
    state = graph.get_state(_config("shape"))
    assert isinstance(state, StateSnapshot) and has_work(state)
    (task,) = state.tasks
    assert isinstance(task, PregelTask) and task.name == "gate" and isinstance(task.id, str)
    (pending,) = task.interrupts
    assert isinstance(pending, Interrupt) and isinstance(pending.id, str)
    assert pending.value == payload
    written = written_at(state)
    assert written is not None and before - 5 < written < time.time() + 5
    graph.invoke(Command(resume={pending.id: "ok"}), _config("shape"))
    done = graph.get_state(_config("shape"))
    assert not has_work(done) and done.values == {"seen": ["ok"]}
    assert (written_at(done) or 0) >= written


def test_a_task_that_interrupts_again_is_still_waiting() -> None:
    """The gate's loop: a resume value the gate ignores makes it call ``interrupt()`` again.
    The thread must then still show the task and its interrupt (``next`` alone is not
    enough: langgraph 1.2.4 shows ``next == ()`` here)."""

    def node(state: S) -> S:
        values: list[Any] = []  # per run: the resume re-runs the node from the top
        while (value := interrupt({"q": 1})) != "mine":
            values.append(value)
        return {"seen": [*values, value]}

    graph = _one_node(node)
    graph.invoke({}, _config("again"))
    (first,) = graph.get_state(_config("again")).interrupts
    graph.invoke(Command(resume={first.id: "foreign"}), _config("again"))
    state = graph.get_state(_config("again"))
    assert has_work(state)
    waiting = [(ns, t) for ns, t in walk_tasks(state) if t.interrupts]
    assert [t.name for _, t in waiting] == ["gate"]
    (again,) = waiting[0][1].interrupts
    graph.invoke(Command(resume={again.id: "mine"}), _config("again"))
    final = graph.get_state(_config("again"))
    assert not has_work(final) and final.values == {"seen": ["foreign", "mine"]}


def test_resume_by_id_and_unknown_ids() -> None:
    """``Command(resume={id: value})`` hands ``value`` to that interrupt; an id that is not
    pending is ignored (the thread keeps waiting), which is why resumes are addressed only
    after reading the snapshot."""

    def node(state: S) -> S:
        return {"seen": [interrupt({"q": 1})]}

    graph = _one_node(node)
    graph.invoke({}, _config("ids"))
    (pending,) = graph.get_state(_config("ids")).interrupts
    graph.invoke(Command(resume={"0" * 32: "forged"}), _config("ids"))
    state = graph.get_state(_config("ids"))
    assert has_work(state) and "seen" not in state.values
    graph.invoke(Command(resume={pending.id: "real"}), _config("ids"))
    assert graph.get_state(_config("ids")).values == {"seen": ["real"]}


def test_resuming_an_unknown_thread_starts_it() -> None:
    """Why the resumer reads the snapshot first: LangGraph runs a thread it does not know."""
    runs: list[str] = []

    def node(state: S) -> S:
        runs.append("gate")
        return {}

    graph = _one_node(node)
    graph.invoke(Command(resume={"0" * 32: "x"}), _config("never-started"))
    assert runs == ["gate"]


def test_subgraph_namespaces_nest_with_a_bar() -> None:
    """A node in a subgraph sees ``outer:<id>|inner:<id>``; ``get_state(subgraphs=True)``
    nests the subgraph's snapshot in the parent task's ``state``, and walking the tasks
    rebuilds that namespace."""
    seen: list[str] = []

    def inner(state: S) -> S:
        seen.append(get_config()["configurable"]["checkpoint_ns"])
        return {"seen": [interrupt({"q": "inner"})]}

    sub = StateGraph(S)
    sub.add_node("inner", inner)
    sub.add_edge(START, "inner")
    sub.add_edge("inner", END)
    builder = StateGraph(S)
    builder.add_node("outer", sub.compile())
    builder.add_edge(START, "outer")
    builder.add_edge("outer", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    graph.invoke({}, _config("sub"))
    state = graph.get_state(_config("sub"), subgraphs=True)
    (outer,) = state.tasks
    assert isinstance(outer.state, StateSnapshot)
    waiting = [(ns, t) for ns, t in walk_tasks(state) if t.interrupts]
    assert [ns for ns, _ in waiting][-1] == seen[0]
    assert seen[0].startswith(f"outer:{outer.id}|inner:") and node_path(seen[0]) == "outer|inner"
    (pending,) = waiting[-1][1].interrupts
    graph.invoke(Command(resume={pending.id: "ok"}), _config("sub"))
    assert graph.get_state(_config("sub")).values == {"seen": ["ok"]}


def test_snapshot_types_build_from_a_remote_thread_state() -> None:
    """The remote resumer builds PregelTask/StateSnapshot/Interrupt by keyword; a new
    required field in any of them would break it."""
    built = snapshot_from_thread_state(
        {
            "next": ["gate"],
            "created_at": "2026-01-01T00:00:00+00:00",
            "tasks": [
                {
                    "id": "t1",
                    "name": "gate",
                    "interrupts": [{"id": "i1", "value": {"q": 1}}],
                    "state": {"tasks": [], "next": []},
                }
            ],
        }
    )
    ((ns, task),) = [(ns, t) for ns, t in walk_tasks(built) if t.interrupts]
    assert ns == "gate:t1" and task.interrupts[0].id == "i1"
    assert written_at(built) == 1767225600.0 and has_work(built)


def test_installed_version_is_within_the_pins() -> None:
    """The suite ran on a version the pins allow (pyproject: langgraph>=1.2.4,<1.3)."""
    major, minor, patch = (int(part) for part in VERSION.split(".")[:3])
    assert (1, 2, 4) <= (major, minor, patch) < (1, 3, 0), VERSION
