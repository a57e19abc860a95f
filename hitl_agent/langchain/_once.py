"""At most once: an approved call's action runs in one attempt, whatever re-runs its task.

LangGraph re-runs a whole task on each resume, and a resume can fail after the action's side
effect (the tool raised after charging the card; the checkpointer could not save the step) or
be overtaken (its process stalled past the lease and another replica resumed the thread). So
before the wrapped tool runs, the wrapper records in the ledger that *this attempt* starts it
(:meth:`~hitl_agent.ledger.Ledger.start_execution`: first writer wins) and afterwards records
the outcome with the result. Every later run of the same call finds the record and does not
run the action again:

* ``succeeded``: the recorded result is returned again (the same ToolMessage content);
* ``failed``: an error result says the approved action failed and was not run again;
* ``started`` (no outcome: the attempt died, stalled, or is still running elsewhere): the
  record is flagged ``in_doubt`` and an error result says the action may have run; an
  operator settles it (``hitl-agent ledger settle``).

While the action runs, :func:`approved_call` tells the tool its approval (and a stable
idempotency key for the system that performs the side effect), so the one window no ledger
can close (a SIGKILL after the side effect and before the outcome is recorded) is closed there.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.messages import ToolMessage
from langgraph.errors import GraphBubbleUp
from pydantic_core import PydanticSerializationError, to_jsonable_python

from .._claims import check_claim
from .._hooks import checkpoint

if TYPE_CHECKING:
    from ..decision import Decision
    from ..ledger import ExecutionRecord, Ledger

__all__ = ["ApprovedCall", "Execution", "approved_call"]

log = logging.getLogger("hitl_agent.langchain")


@dataclass(frozen=True)
class ApprovedCall:
    """The approval an approved tool call runs under (see :func:`approved_call`).

    Attributes:
        idempotency_key: stable for this approved call across every re-run, resume and
            replica; different for every other call. Pass it to the system that performs
            the side effect (a payment API's ``Idempotency-Key``), so that a repeat there is
            a no-op.
        request_id: the HITL request that approved it.
        decision: the reviewer's decision.
        tool: the tool's name.
        tool_call_id: the model's tool call id, when known.
    """

    idempotency_key: str
    request_id: str
    decision: Decision | None
    tool: str
    tool_call_id: str | None


_CURRENT: contextvars.ContextVar[ApprovedCall | None] = contextvars.ContextVar(
    "hitl_agent_approved_call", default=None
)


def approved_call() -> ApprovedCall | None:
    """The approval of the tool call running now, inside a tool that
    ``require_approval`` wraps; None anywhere else.

    ::

        @keeper.require_approval
        def charge(customer: str, cents: int) -> str:
            approval = approved_call()
            key = approval.idempotency_key if approval else None
            return payments.charge(customer, cents, idempotency_key=key)
    """
    return _CURRENT.get()


# The wrapper's not-run result prefixes these with "Not run: ".
_IN_DOUBT = (
    "this approved call was already started at {at} by an earlier attempt that recorded no "
    "outcome (its process stopped, stalled or lost its claim), so it may or may not have "
    "taken effect; it was not run again. It is recorded as in doubt: an operator can check "
    "and settle it with `hitl-agent ledger settle {key}`."
)
_FAILED = (
    "this approved call already ran once and failed ({note}); an approval covers one "
    "attempt, so it was not run again. Ask again if it should be retried."
)
_OPAQUE = (
    "this approved call already ran once; its result could not be recorded, so it cannot "
    "be shown again, and it was not run again."
)


def _stamp(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def recorded(result: Any) -> dict[str, Any]:
    """A tool's raw result as JSON the ledger can keep and :meth:`Execution.replay` rebuild."""
    try:
        if isinstance(result, str):
            return {"kind": "text", "content": result}
        if isinstance(result, ToolMessage):
            return {
                "kind": "message",
                "content": to_jsonable_python(result.content),
                "status": result.status,
                "artifact": to_jsonable_python(result.artifact),
            }
        if isinstance(result, tuple) and len(result) == 2:  # content_and_artifact
            return {
                "kind": "pair",
                "content": to_jsonable_python(result[0]),
                "artifact": to_jsonable_python(result[1]),
            }
        return {"kind": "json", "value": to_jsonable_python(result)}
    except (PydanticSerializationError, TypeError, ValueError):
        # A Command, an object: the action ran; a repeat run reports that instead.
        return {"kind": "opaque", "type": type(result).__name__}


@dataclass
class Execution:
    """One attempt at one approved call's action.

    Args:
        ledger: the keeper's ledger.
        key: the execution's key (the call's first review row key).
        tool: the tool's name.
        request_id: the approving request.
        thread_id: the graph thread, when in one.
        tool_call_id: the model's call id (replayed results carry it).
        decision: the decision (for :func:`approved_call`).
        not_run: builds the wrapper's error result from a message.
        clock: epoch seconds.
    """

    ledger: Ledger
    key: str
    tool: str
    request_id: str
    thread_id: str | None
    tool_call_id: str | None
    decision: Decision | None
    not_run: Callable[[str], Any]
    clock: Callable[[], float] = time.time
    owner: str = ""

    def __post_init__(self) -> None:
        self.owner = self.owner or f"exec-{uuid.uuid4().hex}"

    # -- what a later run returns instead of running ------------------------------------

    def replay(self, record: ExecutionRecord) -> Any:
        """The result for a call whose action an earlier attempt started."""
        if record.state == "succeeded" and record.result is not None:
            return self._rebuild(record.result)
        if record.state == "failed":
            return self.not_run(_FAILED.format(note=record.note or "no detail recorded"))
        if record.state == "started":
            self.ledger.flag_in_doubt(record.key, note=f"found unfinished by {self.owner}")
            log.error(
                "approved call in doubt: started, no outcome recorded; not run again "
                "tool=%s request_id=%s key=%s",
                self.tool,
                self.request_id,
                record.key,
            )
        return self.not_run(_IN_DOUBT.format(at=_stamp(record.started_at), key=record.key))

    def _rebuild(self, result: dict[str, Any]) -> Any:
        kind = result.get("kind")
        if kind == "text":
            return result["content"]
        if kind == "pair":
            return result["content"], result["artifact"]
        if kind == "json":
            return result["value"]
        if kind == "message" and self.tool_call_id is not None:
            return ToolMessage(
                result["content"],
                tool_call_id=self.tool_call_id,
                name=self.tool,
                status=result.get("status", "success"),
                artifact=result.get("artifact"),
            )
        return self.not_run(_OPAQUE) if kind == "opaque" else result.get("content", "")

    # -- the attempt ----------------------------------------------------------------------

    def begin(self) -> tuple[bool, Any]:
        """``(True, None)``: this attempt runs the action; ``(False, result)``: an earlier
        attempt started it, return ``result`` instead."""
        check_claim()  # never start under a resume claim that expired (a stalled process)
        record, mine = self.ledger.start_execution(
            self.key,
            self.owner,
            now=self.clock(),
            request_id=self.request_id,
            thread_id=self.thread_id,
            tool=self.tool,
        )
        if mine and record.state == "started":
            return True, None
        return False, self.replay(record)

    async def abegin(self) -> tuple[bool, Any]:
        """Async twin of :meth:`begin` (the ledger in a worker thread)."""
        return await asyncio.to_thread(self.begin)

    def end(self, result: Any = None, error: BaseException | None = None) -> None:
        """Record the outcome. A suspension (the tool itself interrupted) is not an
        outcome: the record is dropped so the resumed call starts again."""
        if isinstance(error, GraphBubbleUp):
            self.ledger.forget_execution(self.key, self.owner)
            return
        now = self.clock()
        if error is None:
            self.ledger.finish_execution(
                self.key, self.owner, state="succeeded", now=now, result=recorded(result)
            )
            return
        note = f"{type(error).__name__}: {str(error)[:300]}"
        self.ledger.finish_execution(self.key, self.owner, state="failed", now=now, note=note)
        log.error(
            "approved call failed; it will not be run again tool=%s request_id=%s error=%s",
            self.tool,
            self.request_id,
            type(error).__name__,
        )

    def run(self, action: Callable[[], Any]) -> Any:
        """Run ``action`` at most once across every attempt of this call."""
        go, instead = self.begin()
        if not go:
            return instead
        checkpoint("execution.after_start")
        token = _CURRENT.set(self._approved())
        # A KeyboardInterrupt, SystemExit or cancellation mid-action records nothing: the
        # record stays "started", and a later run reports the call in doubt (it may have
        # taken effect), which is the truth.
        try:
            result = action()
        except Exception as exc:
            self._end_quietly(None, exc)
            raise
        finally:
            _CURRENT.reset(token)
        checkpoint("execution.after_action")
        self._end_quietly(result, None)
        return result

    async def arun(self, action: Callable[[], Any]) -> Any:
        """Async twin of :meth:`run` (``action`` returns an awaitable)."""
        go, instead = await self.abegin()
        if not go:
            return instead
        checkpoint("execution.after_start")
        token = _CURRENT.set(self._approved())
        try:  # cancelled mid-action: nothing recorded (see run())
            result = await action()
        except Exception as exc:
            await asyncio.to_thread(self._end_quietly, None, exc)
            raise
        finally:
            _CURRENT.reset(token)
        checkpoint("execution.after_action")
        await asyncio.to_thread(self._end_quietly, result, None)
        return result

    def _end_quietly(self, result: Any, error: BaseException | None) -> None:
        # The action's own outcome matters more than the bookkeeping's: a ledger that fails
        # here leaves the record "started", which a later run reports as in doubt.
        try:
            self.end(result, error)
        except Exception:
            log.exception(
                "could not record the outcome of an approved call request_id=%s key=%s",
                self.request_id,
                self.key,
            )

    def _approved(self) -> ApprovedCall:
        return ApprovedCall(
            idempotency_key=f"hitl-{self.request_id}",
            request_id=self.request_id,
            decision=self.decision,
            tool=self.tool,
            tool_call_id=self.tool_call_id,
        )
