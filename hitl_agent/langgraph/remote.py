"""RemoteGraphResumer: resume a thread on a LangGraph Server (``langgraph-sdk``), or nothing.

The rule is :class:`~hitl_agent.langgraph.GraphResumer`'s, applied over HTTP: read the
thread's state (``GET /threads/{id}/state?subgraphs=true``), find the gate's task by its
checkpoint namespace waiting on an interrupt whose payload is ours, and only then create one
run that answers that interrupt by id and wait for it::

    POST /threads/{id}/runs/wait
    {"assistant_id": ..., "command": {"resume": {interrupt_id: {"hitl_agent_decisions": [...]}}},
     "multitask_strategy": "reject", "if_not_exists": "reject", "durability": "sync"}

A thread that consumed the row's interrupt and stopped short of the end (the server's worker
died after the gate's step) is driven on by :meth:`RemoteGraphResumer.proceed` under the same
rule as the local resumer's (:class:`~hitl_agent.langgraph._resumer.ThreadScan` over
``GET /threads/{id}/history``): one run with no input, ``multitask_strategy="reject"``.

An unknown thread (404), a finished thread or a task that is not waiting returns False and
creates no run: a run on a thread that is not waiting would *start* it. The run is created
with ``if_not_exists="reject"`` (a thread deleted in between is not re-created) and
``multitask_strategy="reject"`` (a thread that is already running a resume refuses a second
one with 409). Any other failure, and a run that ends in error, raises
:class:`RemoteResumeError`; the dispatcher then releases its claim and retries later.

::

    from hitl_agent.langgraph.remote import RemoteGraphResumer
    dispatcher = keeper.dispatcher(RemoteGraphResumer("http://127.0.0.1:2024", "agent"))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from langgraph.types import Interrupt, PregelTask, StateSnapshot

from .._extras import MissingExtraError

try:
    from langgraph_sdk import get_client, get_sync_client
    from langgraph_sdk.errors import NotFoundError
except ImportError as err:
    raise MissingExtraError("remote", "RemoteGraphResumer", "langgraph-sdk") from err

from .._exceptions import RemoteResumeError
from ..decision import Decision
from ..ledger import ReviewRecord
from ..protocol import REVIEW_CODEC, InterruptCodec
from ._resumer import (
    ThreadScan,
    check_durability,
    find_interrupt,
    reads_finished,
    reads_gate,
    resume_map,
)

if TYPE_CHECKING:
    from langgraph_sdk.client import LangGraphClient, SyncLangGraphClient

__all__ = ["RemoteGraphResumer", "RemoteResumeError", "snapshot_from_thread_state"]

Durability = Literal["sync", "async"]


def snapshot_from_thread_state(state: Mapping[str, Any]) -> StateSnapshot:
    """The parts of a ``ThreadState`` JSON that find a pending interrupt, as a StateSnapshot.

    Tasks (with their interrupts and results), ``next``, the checkpoint's ``created_at``, its
    id and its parent's id, its metadata and, with ``subgraphs=True``, the nested states of
    subgraph tasks are kept; values are not needed and left empty.
    """
    created_at = state.get("created_at")
    tasks = []
    for task in state.get("tasks") or ():
        nested = task.get("state")
        interrupts = tuple(
            Interrupt(value=item.get("value"), id=str(item.get("id")))
            for item in task.get("interrupts") or ()
            if isinstance(item, Mapping) and item.get("id")
        )
        tasks.append(
            PregelTask(
                id=str(task.get("id")),
                name=str(task.get("name")),
                path=tuple(task.get("path") or ()),
                error=None,
                interrupts=interrupts,
                # A subgraph's state is a nested ThreadState; otherwise null or a config.
                state=(
                    snapshot_from_thread_state(nested)
                    if isinstance(nested, Mapping) and "tasks" in nested
                    else None
                ),
                result=task.get("result"),
            )
        )
    metadata = state.get("metadata")
    return StateSnapshot(
        values={},
        next=tuple(state.get("next") or ()),
        config=_config_of(state.get("checkpoint")),
        metadata=dict(metadata) if isinstance(metadata, Mapping) else None,  # type: ignore[arg-type]
        created_at=created_at if isinstance(created_at, str) else None,
        parent_config=_config_of(state.get("parent_checkpoint")) or None,
        tasks=tuple(tasks),
        interrupts=(),
    )


def _config_of(checkpoint: Any) -> Any:
    """A ``{"configurable": {"checkpoint_id": ...}}`` config for a ThreadState checkpoint."""
    if isinstance(checkpoint, Mapping) and checkpoint.get("checkpoint_id"):
        return {"configurable": {"checkpoint_id": str(checkpoint["checkpoint_id"])}}
    return {}


def _unread(record: ReviewRecord, exc: Exception) -> None:
    """A failed read of the row's thread: an unknown thread (404) leaves nothing to do (None);
    anything else raises :class:`RemoteResumeError` (the SDK's error chained)."""
    if isinstance(exc, NotFoundError):
        return None
    raise RemoteResumeError.wrap(f"reading thread {record.thread_id}", exc) from exc


def _check_run(thread_id: str, result: Any) -> None:
    """Raise if a ``/runs/wait`` body says the run ended in error."""
    if isinstance(result, Mapping) and isinstance(result.get("__error__"), Mapping):
        failure = result["__error__"]
        raise RemoteResumeError(
            f"the resume run of thread {thread_id} failed: "
            f"{failure.get('error')}: {failure.get('message')}"
        )


class RemoteGraphResumer:
    """Resumes threads of a LangGraph Server deployment for decided reviews.

    Args:
        url: the server's base URL (``http://127.0.0.1:2024`` for ``langgraph dev``).
        assistant_id: the assistant (or graph id) whose threads the gates run in.
        api_key: sent as ``x-api-key``; None lets ``langgraph-sdk`` read
            ``LANGGRAPH_API_KEY`` / ``LANGSMITH_API_KEY`` / ``LANGCHAIN_API_KEY``.
        headers: extra headers for every call (e.g. a custom auth header).
        client: a ``langgraph_sdk`` sync client to use instead of building one (then
            ``url``, ``api_key`` and ``headers`` are not used for sync calls).
        aclient: the async client for :meth:`aresume`, likewise.
        durability: the resume run's durability; ``"sync"`` persists every step before the
            next.
        config: run config sent with every resume (``thread_id`` comes from the row).
        codec: how the row's interrupt is recognised and its answer encoded (see
            :mod:`hitl_agent.protocol`).
    """

    def __init__(
        self,
        url: str,
        assistant_id: str,
        *,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        client: SyncLangGraphClient | None = None,
        aclient: LangGraphClient | None = None,
        durability: Durability = "sync",
        config: Mapping[str, Any] | None = None,
        codec: InterruptCodec = REVIEW_CODEC,
    ) -> None:
        self.codec = codec
        self.url = url.rstrip("/")
        self.assistant_id = assistant_id
        self.durability: Durability = check_durability(durability)
        self._api_key = api_key
        self._headers = dict(headers) if headers else None
        self._client = client
        self._aclient = aclient
        self._config = dict(config) if config else None

    def __repr__(self) -> str:
        return f"RemoteGraphResumer(url={self.url!r}, assistant_id={self.assistant_id!r})"

    @property
    def client(self) -> SyncLangGraphClient:
        """The sync SDK client (built on first use)."""
        if self._client is None:
            if self._api_key is None:
                self._client = get_sync_client(url=self.url, headers=self._headers)
            else:
                self._client = get_sync_client(
                    url=self.url, api_key=self._api_key, headers=self._headers
                )
        return self._client

    @property
    def aclient(self) -> LangGraphClient:
        """The async SDK client (built on first use, inside the running loop)."""
        if self._aclient is None:
            if self._api_key is None:
                self._aclient = get_client(url=self.url, headers=self._headers)
            else:
                self._aclient = get_client(
                    url=self.url, api_key=self._api_key, headers=self._headers
                )
        return self._aclient

    def close(self) -> None:
        """Close the sync client's connections."""
        if self._client is not None:
            self._client.close()

    async def aclose(self) -> None:
        """Close the async client's connections."""
        if self._aclient is not None:
            await self._aclient.aclose()

    # The twins below differ only in their IO (client / aclient): what to resume, when a
    # thread is finished and what proceed may do are decided by find_interrupt, resume_map
    # and ThreadScan (the local resumer's rules), how a failed read ends by _unread.

    # -- target --------------------------------------------------------------------------

    def target(self, record: ReviewRecord) -> str | None:
        """The interrupt id a decision for ``record`` would resume, or None."""
        found = self._pending(record)
        return found[0] if found is not None else None

    async def atarget(self, record: ReviewRecord) -> str | None:
        """Async twin of :meth:`target`."""
        found = await self._apending(record)
        return found[0] if found is not None else None

    def _found(self, raw: Mapping[str, Any], record: ReviewRecord) -> tuple[str, Any] | None:
        # A LangGraph Server runs one run per thread at a time: no reused (double-texted) gate.
        return find_interrupt(snapshot_from_thread_state(raw), record, self.codec)

    def _pending(self, record: ReviewRecord) -> tuple[str, Any] | None:
        """The id and value of the interrupt ``record`` would resume on the server, or None."""
        if not reads_gate(record):
            return None
        try:
            raw = self.client.threads.get_state(str(record.thread_id), subgraphs=True)
        except Exception as exc:
            _unread(record, exc)
            return None
        return self._found(raw, record)

    async def _apending(self, record: ReviewRecord) -> tuple[str, Any] | None:
        """Async twin of :meth:`_pending`."""
        if not reads_gate(record):
            return None
        try:
            raw = await self.aclient.threads.get_state(str(record.thread_id), subgraphs=True)
        except Exception as exc:
            _unread(record, exc)
            return None
        return self._found(raw, record)

    def finished(self, record: ReviewRecord) -> bool:
        """True when nothing on the server will wait for the row again: its thread finished
        after the decision was recorded, or started a new turn after the row's gate."""
        if not reads_finished(record):
            return False
        thread_id = str(record.thread_id)
        try:
            # The state ThreadScan is written for (subgraph states nested), as every other
            # read here and GraphResumer.finished read it (issue 18).
            raw = self.client.threads.get_state(thread_id, subgraphs=True)
            scan = ThreadScan(snapshot_from_thread_state(raw), record, since=record.decided_at)
            if scan.done_since:
                return True
            history = self.client.threads.get_history(thread_id, limit=self._history_limit())
        except Exception as exc:
            _unread(record, exc)
            return False
        scan.feed(snapshot_from_thread_state(item) for item in history)
        return scan.finished

    async def afinished(self, record: ReviewRecord) -> bool:
        """Async twin of :meth:`finished`."""
        if not reads_finished(record):
            return False
        thread_id = str(record.thread_id)
        try:
            raw = await self.aclient.threads.get_state(thread_id, subgraphs=True)
            scan = ThreadScan(snapshot_from_thread_state(raw), record, since=record.decided_at)
            if scan.done_since:
                return True
            history = await self.aclient.threads.get_history(thread_id, limit=self._history_limit())
        except Exception as exc:
            _unread(record, exc)
            return False
        scan.feed(snapshot_from_thread_state(item) for item in history)
        return scan.finished

    # -- proceed -------------------------------------------------------------------------

    def _history_limit(self) -> int:
        return 50

    def _scan(
        self, raw: Mapping[str, Any], history: Sequence[Any], record: ReviewRecord
    ) -> ThreadScan:
        """ThreadScan over a read state and history (for proceed: no ``since``)."""
        scan = ThreadScan(snapshot_from_thread_state(raw), record)
        scan.feed(snapshot_from_thread_state(item) for item in history)
        return scan

    def proceed(self, record: ReviewRecord) -> bool:
        """Drive on a thread that consumed the row's interrupt and stopped short of the end.

        Returns True when one input-less run finished the thread (or nothing is left for
        the row); False (no run) unless the consumed-gate rule of the local resumer allows
        it.

        Raises:
            RemoteResumeError: the server refused the run (409 busy...) or it ended in error.
        """
        if not reads_gate(record):
            return False
        thread_id = str(record.thread_id)
        try:
            raw = self.client.threads.get_state(thread_id, subgraphs=True)
            history = self.client.threads.get_history(thread_id, limit=self._history_limit())
        except Exception as exc:
            _unread(record, exc)
            return False
        scan = self._scan(raw, history, record)
        if scan.runs:
            try:
                result = self.client.runs.wait(
                    thread_id, self.assistant_id, **self._continue_kwargs()
                )
            except Exception as exc:
                raise RemoteResumeError.wrap(f"continuing thread {thread_id}", exc) from exc
            _check_run(thread_id, result)
        return scan.proceeds

    async def aproceed(self, record: ReviewRecord) -> bool:
        """Async twin of :meth:`proceed`."""
        if not reads_gate(record):
            return False
        thread_id = str(record.thread_id)
        try:
            raw = await self.aclient.threads.get_state(thread_id, subgraphs=True)
            history = await self.aclient.threads.get_history(thread_id, limit=self._history_limit())
        except Exception as exc:
            _unread(record, exc)
            return False
        scan = self._scan(raw, history, record)
        if scan.runs:
            try:
                result = await self.aclient.runs.wait(
                    thread_id, self.assistant_id, **self._continue_kwargs()
                )
            except Exception as exc:
                raise RemoteResumeError.wrap(f"continuing thread {thread_id}", exc) from exc
            _check_run(thread_id, result)
        return scan.proceeds

    def _continue_kwargs(self) -> dict[str, Any]:
        # No input and no command: the server continues the thread from its checkpoint.
        kwargs: dict[str, Any] = {
            "input": None,
            "multitask_strategy": "reject",
            "if_not_exists": "reject",
            "durability": self.durability,
            "raise_error": False,
        }
        if self._config is not None:
            kwargs["config"] = self._config
        return kwargs

    # -- resume --------------------------------------------------------------------------

    def _run_kwargs(self, found: tuple[str, Any], decisions: Sequence[Decision]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "command": {"resume": resume_map(found, self.codec, decisions)},
            "multitask_strategy": "reject",
            "if_not_exists": "reject",
            "durability": self.durability,
            "raise_error": False,
        }
        if self._config is not None:
            kwargs["config"] = self._config
        return kwargs

    def resume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool:
        """Resume the row's task with ``decisions``; False (no run created) if not waiting.

        Raises:
            RemoteResumeError: the server refused the run (409 busy, 404 assistant, 5xx...)
                or the run ended in error.
        """
        found = self._pending(record)
        if found is None:
            return False
        assert record.thread_id is not None
        try:
            result = self.client.runs.wait(
                record.thread_id, self.assistant_id, **self._run_kwargs(found, decisions)
            )
        except Exception as exc:
            raise RemoteResumeError.wrap(f"resuming thread {record.thread_id}", exc) from exc
        _check_run(record.thread_id, result)
        return True

    async def aresume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool:
        """Async twin of :meth:`resume`."""
        found = await self._apending(record)
        if found is None:
            return False
        assert record.thread_id is not None
        try:
            result = await self.aclient.runs.wait(
                record.thread_id, self.assistant_id, **self._run_kwargs(found, decisions)
            )
        except Exception as exc:
            raise RemoteResumeError.wrap(f"resuming thread {record.thread_id}", exc) from exc
        _check_run(record.thread_id, result)
        return True
