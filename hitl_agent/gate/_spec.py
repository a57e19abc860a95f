"""ReviewSpec: everything a gate asks a human, validated before anything is sent.

Also the canonical hashing that binds a decision to what was shown: :func:`canonical_json`,
:func:`args_hash` (tool name + args) and :meth:`ReviewSpec.spec_hash`. A ledger row keeps the
spec hash, so a replayed gate whose question changed (other args, other text) under the same
correlation key fails closed instead of reusing someone else's answer.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._exceptions import ConfigError
from ..decision import DEFAULT_APPROVE_VALUES, DEFAULT_REJECT_VALUES
from ..models.requests import CreateRequestParams
from ..models.response_types import option_value
from ..protocol import canonical_json, jsonable

__all__ = [
    "ARGS_HASH_KEY",
    "CONTEXT_KEY",
    "GATED_TOOL_KEY",
    "ReviewSpec",
    "answer_values",
    "args_hash",
    "canonical_json",
]

CONTEXT_KEY = "hitl_agent"
"""The key under which a gate stamps its correlation key into the request's ``context``."""

ARGS_HASH_KEY = "hitl_agent_args_hash"
#: ``context`` key naming the tool whose calls ``require_approval`` gates (kept in the row's
#: payload as ``gated_tool``, never sent): a resumer refuses to resume the review into a
#: graph whose tools node no longer gates that tool.
GATED_TOOL_KEY = "hitl_agent_gated_tool"
"""A ``context`` entry that binds a review to one tool call: its :func:`args_hash`.

It is lifted out of the context (never sent, never shown to the reviewer, not part of the
spec hash) into :attr:`ReviewSpec.args_hash`, and the gate keeps it in the ledger row's
``payload["args_hash"]``, so the tool wrapper can check, right before it runs anything, that
what runs is what was reviewed. It travels in ``context`` because that is the one channel from
``Gatekeeper.review(...)`` to the row."""

DEFAULT_TIMEOUT_SECONDS = 3600
DEFAULT_PRIORITY = "medium"
_SUMMARY_CHARS = 160
# Built specs by their exact arguments: a replayed gate (every resume re-runs its node from
# the top) asks the same question again, and validating it again was a third of the replay.
_CACHE_SIZE = 256
_CACHE_VALUE_BUDGET = 16_384  # characters (and items) of one spec's arguments, at most
_built: OrderedDict[tuple[Any, ...], ReviewSpec] = OrderedDict()
_built_lock = threading.Lock()


