"""How a review waits inside a LangGraph node: correlation keys and content-addressed resumes.

This is the one module that reads LangGraph's private run state (the ``__pregel_*`` config
keys), knows the checkpoint-namespace format and how a waiting thread shows in a
``StateSnapshot``; ``tests/langgraph/test_lg_contract.py`` asserts each assumption on the
installed version, and ``make test`` runs it (with the gate, dispatch and langgraph suites)
on the lowest and the newest LangGraph the pins allow.

LangGraph re-runs a node from the top on resume and hands resume values to a task's
``interrupt()`` calls **by position**. Two things follow:

* A gate's correlation key must be the same on every run of the task. It is
  ``(thread_id, checkpoint_ns, <tool-call id or "node">, <index>)`` where the index counts the
  reviews already made in *this run* of the task, per tool-call id. Each run of a task gets a
  fresh scratchpad object from LangGraph, so the counters live in a small table keyed by that
  object's identity (the scratchpad is held, so its id cannot be reused while listed).
* Parallel tool calls in one ToolNode task race for positions, so a positional answer could
  reach the wrong tool. Resume values are therefore *bundles of decisions addressed by
  request id*: every value any review of the run receives is merged into the run's table, and
  each review takes only the decision carrying its own request id, calling ``interrupt()``
  again (under the run's lock, so positions are consumed one at a time) until it appears.
  Any other resume value (``Command(resume="yes")``, a forged map) is ignored: fail closed.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigError
from .._keys import NS_SEPARATOR, NS_TASK_SEPARATOR, gate_key, node_path
from ..protocol import DECISIONS_KEY

if TYPE_CHECKING:
    from langgraph.types import PregelTask, StateSnapshot

__all__ = [
    "NS_SEPARATOR",
    "NS_TASK_SEPARATOR",
    "GraphContext",
    "graph_context",
    "has_work",
    "node_path",
    "task_namespace",
    "wait_for_decision",
    "walk_tasks",
    "written_at",
]

log = logging.getLogger("hitl_agent.gate")  # a review logs under the gate's name

_SCRATCHPAD = "__pregel_scratchpad"  # LangGraph's per-task-run scratchpad (config key)
_CHECKPOINTER = "__pregel_checkpointer"
# NS_SEPARATOR, NS_TASK_SEPARATOR and node_path live with the correlation keys (hitl_agent._keys):
# a task's namespace is what the node sees as ``config["configurable"]["checkpoint_ns"]`` and
# what the ledger stores per row.
_MAX_RUNS = 4096


@dataclass
class _RunState:
    """Shared by every review made in one run of one task."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    counters: dict[str, int] = field(default_factory=dict)
    received: dict[str, dict[str, Any]] = field(default_factory=dict)
    suspended: bool = False
    """A call of this run suspended: nothing else in it may act (the tool wrappers' rule,
    hitl_agent/langchain/_siblings.py)."""
    started: set[str] = field(default_factory=set)
    """The gated tool calls that started in this run (under ``lock``)."""

    def next_index(self, base: str) -> int:
        with self.lock:
            index = self.counters.get(base, 0)
            self.counters[base] = index + 1
            return index


_runs: OrderedDict[int, tuple[object, _RunState]] = OrderedDict()
_runs_lock = threading.Lock()


def _run_state(scratchpad: object) -> _RunState:
    with _runs_lock:
        entry = _runs.get(id(scratchpad))
        if entry is not None and entry[0] is scratchpad:
            _runs.move_to_end(id(scratchpad))
            return entry[1]
        state = _RunState()
        _runs[id(scratchpad)] = (scratchpad, state)
        while len(_runs) > _MAX_RUNS:
            _runs.popitem(last=False)
        return state


@dataclass(frozen=True)
class GraphContext:
    """Where a review runs inside a graph."""

    thread_id: str
    checkpoint_ns: str
    run: _RunState
    resumed: bool = False
    """LangGraph handed this task run resume values (it runs again after an interrupt)."""
    configurable: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """The run's own ``configurable`` (LangGraph's internal keys left out): what an
    approval policy's ``exclude`` callable reads (the user the agent acts for)."""

    def key(self, tool_call_id: str | None) -> str:
        """The next correlation key of this task run (call once per review)."""
        base = f"tool:{tool_call_id}" if tool_call_id else "node"  # what the index counts
        index = self.run.next_index(base)
        return gate_key(self.thread_id, self.checkpoint_ns, tool_call_id, index)


