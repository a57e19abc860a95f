"""The interrupt shapes the bridge serves, read without importing LangChain.

Three shapes, measured on ``langchain`` 1.5 (see docs/bridge.md):

* ``batched`` — ``HITLRequest``: ``{"action_requests": [...], "review_configs": [...]}``, one
  interrupt per model turn, resumed with ``{"decisions": [one per action, in order]}``.
* ``per_call`` — ``ToolApprovalRequest``: ``{"type": "tool_approval", "tool_call_id", "name",
  "args", "description"}``, one interrupt (and one task) per gated call, resumed with one bare
  decision addressed by its interrupt id.
* ``inbox`` — agent-inbox's ``HumanInterrupt`` (``langgraph.prebuilt.interrupt``), usually a
  one-element list, resumed with a list holding one ``HumanResponse``.

Each gated action becomes one :class:`BridgeAction` and one HITL request, whose correlation
key (:func:`action_key`) is built from the thread, the checkpoint namespace, the interrupt id
and the action's index: the same on every ``submit``/``sweep``, on every replica.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, cast

from .._keys import BRIDGE_PREFIX, bridge_key, parse_bridge_key

__all__ = [
    "DECISION_TYPES",
    "KEY_PREFIX",
    "ActionKey",
    "BridgeAction",
    "DecisionType",
    "InterruptKind",
    "action_key",
    "follow_up_key",
    "parse_interrupt",
    "parse_key",
    "per_call_allowed",
    "stage_key",
]

DecisionType: TypeAlias = Literal["approve", "edit", "reject", "respond"]
InterruptKind: TypeAlias = Literal["batched", "per_call", "inbox"]

DECISION_TYPES: tuple[DecisionType, ...] = ("approve", "edit", "reject", "respond")
ALL_DECISIONS: tuple[DecisionType, ...] = DECISION_TYPES

KEY_PREFIX = BRIDGE_PREFIX
"""Correlation keys of bridged actions start with this (gate keys start with ``lg|``)."""

# agent-inbox's HumanInterruptConfig flags, in LangChain's decision names.
_INBOX_FLAGS: tuple[tuple[str, DecisionType], ...] = (
    ("allow_accept", "approve"),
    ("allow_edit", "edit"),
    ("allow_ignore", "reject"),
    ("allow_respond", "respond"),
)


@dataclass(frozen=True)
class BridgeAction:
    """One gated action of a pending interrupt: what the reviewer is asked about.

    Attributes:
        kind: the interrupt's shape.
        index: the action's position in the interrupt (0 for per_call and inbox).
        name: the tool the model called.
        args: the arguments it called it with.
        description: the middleware's description (``description`` or ``description_prefix``
            plus the call).
        allowed: the decisions the app allows for this tool, in LangChain's names.
        tool_call_id: the model's tool-call id (per_call), else None.
        count: how many actions the interrupt holds (shown as "call 2 of 3").
    """

    kind: InterruptKind
    index: int
    name: str
    args: dict[str, Any]
    description: str
    allowed: tuple[DecisionType, ...]
    tool_call_id: str | None = None
    count: int = 1


def _allowed(raw: Any) -> tuple[DecisionType, ...] | None:
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        return None
    if not all(item in DECISION_TYPES for item in raw):
        return None
    return tuple(d for d in DECISION_TYPES if d in raw)


def _batched(value: Mapping[str, Any]) -> list[BridgeAction] | None:
    requests, configs = value.get("action_requests"), value.get("review_configs")
    if not isinstance(requests, list) or not isinstance(configs, list) or not requests:
        return None
    by_name: dict[str, Any] = {}
    for config in configs:
        if isinstance(config, Mapping) and isinstance(config.get("action_name"), str):
            by_name.setdefault(config["action_name"], config)
    actions: list[BridgeAction] = []
    for index, request in enumerate(requests):
        if not isinstance(request, Mapping) or not isinstance(request.get("name"), str):
            return None
        args = request.get("args")
        if not isinstance(args, Mapping):
            return None
        # The middleware writes one review config per action, in the same order; fall back
        # to the first config of that tool for hand-built requests.
        config = configs[index] if index < len(configs) else None
        if not isinstance(config, Mapping) or config.get("action_name") != request["name"]:
            config = by_name.get(request["name"])
        allowed = _allowed(config.get("allowed_decisions")) if config is not None else None
        if allowed is None:
            return None
        description = request.get("description")
        actions.append(
            BridgeAction(
                kind="batched",
                index=index,
                name=request["name"],
                args=dict(args),
                description=description if isinstance(description, str) else "",
                allowed=allowed,
                count=len(requests),
            )
        )
    return actions


def per_call_allowed(response_schema: Any) -> tuple[DecisionType, ...]:
    """The decisions a per_call interrupt's ``response_schema`` allows (all four if unreadable).

    The schema is a ``oneOf`` with a discriminator mapping on ``type``, or one decision's
    plain object schema when the tool allows only one.
    """
    if isinstance(response_schema, Mapping):
        mapping = (response_schema.get("discriminator") or {}).get("mapping")
        if isinstance(mapping, Mapping):
            found = _allowed(list(mapping))
            if found is not None:
                return found
        props = response_schema.get("properties")
        const = (props or {}).get("type", {}).get("const") if isinstance(props, Mapping) else None
        if const in DECISION_TYPES:
            return (const,)
    return ALL_DECISIONS


def _inbox(value: Any) -> list[BridgeAction] | None:
    item = value[0] if isinstance(value, list) and len(value) == 1 else value
    if not isinstance(item, Mapping):
        return None
    request, config = item.get("action_request"), item.get("config")
    if not isinstance(request, Mapping) or not isinstance(config, Mapping):
        return None
    if not isinstance(request.get("action"), str) or not isinstance(request.get("args"), Mapping):
        return None
    allowed = tuple(d for flag, d in _INBOX_FLAGS if config.get(flag) is True)
    if not allowed:
        return None
    description = item.get("description")
    return [
        BridgeAction(
            kind="inbox",
            index=0,
            name=request["action"],
            args=dict(request["args"]),
            description=description if isinstance(description, str) else "",
            allowed=tuple(d for d in DECISION_TYPES if d in allowed),
        )
    ]


def parse_interrupt(
    value: Any, response_schema: Any = None
) -> tuple[InterruptKind, list[BridgeAction]] | None:
    """The kind and actions of an interrupt value, or None when the bridge does not serve it."""
    if isinstance(value, Mapping):
        if value.get("type") == "tool_approval":
            name, args, call_id = value.get("name"), value.get("args"), value.get("tool_call_id")
            if not isinstance(name, str) or not isinstance(args, Mapping):
                return None
            if not isinstance(call_id, str):
                return None
            description = value.get("description")
            action = BridgeAction(
                kind="per_call",
                index=0,
                name=name,
                args=dict(args),
                description=description if isinstance(description, str) else "",
                allowed=per_call_allowed(response_schema),
                tool_call_id=call_id,
            )
            return "per_call", [action]
        if "action_requests" in value:
            actions = _batched(value)
            return ("batched", actions) if actions else None
    actions = _inbox(value)
    return ("inbox", actions) if actions else None


@dataclass(frozen=True)
class ActionKey:
    """The parts of a bridged action's correlation key."""

    thread_id: str
    checkpoint_ns: str
    interrupt_id: str
    index: int
    tool_call_id: str
    allowed: tuple[DecisionType, ...]
    step: int = 0
    """0 for the action's first request (the decision), 1 for its follow-up (the text)."""
    stage: int = 1
    """The approval policy's request this row is (1: the first; see :func:`stage_key`)."""

    @property
    def first_key(self) -> str:
        """The key of the action's first request (the same for both steps)."""
        return bridge_key(
            thread_id=self.thread_id,
            checkpoint_ns=self.checkpoint_ns,
            interrupt_id=self.interrupt_id,
            index=self.index,
            tool_call_id=self.tool_call_id,
            allowed=self.allowed,
        )


