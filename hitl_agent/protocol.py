"""The one protocol between the gate and its integrations (LangGraph, LangChain tools, the bridge).

Framework-free on purpose: nothing here imports LangGraph or LangChain, so the gate, the
dispatcher and every integration agree on these shapes without importing each other.

An interrupt raised by a gate carries a :class:`InterruptPayload`::

    {"hitl_agent": {"request_id": "...", "key": "...", "kind": "review", ...}}

and is resumed with a value produced by the :class:`InterruptCodec` registered for the
interrupt's kind. The gate's own kind, ``"review"``, is resumed with a :class:`ResumeBundle`::

    {"hitl_agent_decisions": [decision_json, ...]}

An integration whose interrupts are not the gate's (the ``HumanInTheLoopMiddleware`` bridge
resumes LangChain's own interrupts) supplies its own codec to the resumer; the resumer only
asks a codec two things: is this pending interrupt the one for this ledger row, and what value
resumes it with these decisions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, NotRequired, Protocol, TypeAlias, TypedDict

if TYPE_CHECKING:
    from .decision import Decision
    from .ledger import ReviewRecord

__all__ = [
    "DECISIONS_KEY",
    "PAYLOAD_KEY",
    "REVIEW_CODEC",
    "InterruptCodec",
    "InterruptPayload",
    "ResumeBundle",
    "ReviewCodec",
    "ReviewPayload",
    "WaitMode",
    "is_marker",
    "read_payload",
    "resume_value",
    "review_payload",
]

PAYLOAD_KEY = "hitl_agent"
"""The key of a gate's interrupt payload: ``{"hitl_agent": {"request_id": ..., "key": ...}}``."""

DECISIONS_KEY = "hitl_agent_decisions"
"""The key of a resume bundle: ``{"hitl_agent_decisions": [decision_json, ...]}``."""

ALIAS_MARKER = "hitl-alias|"
SLOT_MARKER = "hitl-slot|"
"""Request-id prefixes of the gate's bookkeeping rows (a run that reuses another run's request,
a slot claim). They are walked to ``resumed`` at once and never name an API request: the
resolver and the poller must never treat one as a decision to deliver."""


def is_marker(request_id: str | None) -> bool:
    """True for a bookkeeping row's request id (see :data:`ALIAS_MARKER`)."""
    return request_id is not None and request_id.startswith((ALIAS_MARKER, SLOT_MARKER))


WaitMode: TypeAlias = Literal["auto", "interrupt", "block"]
"""How a review waits: ``interrupt`` suspends the LangGraph thread durably, ``block`` waits in
this process on the shared poll loop, ``auto`` interrupts inside a graph run and blocks
outside one. Integrations pick the mode; ``auto`` is everyone's default."""


# The TypedDicts spell the keys out (mypy needs literals); they equal the constants above.


class ReviewPayload(TypedDict):
    """What a gate's interrupt tells the app (and the resumer) about its review."""

    request_id: str
    key: str
    kind: str
    summary: str
    priority: str
    response_type: str
    timeout_at: float | None
    tool_call_id: NotRequired[str | None]


class InterruptPayload(TypedDict):
    """The value passed to ``interrupt()`` by a gate."""

    hitl_agent: ReviewPayload


class ResumeBundle(TypedDict):
    """The value a ``review`` interrupt is resumed with: decisions addressed by request id."""

    hitl_agent_decisions: list[dict[str, Any]]


def review_payload(
    *,
    request_id: str,
    key: str,
    summary: str,
    priority: str,
    response_type: str,
    timeout_at: float | None,
    tool_call_id: str | None = None,
    kind: str = "review",
) -> InterruptPayload:
    """The interrupt payload of a gate's review."""
    return {
        "hitl_agent": {
            "request_id": request_id,
            "key": key,
            "kind": kind,
            "summary": summary,
            "priority": priority,
            "response_type": response_type,
            "timeout_at": timeout_at,
            "tool_call_id": tool_call_id,
        }
    }


def read_payload(value: Any) -> dict[str, Any] | None:
    """The gate's stamp in an interrupt value, or None when the interrupt is not a gate's."""
    stamp = value.get(PAYLOAD_KEY) if isinstance(value, dict) else None
    if isinstance(stamp, dict) and isinstance(stamp.get("request_id"), str):
        return stamp
    return None


def resume_value(decisions: Sequence[dict[str, Any]]) -> ResumeBundle:
    """The value to resume a review's interrupt with."""
    return {"hitl_agent_decisions": list(decisions)}


class InterruptCodec(Protocol):
    """How a resumer recognises the interrupt of a ledger row and encodes its answer."""

    def matches(self, value: Any, record: ReviewRecord) -> bool:
        """True when the pending interrupt ``value`` is the one ``record`` waits on."""
        ...

    def encode(self, value: Any, decisions: Sequence[Decision]) -> Any:
        """The resume value for the interrupt ``value`` given its task's decisions."""
        ...


class ReviewCodec:
    """The codec of the gate's own ``review`` interrupts.

    Any review interrupt in the row's task matches: a task's reviews are resumed together,
    and the gate picks its own decision out of the bundle by request id.
    """

    def matches(self, value: Any, record: ReviewRecord) -> bool:
        """True for any gate interrupt of kind ``review`` (or from before kinds existed)."""
        stamp = read_payload(value)
        return stamp is not None and stamp.get("kind", "review") == "review"

    def encode(self, value: Any, decisions: Sequence[Decision]) -> ResumeBundle:
        """A bundle of every decision, addressed by request id."""
        return resume_value([decision.model_dump(mode="json") for decision in decisions])


REVIEW_CODEC = ReviewCodec()
"""The default codec of every resumer."""