def args_hash(tool_name: str, args: Mapping[str, Any]) -> str:
    """sha256 hex of the canonical JSON of ``{"tool": tool_name, "args": args}``.

    The same in every process (see :func:`hitl_agent.protocol.jsonable`). Raises ConfigError
    naming the field for an argument with no stable JSON form (NaN, an infinity, an object
    known only by its address).
    """
    body = canonical_json({"tool": tool_name, "args": jsonable(dict(args), field="args")})
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class ReviewSpec:
    """One review question: text, response form, default, timeout, priority, context.

    Build it with :meth:`build`, which validates everything the API would (ConfigError names
    the field). ``approve_values``, ``reject_values`` and ``approve_on_timeout`` decide how the
    answer is read; they are stored with the ledger row so every resolver reads it the same way.
    """

    request_text: str
    response_type: str
    response_config: dict[str, Any]
    default_response: Any
    priority: str = DEFAULT_PRIORITY
    timeout_seconds: int | None = DEFAULT_TIMEOUT_SECONDS
    processing_type: str = "time-sensitive"
    context: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    approve_values: tuple[str, ...] = tuple(sorted(DEFAULT_APPROVE_VALUES))
    reject_values: tuple[str, ...] = tuple(sorted(DEFAULT_REJECT_VALUES))
    approve_on_timeout: bool = False
    args_hash: str | None = None
    gated_tool: str | None = None
    # The approval policy this review is a stage of (``gate._policy``), kept with the row.
    policy: dict[str, Any] | None = None

    @classmethod
    def build(
        cls,
        request_text: str,
        *,
        response_type: str = "boolean",
        response_config: Mapping[str, Any] | None = None,
        default_response: Any = None,
        priority: str = DEFAULT_PRIORITY,
        timeout_seconds: int | None = DEFAULT_TIMEOUT_SECONDS,
        processing_type: str = "time-sensitive",
        context: Mapping[str, Any] | None = None,
        summary: str | None = None,
        approve_values: Iterable[str] | None = None,
        reject_values: Iterable[str] | None = None,
        approve_on_timeout: bool = False,
    ) -> ReviewSpec:
        """Validate and freeze a review; raise ConfigError naming the bad field.

        Defaults are the safe ones: a boolean question ("Approve"/"Reject") whose default is
        ``False``, medium priority, one hour to answer, reject on timeout.

        The same arguments give the same spec: one built from plain JSON values of modest
        size is kept (a bounded cache) and returned again, so treat a spec as immutable
        (its dicts included). Only a successful build is kept.
        """
        args = (
            request_text, response_type, response_config, default_response, priority,
            timeout_seconds, processing_type, context, summary, approve_on_timeout,
        )  # fmt: skip
        try:
            key = (
                _freeze(args),
                _freeze_values(approve_values),
                _freeze_values(reject_values),
            )
        except _Uncacheable:
            key = None
        if key is not None:
            with _built_lock:
                hit = _built.get(key)
                if hit is not None:
                    _built.move_to_end(key)
                    return hit
        spec = cls._build(
            request_text,
            response_type=response_type,
            response_config=response_config,
            default_response=default_response,
            priority=priority,
            timeout_seconds=timeout_seconds,
            processing_type=processing_type,
            context=context,
            summary=summary,
            approve_values=approve_values,
            reject_values=reject_values,
            approve_on_timeout=approve_on_timeout,
        )
        if key is not None:
            with _built_lock:
                _built[key] = spec
                while len(_built) > _CACHE_SIZE:
                    _built.popitem(last=False)
        return spec

    @classmethod
    def _build(
        cls,
        request_text: str,
        *,
        response_type: str,
        response_config: Mapping[str, Any] | None,
        default_response: Any,
        priority: str,
        timeout_seconds: int | None,
        processing_type: str,
        context: Mapping[str, Any] | None,
        summary: str | None,
        approve_values: Iterable[str] | None,
        reject_values: Iterable[str] | None,
        approve_on_timeout: bool,
    ) -> ReviewSpec:
        approving, rejecting = answer_values(approve_values, reject_values)
        config = dict(response_config or {})
        if response_type == "boolean" and not config:
            config = {"true_label": "Approve", "false_label": "Reject"}
        if default_response is None:
            default_response = _safe_default(response_type, config, rejecting)
        ctx = dict(context or {})
        bound = ctx.pop(ARGS_HASH_KEY, None)
        gated_tool = ctx.pop(GATED_TOOL_KEY, None)
        if bound is not None and not _is_sha256_hex(bound):
            raise ConfigError(
                f"context.{ARGS_HASH_KEY}",
                "not a sha256 hex digest",
                "pass args_hash(tool_name, args) from hitl_agent.gate",
            )
        if CONTEXT_KEY in ctx:
            raise ConfigError(
                f"context.{CONTEXT_KEY}",
                "this key is reserved for the gate's correlation key",
                "rename your context entry",
            )
        try:
            json.dumps(ctx, allow_nan=False)  # plain JSON only: it is sent as it is
        except (TypeError, ValueError) as err:
            raise ConfigError(
                "context", f"not JSON-serializable ({err})", "pass plain JSON values"
            ) from None
        params = CreateRequestParams.build(
            request_text=request_text,
            response_type=response_type,
            response_config=config,
            default_response=default_response,
            priority=priority,
            timeout_seconds=timeout_seconds,
            processing_type=processing_type,
            context=ctx or None,
        )
        return cls(
            request_text=params.request_text,
            response_type=params.response_type,
            response_config=params.response_config,
            default_response=params.default_response,
            priority=params.priority,
            timeout_seconds=params.timeout_seconds,
            processing_type=params.processing_type,
            context=ctx,
            summary=(summary or _summarize(request_text))[:_SUMMARY_CHARS],
            approve_values=approving,
            reject_values=rejecting,
            approve_on_timeout=approve_on_timeout,
            args_hash=bound,
            gated_tool=str(gated_tool) if gated_tool is not None else None,
        )

    def spec_hash(self) -> str:
        """sha256 hex of everything the reviewer sees and how the answer is read."""
        known: str | None = self.__dict__.get("_spec_hash")
        if known is None:
            known = self._hash()
            # Frozen, and every field is fixed at build: the hash can be kept (not a field,
            # so equality and the repr are unchanged).
            object.__setattr__(self, "_spec_hash", known)
        return known

    def _hash(self) -> str:
        body = canonical_json(
            {
                "text": self.request_text,
                "type": self.response_type,
                "config": self.response_config,
                "default": self.default_response,
                "context": self.context,
                "approve": list(self.approve_values),
                "approve_on_timeout": self.approve_on_timeout,
                # Only when set: the hashes of rows written before policies existed hold.
                **({"policy": self.policy} if self.policy is not None else {}),
            }
        )
        return hashlib.sha256(body.encode()).hexdigest()

    def interpretation(self) -> dict[str, Any]:
        """The answer-reading settings, as stored in the ledger row's payload.

        For a ``single_select`` the approve (reject) values stored are the form's own
        approving (rejecting) option values, so a row read without its form (a list item
        carries no ``response_config``) still approves only an option of its form.
        """
        approve, reject = list(self.approve_values), list(self.reject_values)
        if self.response_type == "single_select":
            options = [
                option["value"]
                for option in self.response_config.get("options") or []
                if isinstance(option, dict) and isinstance(option.get("value"), str)
            ]
            # No fallback to the default words: a form none of whose options approves
            # approves nothing, also when it is read without its form.
            approve = _among(options, self.approve_values)
            reject = _among(options, self.reject_values) or reject
        return {
            "approve_values": approve,
            "reject_values": reject,
            "approve_on_timeout": self.approve_on_timeout,
        }

    def create_kwargs(self, key: str, callback_url: str | None) -> dict[str, Any]:
        """Keyword arguments for ``client.requests.create`` with the key stamped in context."""
        return {
            "request_text": self.request_text,
            "response_type": self.response_type,
            "response_config": self.response_config,
            "default_response": self.default_response,
            "priority": self.priority,
            "timeout_seconds": self.timeout_seconds,
            "processing_type": self.processing_type,
            "context": {**self.context, CONTEXT_KEY: {"key": key}},
            "callback_url": callback_url,
        }


