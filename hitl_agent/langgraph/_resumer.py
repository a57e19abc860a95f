"""GraphResumer: resume exactly the LangGraph thread a decision belongs to, or nothing.

LangGraph starts a thread it does not know when you resume it, silently ignores resume ids that
are not pending, and re-runs the node either way. So a resume happens only after
``get_state`` shows that the thread is waiting in the gate's task (same checkpoint namespace)
on an interrupt whose payload is ours; the resume is addressed by that interrupt's id::

    graph.invoke(Command(resume={interrupt.id: codec.encode(interrupt.value, decisions)}), config)

The codec (:mod:`hitl_agent.protocol`) is the gate's own by default; an integration with its
own interrupt format (the middleware bridge) passes its own.

Anything else (unknown thread, finished thread, a task that is not waiting yet) returns False
and invokes nothing; the dispatcher keeps the row ``decided`` and tries again later, which is
what makes a decision that arrives before the interrupt is durable safe (T15).

A thread can also stop *after* its gate: the resume ran the gate's step and was killed in the
next node (``gate -> act``, the ``review_node`` shape). Its interrupt is consumed, so nothing
waits, yet the approved action never ran. :meth:`GraphResumer.proceed` drives such a thread on
with ``graph.invoke(None, config)``, and only when :func:`consumed_gate` says so: the thread has
work left and no pending interrupt, the row's gate task has finished (it is no longer among the
current tasks, or its writes are saved), and the checkpoints from the one that held the gate
task to the current one are one run (a ``Command(resume=...)`` run writes no ``input``
checkpoint; a new message on the thread does).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command, StateSnapshot

from .._exceptions import ConfigError
from ..decision import Decision
from ..ledger import ReviewRecord
from ..protocol import REVIEW_CODEC, InterruptCodec, read_payload
from .pregel import (
    NS_SEPARATOR,
    has_work,
    node_path,
    task_namespace,
    walk_tasks,
    written_at,
)

__all__ = [
    "GraphResumer",
    "ThreadScan",
    "check_durability",
    "consumed_gate",
    "find_interrupt",
    "reads_finished",
    "reads_gate",
    "resume_map",
    "thread_finished_since",
]

# How many checkpoints back the gate's step is looked for (it is usually 1 or 2 back).
_HISTORY_LIMIT = 200

Consumed = Literal["run", "done", "no", "abandoned"]


def find_interrupt(
    state: StateSnapshot,
    record: ReviewRecord,
    codec: InterruptCodec = REVIEW_CODEC,
    *,
    reused: bool = False,
) -> tuple[str, Any] | None:
    """The id and value of the pending interrupt of the row's task that ``codec`` matches.

    With ``reused``, failing the row's own task (same checkpoint namespace), also the same
    gate in another task of the thread that waits on this very request id: a concurrent run
    of the thread (double texting) that reused the row's request, on the branch LangGraph
    kept. Only local graphs need it: a LangGraph Server runs one run per thread at a time.
    """
    found = _find(state, record, codec, "")
    if found is None and reused and record.request_id and record.checkpoint_ns is not None:
        found = _find_reused(state, record, node_path(record.checkpoint_ns), "")
    return found


def _find(
    state: StateSnapshot, record: ReviewRecord, codec: InterruptCodec, prefix: str
) -> tuple[str, Any] | None:
    for ns, task in walk_tasks(state, prefix):
        if ns == record.checkpoint_ns:
            for interrupt in task.interrupts:
                if codec.matches(interrupt.value, record):
                    return interrupt.id, interrupt.value
    return None


def _find_reused(
    state: StateSnapshot, record: ReviewRecord, names: str, prefix: str
) -> tuple[str, Any] | None:
    for task in state.tasks:
        ns = task_namespace(prefix, task)
        if node_path(ns) == names:
            for interrupt in task.interrupts:
                stamp = read_payload(interrupt.value)
                if stamp is not None and stamp.get("request_id") == record.request_id:
                    return interrupt.id, interrupt.value
        if isinstance(task.state, StateSnapshot):
            found = _find_reused(task.state, record, names, f"{ns}|")
            if found is not None:
                return found
    return None


def check_durability(durability: str) -> Literal["sync", "async"]:
    """``durability`` if a resume may run with it; ConfigError for ``"exit"`` or a typo."""
    if durability == "sync":
        return "sync"
    if durability == "async":
        return "async"
    raise ConfigError(
        "durability",
        f"{durability!r} is not allowed for resumes ('exit' saves nothing until the graph "
        "exits, so a crash after an approved action would run it again)",
        'use durability="sync" (the default) or "async"',
    )


def thread_finished_since(state: StateSnapshot, since: float) -> bool:
    """True when the thread has nothing left to run and got there after ``since``.

    That is how a decided row learns that its thread moved on without it (a crash between
    the resume and the ledger write, or a recovery run that consumed the resume): the row
    can be closed. "Finished" alone is not enough: with ``async``/``exit`` durability a
    thread that runs a new turn can still show the previous turn's finished checkpoint, so
    the checkpoint must also be newer than the decision.
    """
    if has_work(state):
        return False
    written = written_at(state)
    return written is not None and written > since


def _ns(task: Any) -> str:
    return task_namespace("", task)


def _has_interrupts(state: StateSnapshot) -> bool:
    if state.interrupts:
        return True
    for task in state.tasks:
        if task.interrupts:
            return True
        if isinstance(task.state, StateSnapshot) and _has_interrupts(task.state):
            return True
    return False


def _checkpoint_id(config: Any) -> str | None:
    value = ((config or {}).get("configurable") or {}).get("checkpoint_id")
    return str(value) if value else None


def consumed_gate(
    state: StateSnapshot, history: Iterable[StateSnapshot], record: ReviewRecord
) -> Consumed:
    """Whether a thread that is not waiting for ``record`` passed its gate and stopped short.

    Args:
        state: the thread's current state (``get_state(config, subgraphs=True)``).
        history: the thread's checkpoints, newest first (``get_state_history``); only the
            current checkpoint's ancestors are read, so sibling branches do not count.
        record: the decided row.

    Returns:
        ``"run"``: drive the thread on (``invoke(None)``); ``"done"``: the gate was passed
        and the thread now waits on another interrupt, so nothing is left for this row;
        ``"abandoned"``: a new turn (an ``input`` checkpoint) started on the thread after the
        gate's step, so nothing will ever wait for this row again; ``"no"``: the gate was not
        passed on this thread's current branch (not reached yet, still running, an unknown
        thread or another branch): do nothing.
    """
    scan = ThreadScan(state, record)
    scan.feed(history)
    return scan.verdict


class ThreadScan:
    """What a resumer decides about a decided row's thread, without IO.

    The sync and async methods of :class:`GraphResumer` and of the remote resumer only read
    (the state, then the checkpoints newest first while :attr:`wants_history`) and run; every
    decision is made here, so the twins cannot drift apart::

        scan = ThreadScan(state, record, since=record.decided_at)
        if scan.wants_history:
            for snapshot in graph.get_state_history(config):
                if not scan.admit(snapshot):
                    break
        scan.finished, scan.proceeds, scan.runs

    Args:
        state: the thread's current state (with subgraph states).
        record: the decided row.
        since: for :attr:`finished`: when the decision was recorded (a thread finished after
            it needs no history); None for :attr:`proceeds`.
    """

    def __init__(
        self, state: StateSnapshot, record: ReviewRecord, *, since: float | None = None
    ) -> None:
        self.state = state
        self.record = record
        self.done_since = since is not None and thread_finished_since(state, since)
        self._verdict: Consumed | None = None
        self._root = ""
        self._want: str | None = None
        self._new_turn = False
        self._seen = 0
        if record.checkpoint_ns is None or not has_work(state):
            self._verdict = "no"
            return
        # A gate inside a subgraph is driven through its root task, the parent graph's node.
        self._root = record.checkpoint_ns.split(NS_SEPARATOR, 1)[0]
        current = next((task for task in state.tasks if _ns(task) == self._root), None)
        if current is not None and (current.result is None or current.interrupts):
            # Not finished: still running, not run yet (a decision recorded before its
            # interrupt was durable), or waiting on an interrupt the resume did not match.
            self._verdict = "no"
        elif current is not None:
            self._verdict = self._passed()
        else:
            # The gate's task is gone from the current checkpoint: find the one that held it.
            self._new_turn = (state.metadata or {}).get("source") == "input"
            self._want = _checkpoint_id(state.parent_config)
            if self._want is None:
                self._verdict = "no"

    def _passed(self) -> Consumed:
        return "done" if _has_interrupts(self.state) else "run"

    @property
    def wants_history(self) -> bool:
        """True while the verdict needs more of the thread's checkpoints (newest first)."""
        return not self.done_since and self._verdict is None

    def admit(self, snapshot: StateSnapshot) -> bool:
        """Read the next checkpoint back; False once the verdict is known (stop reading)."""
        if self._verdict is not None:
            return False
        if self._seen >= _HISTORY_LIMIT:
            self._verdict = "no"
            return False
        self._seen += 1
        if _checkpoint_id(snapshot.config) != self._want:
            return True  # a sibling branch, or the current checkpoint itself
        if any(_ns(task) == self._root for task in snapshot.tasks):
            # An ``input`` checkpoint is a new turn; a resume run writes none.
            self._verdict = "abandoned" if self._new_turn else self._passed()
            return False
        self._new_turn = self._new_turn or (snapshot.metadata or {}).get("source") == "input"
        self._want = _checkpoint_id(snapshot.parent_config)
        if self._want is None:
            self._verdict = "no"
            return False
        return True

    def feed(self, history: Iterable[StateSnapshot]) -> None:
        """:meth:`admit` checkpoints from ``history`` (newest first) until the verdict is known."""
        for snapshot in history:
            if not self.admit(snapshot):
                break

    @property
    def verdict(self) -> Consumed:
        """:func:`consumed_gate`'s answer from what was read (history not found: ``"no"``)."""
        return self._verdict or "no"

    @property
    def finished(self) -> bool:
        """Nothing will wait for the row again: its thread finished after ``since``, or a new
        turn started on it after the row's gate (``finished``)."""
        return self.done_since or self.verdict == "abandoned"

    @property
    def proceeds(self) -> bool:
        """``proceed`` answers True: the gate was passed on this run (``run`` or ``done``)."""
        return self.verdict in ("run", "done")

    @property
    def runs(self) -> bool:
        """``proceed`` drives the thread on (``invoke(None)``)."""
        return self.verdict == "run"