FOLLOW_UP_SUFFIX = "|1"
"""A follow-up's key is its action's first key plus this: the action's next review (index 1).

The first key's six fields are percent-encoded, so a seventh field cannot be confused with any
of them; an action has at most one follow-up, and both of its rows share the task (thread and
namespace), so the resolver delivers them together."""


def follow_up_key(first_key: str) -> str:
    """The key of the follow-up of the action whose first request has ``first_key``."""
    return first_key + FOLLOW_UP_SUFFIX


STAGE_MARK = "#"
"""A policy stage's key is its action's first key plus ``#<n>`` (n >= 2): percent-encoding
keeps ``#`` out of the six fields, so the stage number cannot be confused with any of them."""


def stage_key(first_key: str, number: int) -> str:
    """The key of the approval policy's ``number``-th request for the action whose first
    request has ``first_key`` (the first's own key for 1): derived, so every sweep, replica
    and resume finds the same row."""
    return first_key if number == 1 else f"{first_key}{STAGE_MARK}{number}"


def action_key(
    *, thread_id: str, checkpoint_ns: str, interrupt_id: str, action: BridgeAction
) -> str:
    """The deterministic correlation key of one action (thread, namespace, interrupt, index).

    Each part is percent-encoded, so ``|`` inside a namespace (nested graphs) or an id cannot
    shift the fields. The tool-call id and the allowed decisions are part of the key too: a
    per_call row is matched to its interrupt by tool-call id, and the decisions a row may be
    answered with must be known when it is resumed (a per_call interrupt's value omits them).
    """
    return bridge_key(
        thread_id=thread_id,
        checkpoint_ns=checkpoint_ns,
        interrupt_id=interrupt_id,
        index=action.index,
        tool_call_id=action.tool_call_id,
        allowed=action.allowed,
    )


def parse_key(key: str) -> ActionKey | None:
    """The parts of a key made by :func:`action_key`, :func:`follow_up_key` or
    :func:`stage_key`, or None for any other key."""
    step, stage = 0, 1
    if key.endswith(FOLLOW_UP_SUFFIX):
        key, step = key[: -len(FOLLOW_UP_SUFFIX)], 1
    elif STAGE_MARK in key:
        key, _, number = key.rpartition(STAGE_MARK)
        if not number.isdigit() or not number.isascii() or int(number) < 2:
            return None
        stage = int(number)
    parts = parse_bridge_key(key)
    if parts is None:
        return None
    return ActionKey(
        thread_id=parts.thread_id,
        checkpoint_ns=parts.checkpoint_ns,
        interrupt_id=parts.interrupt_id,
        index=parts.index,
        tool_call_id=parts.tool_call_id,
        # parse_bridge_key only yields LangChain's four decision names.
        allowed=cast("tuple[DecisionType, ...]", parts.allowed),
        step=step,
        stage=stage,
    )
