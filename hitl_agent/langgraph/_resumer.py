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
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command, StateSnapshot

from .._exceptions import ConfigError
from ..decision import Decision
from ..gate._pregel import has_work, walk_tasks, written_at
from ..ledger import ReviewRecord
from ..protocol import REVIEW_CODEC, InterruptCodec

__all__ = ["GraphResumer", "check_durability", "find_interrupt", "thread_finished_since"]


def find_interrupt(
    state: StateSnapshot, record: ReviewRecord, codec: InterruptCodec = REVIEW_CODEC
) -> tuple[str, Any] | None:
    """The id and value of the pending interrupt of the row's task that ``codec`` matches."""
    return _find(state, record, codec, "")


def _find(
    state: StateSnapshot, record: ReviewRecord, codec: InterruptCodec, prefix: str
) -> tuple[str, Any] | None:
    for ns, task in walk_tasks(state, prefix):
        if ns == record.checkpoint_ns:
            for interrupt in task.interrupts:
                if codec.matches(interrupt.value, record):
                    return interrupt.id, interrupt.value
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

    def target(self, record: ReviewRecord) -> str | None:
        """The interrupt id a decision for ``record`` would resume, or None."""
        found = self._pending(record)
        return found[0] if found is not None else None

    def _pending(self, record: ReviewRecord) -> tuple[str, Any] | None:
        """The id and value of the interrupt a decision for ``record`` would resume, or None."""
        if record.thread_id is None or record.checkpoint_ns is None:
            return None
        state = self.graph.get_state(self._thread_config(record), subgraphs=True)
        return find_interrupt(state, record, self.codec)

    def resume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool:
        """Resume the row's task with ``decisions``; False (nothing run) if it is not waiting."""
        found = self._pending(record)
        if found is None:
            return False
        interrupt_id, pending = found
        value = self.codec.encode(pending, decisions)
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
        found = find_interrupt(state, record, self.codec)
        if found is None:
            return False
        interrupt_id, pending = found
        value = self.codec.encode(pending, decisions)
        await self.graph.ainvoke(
            Command(resume={interrupt_id: value}), config, durability=self.durability
        )
        return True