def reads_gate(record: ReviewRecord) -> bool:
    """Whether a resumer can look for the row's gate at all (``resume``, ``target``,
    ``proceed``): a graph row has a thread and a checkpoint namespace."""
    return record.thread_id is not None and record.checkpoint_ns is not None


def reads_finished(record: ReviewRecord) -> bool:
    """Whether ``finished`` can say anything: a thread, and a decision recorded."""
    return record.thread_id is not None and record.decided_at is not None


def resume_map(
    found: tuple[str, Any], codec: InterruptCodec, decisions: Sequence[Decision]
) -> dict[str, Any]:
    """``{interrupt_id: value}``: what resumes the interrupt ``found`` with ``decisions``."""
    interrupt_id, pending = found
    return {interrupt_id: codec.encode(pending, decisions)}


log = logging.getLogger("hitl_agent.langgraph")

_REFUSED: set[str | None] = set()  # request ids whose refusal was logged (once per process)


def ungated_tool(graph: Any, state: StateSnapshot, record: ReviewRecord) -> str | None:
    """The tool name when ``record`` is the review of a call that ``require_approval`` gated
    (``payload["gated_tool"]``) and the graph running now holds that tool in the row's tools
    node without its gate (a redeploy dropped ``require_approval``): resuming would run the
    call unreviewed. None when it is still gated or cannot be told."""
    tool = record.payload.get("gated_tool")
    if not isinstance(tool, str) or not record.checkpoint_ns:
        return None
    node = record.checkpoint_ns.split("|")[0].split(":")[0]
    spec = (getattr(graph, "nodes", None) or {}).get(node)
    tools = getattr(getattr(spec, "bound", None), "tools_by_name", None)
    if not isinstance(tools, dict):
        return None  # not a ToolNode (a subgraph, a custom node): its own code decides
    # Duck-typed: the adapter does not import the LangChain wrappers.
    return None if getattr(tools.get(tool), "gates_calls", False) else tool