def graph_context() -> GraphContext | None:
    """The current LangGraph task, or None outside any graph run (blocking mode).

    Raises:
        ConfigError: inside a graph run without a checkpointer or a thread id.
    """
    from langgraph.config import get_config

    try:
        config = get_config()
    except RuntimeError:
        return None
    conf = config.get("configurable") or {}
    scratchpad = conf.get(_SCRATCHPAD)
    if scratchpad is None:
        return None  # a runnable outside Pregel: no interrupt() possible here
    if conf.get(_CHECKPOINTER) is None:
        raise ConfigError(
            "checkpointer",
            "a review inside a graph needs a checkpointer to suspend durably",
            "compile the graph with checkpointer=SqliteSaver(...) (or InMemorySaver in tests)",
        )
    thread_id = conf.get("thread_id")
    if thread_id is None:
        raise ConfigError(
            "config.configurable.thread_id",
            "missing",
            'invoke the graph with config={"configurable": {"thread_id": "..."}}',
        )
    return GraphContext(
        thread_id=str(thread_id),
        checkpoint_ns=str(conf.get("checkpoint_ns") or ""),
        run=_run_state(scratchpad),
        resumed=bool(getattr(scratchpad, "resume", None)),
        configurable={k: v for k, v in conf.items() if not str(k).startswith("__")},
    )


def _merge(run: _RunState, value: Any) -> None:
    items: list[Any]
    if isinstance(value, dict) and isinstance(value.get(DECISIONS_KEY), list):
        items = value[DECISIONS_KEY]
    elif isinstance(value, dict) and "request_id" in value and "outcome" in value:
        items = [value]  # a bare Decision, e.g. a manual resume with decision.model_dump()
    else:
        log.warning("ignored a resume value that is not a hitl_agent decision bundle")
        return
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("request_id"), str):
            run.received.setdefault(item["request_id"], item)


def wait_for_decision(
    ctx: GraphContext, request_id: str, payload: dict[str, Any]
) -> dict[str, Any]:
    """Interrupt until a decision for ``request_id`` is delivered; return its JSON.

    Raises:
        GraphInterrupt: (from ``interrupt``) the first time, suspending the graph.
    """
    from langgraph.types import interrupt

    with ctx.run.lock:
        while request_id not in ctx.run.received:
            _merge(ctx.run, interrupt(payload))
        return ctx.run.received[request_id]


# -- reading a thread's StateSnapshot (the resumer's side) ---------------------------------


def task_namespace(parent: str, task: PregelTask) -> str:
    """The checkpoint namespace of ``task`` inside the snapshot whose namespace is ``parent``
    (``""`` for the root graph)."""
    own = f"{task.name}{NS_TASK_SEPARATOR}{task.id}"
    return f"{parent}{NS_SEPARATOR}{own}" if parent else own


def walk_tasks(state: StateSnapshot, parent: str = "") -> Iterator[tuple[str, PregelTask]]:
    """Every task of ``state`` with its namespace, depth first: a task, then the tasks of its
    subgraph (``get_state(..., subgraphs=True)`` nests their snapshots in ``task.state``)."""
    from langgraph.types import StateSnapshot

    for task in state.tasks:
        ns = task_namespace(parent, task)
        yield ns, task
        if isinstance(task.state, StateSnapshot):
            yield from walk_tasks(task.state, ns)


def has_work(state: StateSnapshot) -> bool:
    """True while the thread has anything left: a next node or a task (waiting or not).

    Both are read: on langgraph 1.2.4 (the lowest the pins allow) a task that interrupts
    again after a resume shows ``next == ()`` while the task and its interrupt are there.
    """
    return bool(state.next or state.tasks)


def written_at(state: StateSnapshot) -> float | None:
    """When the snapshot's checkpoint was written (epoch seconds), or None if unknown.

    ``created_at`` is an ISO-8601 string with an offset on every supported version.
    """
    if not state.created_at:
        return None
    try:
        return datetime.fromisoformat(state.created_at).timestamp()
    except ValueError:
        return None
