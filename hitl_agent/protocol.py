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

Canonical JSON (:func:`canonical_json`, :func:`jsonable`) is the text an approval is bound to:
``sha256(canonical_json({"tool": ..., "args": ...}))`` is taken when the review is made and
checked when the approved call runs, often in another process after a restart. Nothing that
depends on the process may reach it: sets and frozensets (which iterate in an order that
follows ``PYTHONHASHSEED``) are sorted by their members' canonical JSON, and an object known
only by its default ``repr`` (a memory address) is refused, as are NaN and infinities (no
JSON form): a ConfigError naming the field when the review is asked for, never at resume.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NotRequired, Protocol, TypeAlias, TypedDict

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, to_jsonable_python

from ._exceptions import ConfigError

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
    "canonical_json",
    "is_marker",
    "jsonable",
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
"""Request-id prefixes of the gate's bookkeeping rows in old ledgers (a run that reused
another run's request, a slot claim), which never named an API request. The gate now keeps
slot claims and aliases in tables of their own, and ``setup()`` moves old marker rows there
(``hitl_agent/ledger/_markers.py``), so no reader of review rows meets one any more. Kept
for code that inspects old data."""


def is_marker(request_id: str | None) -> bool:
    """True for an old bookkeeping row's request id (see :data:`ALIAS_MARKER`)."""
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


# -- canonical JSON ---------------------------------------------------------------------


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, ASCII only (an RFC 8785 approximation).

    Sets and frozensets are written as lists sorted by their members' canonical JSON. NaN and
    infinities raise ValueError (see :func:`jsonable` for an error that names the field).
    """
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=False,
        default=_sorted_set,
    )


def _sorted_set(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value, key=canonical_json)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def jsonable(value: Any, *, field: str = "args") -> Any:
    """``value`` as plain JSON values that are the same in every process.

    Mappings, lists and tuples keep their shape (keys become strings, as JSON writes them);
    sets and frozensets become lists sorted by canonical JSON; pydantic models and dataclasses
    become their fields; other types take pydantic's JSON form (datetimes, UUIDs, enums,
    ...), or their ``repr`` when they define one.

    Raises:
        ConfigError: naming the field (``args.amount``, ``args.items[2]``) of a NaN or an
            infinity, of an object whose only text is the default ``repr`` (a memory
            address), or of a mapping with two keys that JSON writes alike (``1`` and "1").
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(
                field,
                f"{value!r} has no JSON form, so the review cannot be bound to it",
                "pass a finite number (or null)",
            )
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = _key(key, field)
            if name in out:
                raise ConfigError(
                    field,
                    f"two keys are both written {name!r} in JSON",
                    "give every key a distinct string",
                )
            out[name] = jsonable(item, field=f"{field}.{name}")
        return out
    if isinstance(value, list | tuple):
        return [jsonable(item, field=f"{field}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, set | frozenset):
        members = [jsonable(item, field=f"{field}[]") for item in value]
        return sorted(members, key=canonical_json)
    if isinstance(value, BaseModel):
        # Python mode keeps sets as sets, so they are sorted here, not in iteration order.
        return jsonable(value.model_dump(mode="python", by_alias=True), field=field)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return jsonable(fields, field=field)
    try:
        converted = to_jsonable_python(value)
    except PydanticSerializationError:
        if getattr(type(value), "__repr__", None) is object.__repr__:
            raise ConfigError(
                field,
                f"a {type(value).__name__} has no stable text (its default repr is a memory "
                "address, different in every process)",
                "pass plain JSON values, a pydantic model or a dataclass",
            ) from None
        return repr(value)
    return jsonable(converted, field=field)


def _key(key: Any, field: str) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool) or key is None:
        return json.dumps(key)
    if isinstance(key, int):
        return str(int(key))
    if isinstance(key, float):
        jsonable(key, field=f"{field} (a key)")
        return json.dumps(key)
    plain = jsonable(key, field=f"{field} (a key)")
    return plain if isinstance(plain, str) else canonical_json(plain)