class GraphResumer:
    """Resumes a compiled LangGraph graph (with its checkpointer) for decided reviews.

    Args:
        graph: the compiled graph; it must have the checkpointer the gates ran with.
        durability: the resume run's durability, ``"sync"`` or ``"async"``; ``"exit"`` is
            refused (it saves nothing until the graph exits, so a crash after an approved
            action would run it again from the interrupt). ``"sync"`` persists every step
            before the next, which keeps the crash window after an approved action small.
        config: extra config merged into every resume (``thread_id`` comes from the row).
        codec: how the row's interrupt is recognised and its answer encoded (the gate's own
            reviews by default; the middleware bridge passes LangChain's format).
    """

    def __init__(
        self,
        graph: Any,
        *,
        durability: Literal["sync", "async"] = "sync",
        config: RunnableConfig | None = None,
        codec: InterruptCodec = REVIEW_CODEC,
    ) -> None:
        self.graph = graph
        self.durability = check_durability(durability)
        self._config = config or {}
        self.codec = codec

    def __repr__(self) -> str:
        return f"GraphResumer({type(self.graph).__name__})"

    def _thread_config(self, record: ReviewRecord) -> RunnableConfig:
        configurable = {**(self._config.get("configurable") or {}), "thread_id": record.thread_id}
        return {**self._config, "configurable": configurable}

    # The twins below differ only in their IO (get_state / aget_state, the history,
    # invoke / ainvoke): what to resume, when a thread is finished and what proceed may do
    # are decided by find_interrupt, resume_map and ThreadScan, without IO.

    def _command(
        self, state: StateSnapshot, record: ReviewRecord, decisions: Sequence[Decision]
    ) -> Command[Any] | None:
        """The resume of the row's pending interrupt in ``state``, or None (not waiting, or
        the graph no longer gates the call: resuming would run it unreviewed)."""
        found = find_interrupt(state, record, self.codec, reused=True)
        if found is None:
            return None
        tool = ungated_tool(self.graph, state, record)
        if tool is not None:
            if record.request_id not in _REFUSED:
                _REFUSED.add(record.request_id)
                log.error(
                    "not resuming: the graph's tools node no longer gates tool %s, so the "
                    "resume would run the call its reviewer decided on without its gate "
                    "request_id=%s thread=%s",
                    tool,
                    record.request_id,
                    record.thread_id,
                )
            return None
        return Command(resume=resume_map(found, self.codec, decisions))

    def target(self, record: ReviewRecord) -> str | None:
        """The interrupt id a decision for ``record`` would resume, or None."""
        if not reads_gate(record):
            return None
        state = self.graph.get_state(self._thread_config(record), subgraphs=True)
        found = find_interrupt(state, record, self.codec, reused=True)
        return found[0] if found is not None else None

    def resume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool:
        """Resume the row's task with ``decisions``; False (nothing run) if it is not waiting."""
        if not reads_gate(record):
            return False
        config = self._thread_config(record)
        state = self.graph.get_state(config, subgraphs=True)
        command = self._command(state, record, decisions)
        if command is None:
            return False
        self.graph.invoke(command, config, durability=self.durability)
        return True

    async def aresume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool:
        """Async twin of :meth:`resume` (``aget_state`` / ``ainvoke``)."""
        if not reads_gate(record):
            return False
        config = self._thread_config(record)
        try:
            state = await self.graph.aget_state(config, subgraphs=True)
        except NotImplementedError:
            # A sync-only checkpointer (SqliteSaver): run the sync path off the event loop.
            return await asyncio.to_thread(self.resume, record, decisions)
        command = self._command(state, record, decisions)
        if command is None:
            return False
        await self.graph.ainvoke(command, config, durability=self.durability)
        return True

    def finished(self, record: ReviewRecord) -> bool:
        """True when nothing will wait for the row again: its thread finished after the
        decision was recorded, or started a new turn after the row's gate."""
        if not reads_finished(record):
            return False
        config = self._thread_config(record)
        state = self.graph.get_state(config, subgraphs=True)
        scan = ThreadScan(state, record, since=record.decided_at)
        if scan.wants_history:
            scan.feed(self.graph.get_state_history(config))
        return scan.finished

    async def afinished(self, record: ReviewRecord) -> bool:
        """Async twin of :meth:`finished`."""
        if not reads_finished(record):
            return False
        config = self._thread_config(record)
        try:
            state = await self.graph.aget_state(config, subgraphs=True)
        except NotImplementedError:  # a sync-only checkpointer
            return await asyncio.to_thread(self.finished, record)
        scan = ThreadScan(state, record, since=record.decided_at)
        if scan.wants_history:
            await self._afeed(scan, config)
        return scan.finished

    def proceed(self, record: ReviewRecord) -> bool:
        """Drive on a thread that consumed the row's interrupt and stopped short of the end.

        Returns True when it ran the rest of the thread (``invoke(None)``) or nothing is left
        for this row; False (nothing run) unless :func:`consumed_gate` allows it.
        """
        if not reads_gate(record):
            return False
        config = self._thread_config(record)
        state = self.graph.get_state(config, subgraphs=True)
        scan = ThreadScan(state, record)
        if scan.wants_history:
            scan.feed(self.graph.get_state_history(config))
        if scan.runs:
            self.graph.invoke(None, config, durability=self.durability)
        return scan.proceeds

    async def aproceed(self, record: ReviewRecord) -> bool:
        """Async twin of :meth:`proceed` (``aget_state`` / ``ainvoke``)."""
        if not reads_gate(record):
            return False
        config = self._thread_config(record)
        try:
            state = await self.graph.aget_state(config, subgraphs=True)
        except NotImplementedError:  # a sync-only checkpointer
            return await asyncio.to_thread(self.proceed, record)
        scan = ThreadScan(state, record)
        if scan.wants_history:
            await self._afeed(scan, config)
        if scan.runs:
            await self.graph.ainvoke(None, config, durability=self.durability)
        return scan.proceeds

    async def _afeed(self, scan: ThreadScan, config: RunnableConfig) -> None:
        """Async twin of ``scan.feed(graph.get_state_history(config))``."""
        history = self.graph.aget_state_history(config)
        try:
            async for snapshot in history:
                if not scan.admit(snapshot):
                    break
        finally:
            close = getattr(history, "aclose", None)
            if close is not None:
                await close()
