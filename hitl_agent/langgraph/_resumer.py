"""GraphResumer: resume exactly the LangGraph thread a decision belongs to, or nothing.

LangGraph starts a thread it does not know when you resume it, silently ignores resume ids that
are not pending, and re-runs the node either way. So a resume happens only after
``get_state`` shows that the thread is waiting in the gate's task (same checkpoint namespace)
on an interrupt whose payload is ours; the resume is addressed by that interrupt's id::

    graph.invoke(Command(resume={interrupt.id: {"hitl_agent_decisions": [decision]}}), config)

Anything else (unknown thread, finished thread, a task that is not waiting yet) returns False
and invokes nothing; the dispatcher keeps the row ``decided`` and tries again later, which is
what makes a decision that arrives before the interrupt is durable safe (T15).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command, StateSnapshot

from .._exceptions import ConfigError
from ..decision import Decision
from ..ledger import ReviewRecord
from ._interrupt import resume_value

__all__ = ["PAYLOAD_KEY", "GraphResumer", "check_durability", "thread_finished_since"]

PAYLOAD_KEY = "hitl_agent"
"""The key of a gate's interrupt payload: ``{"hitl_agent": {"request_id": ..., "key": ...}}``."""


def _ours(value: Any, record: ReviewRecord) -> bool:
    stamp = value.get(PAYLOAD_KEY) if isinstance(value, dict) else None
    return isinstance(stamp, dict) and "request_id" in stamp


def _find_interrupt(state: StateSnapshot, record: ReviewRecord, prefix: str = "") -> str | None:
    """The id of the pending interrupt of the gate's task, if the task waits on one of ours."""
    for task in state.tasks:
        ns = f"{prefix}{task.name}:{task.id}"
        if ns == record.checkpoint_ns:
            for interrupt in task.interrupts:
                if _ours(interrupt.value, record):
                    return interrupt.id
        if isinstance(task.state, StateSnapshot):
            found = _find_interrupt(task.state, record, f"{ns}|")
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
    if state.next or state.tasks or state.created_at is None:
        return False
    try:
        written = datetime.fromisoformat(state.created_at).timestamp()
    except ValueError:
        return False
    return written > since


class GraphResumer:
    """Resumes a compiled LangGraph graph (with its checkpointer) for decided reviews.

    Args:
        graph: the compiled graph; it must have the checkpointer the gates ran with.
        durability: the resume run's durability, ``"sync"`` or ``"async"``; ``"exit"`` is
            refused (it saves nothing until the graph exits, so a crash after an approved
            action would run it again from the interrupt). ``"sync"`` persists every step
            before the next, which keeps the crash window after an approved action small.
        config: extra config merged into every resume (``thread_id`` comes from the row).
    """

    def __init__(
        self,
        graph: Any,
        *,
        durability: Literal["sync", "async"] = "sync",
        config: RunnableConfig | None = None,
    ) -> None:
        self.graph = graph
        self.durability = check_durability(durability)
        self._config = config or {}

    def __repr__(self) -> str:
        return f"GraphResumer({type(self.graph).__name__})"

    def _thread_config(self, record: ReviewRecord) -> RunnableConfig:
        configurable = {**(self._config.get("configurable") or {}), "thread_id": record.thread_id}
        return {**self._config, "configurable": configurable}

    def target(self, record: ReviewRecord) -> str | None:
        """The interrupt id a decision for ``record`` would resume, or None."""
        if record.thread_id is None or record.checkpoint_ns is None:
            return None
        state = self.graph.get_state(self._thread_config(record), subgraphs=True)
        return _find_interrupt(state, record)

    def resume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool:
        """Resume the row's task with ``decisions``; False (nothing run) if it is not waiting."""
        interrupt_id = self.target(record)
        if interrupt_id is None:
            return False
        value = resume_value([decision.model_dump(mode="json") for decision in decisions])
        self.graph.invoke(
            Command(resume={interrupt_id: value}),
            self._thread_config(record),
            durability=self.durability,
        )
        return True

    def finished(self, record: ReviewRecord) -> bool:
        """True when the row's thread finished after its decision was recorded."""
        if record.thread_id is None or record.decided_at is None:
            return False
        state = self.graph.get_state(self._thread_config(record))
        return thread_finished_since(state, record.decided_at)

    async def afinished(self, record: ReviewRecord) -> bool:
        """Async twin of :meth:`finished`."""
        if record.thread_id is None or record.decided_at is None:
            return False
        try:
            state = await self.graph.aget_state(self._thread_config(record))
        except NotImplementedError:  # a sync-only checkpointer
            return await asyncio.to_thread(self.finished, record)
        return thread_finished_since(state, record.decided_at)

    async def aresume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool:
        """Async twin of :meth:`resume` (``aget_state`` / ``ainvoke``)."""
        if record.thread_id is None or record.checkpoint_ns is None:
            return False
        config = self._thread_config(record)
        try:
            state = await self.graph.aget_state(config, subgraphs=True)
        except NotImplementedError:
            # A sync-only checkpointer (SqliteSaver): run the sync path off the event loop.
            return await asyncio.to_thread(self.resume, record, decisions)
        interrupt_id = _find_interrupt(state, record)
        if interrupt_id is None:
            return False
        value = resume_value([decision.model_dump(mode="json") for decision in decisions])
        await self.graph.ainvoke(
            Command(resume={interrupt_id: value}), config, durability=self.durability
        )
        return True