class _Uncacheable(Exception):
    """An argument that is not plain JSON: build it every time."""


def _freeze(value: Any, budget: list[int] | None = None) -> Any:
    """A hashable, type-exact image of a plain JSON value (``1``, ``1.0``, ``True`` and
    ``"1"`` stay apart), or _Uncacheable. Large values are not cached (``budget``: the
    characters and items still allowed), so the cache stays small whatever is reviewed."""
    budget = [_CACHE_VALUE_BUDGET] if budget is None else budget
    budget[0] -= len(value) + 1 if type(value) is str else 1
    if budget[0] < 0:
        raise _Uncacheable
    if value is None or type(value) in (str, int, float, bool):
        return (type(value), value)
    if type(value) in (list, tuple):
        return (type(value), tuple(_freeze(item, budget) for item in value))
    if type(value) is dict and all(type(k) is str for k in value):
        return (dict, tuple(sorted((k, _freeze(v, budget)) for k, v in value.items())))
    raise _Uncacheable


def _freeze_values(values: Iterable[str] | None) -> Any:
    # Only containers: an iterator would be consumed here (and an empty one is truthy).
    if values is None:
        return None
    if type(values) in (list, tuple, set, frozenset) and all(type(v) is str for v in values):
        return (type(values), tuple(sorted(values)))
    raise _Uncacheable


def answer_values(
    approve_values: Iterable[str] | None,
    reject_values: Iterable[str] | None,
    *,
    approve_field: str = "approve_values",
    reject_field: str = "reject_values",
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The approve and reject values a review reads its answer with (the defaults for None),
    sorted; ConfigError naming the field for a bare string, a non-string or empty value, or a
    value that both approves and rejects (compared case-insensitively, defaults included)."""
    approve = _values(approve_values, DEFAULT_APPROVE_VALUES, approve_field)
    reject = _values(reject_values, DEFAULT_REJECT_VALUES, reject_field)
    rejecting = {value.strip().lower() for value in reject}
    both = sorted(value for value in approve if value.strip().lower() in rejecting)
    if both:
        # Name the field the caller wrote: the other list is then the default one.
        field = reject_field if reject_values is not None else approve_field
        other = reject_field if field == approve_field else approve_field
        default = "" if approve_values is not None and reject_values is not None else " (default)"
        raise ConfigError(
            field,
            f"{both[0]!r} is in both {approve_field} and {reject_field}{default}",
            f"a value either approves or rejects: remove it from one list (pass {other} "
            "explicitly to change the default)",
        )
    return approve, reject


def _values(values: Iterable[str] | None, default: frozenset[str], field: str) -> tuple[str, ...]:
    if values is None:
        return tuple(sorted(default))
    if isinstance(values, str | bytes):
        raise ConfigError(field, "a single string was given", f"pass a list, e.g. [{values!r}]")
    given = list(values)
    if not given:
        return tuple(sorted(default))  # empty: the defaults, as before
    for value in given:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(field, f"{value!r} is not an option value", "pass non-empty strings")
    return tuple(sorted(given))


def _among(options: list[str], values: Iterable[str]) -> list[str]:
    """The options whose value is one of ``values`` (case-insensitive)."""
    wanted = {value.strip().lower() for value in values}
    return [option for option in options if option.strip().lower() in wanted]


def _safe_default(response_type: str, config: dict[str, Any], reject: Iterable[str]) -> Any:
    """The deny option for the response type, or ConfigError when there is none."""
    if response_type == "boolean":
        return False
    if response_type == "single_select":
        rejecting = {value.strip().lower() for value in reject}
        for option in config.get("options") or []:
            value = option.get("value") if isinstance(option, dict) else option_value(option)
            if isinstance(value, str) and value.strip().lower() in rejecting:
                return value
    raise ConfigError(
        "default_response",
        f"no safe default can be chosen for response_type {response_type!r}",
        "pass default_response explicitly (the answer recorded on timeout)",
    )


def _is_sha256_hex(value: Any) -> bool:
    return (
        isinstance(value, str)
        and len(value) == 64
        and all(ch in "0123456789abcdef" for ch in value)
    )


def _summarize(text: str) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first if len(first) <= _SUMMARY_CHARS else first[: _SUMMARY_CHARS - 1] + "…"
