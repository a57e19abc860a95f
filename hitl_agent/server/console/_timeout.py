"""The "If nobody answers in time" line: what a timeout actually does to this request.

A request stores a ``default_response``, but what happens on timeout depends on who asked.
hitl_agent's gate (every request whose ``context`` carries its ``hitl_agent`` key) never takes
the default as the reviewer's answer: the decision is *timed out*, ``ask_human`` tells the
agent nobody answered, the tool wrappers and the bridge do not run the tool, and a plain
``Gatekeeper.review`` approves on timeout only when the app turned on ``approve_on_timeout``
and the default approves (see :class:`hitl_agent.Decision`). Any other request times out with
its default as the answer to use (HITL.sh's rule). So the line says that, instead of showing
the stored default as if it were the outcome ("If nobody answers in time: Yes" while the agent
is told "timed out").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..._answer_words import DEFAULT_APPROVE_VALUES
from ..._text import reveal_invisible
from ...models.response_types import option_value

__all__ = ["default_label", "timeout_note"]

_GATE_KEY = "hitl_agent"  # hitl_agent.gate.CONTEXT_KEY (not imported: no gate import here)
_LEAD = "If nobody answers in time: "


def _option_labels(config: Mapping[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for option in config.get("options") or []:
        if isinstance(option, str):
            labels[option_value(option)] = option
        elif isinstance(option, Mapping) and option.get("value") is not None:
            labels[str(option["value"])] = str(option.get("label") or option["value"])
    return labels


def default_label(response_type: str, config: Any, value: Any) -> str:
    """``value`` as a reviewer reads it: option and boolean labels, quoted text, numbers."""
    config = config if isinstance(config, Mapping) else {}
    if response_type == "boolean" and isinstance(value, bool):
        label = config.get("true_label" if value else "false_label")
        return reveal_invisible(label) if isinstance(label, str) and label else str(value)
    if response_type in ("single_select", "multi_select"):
        labels = _option_labels(config)
        values = value if isinstance(value, list) else [value]
        return reveal_invisible(", ".join(labels.get(str(v), str(v)) for v in values))
    if isinstance(value, Mapping) and isinstance(value.get("revised_text"), str):
        value = value["revised_text"]  # editable_text's stored shape
    if isinstance(value, str):
        return "an empty text" if not value.strip() else f"“{reveal_invisible(value)}”"
    return reveal_invisible(json.dumps(value, ensure_ascii=False))


def _may_approve(response_type: str, value: Any) -> bool:
    # Only these can approve (hitl_agent.decision): a true boolean, a single_select option
    # among the approve values (an app's own approve_values are not in the request: the
    # default words stand for them), a non-empty editable text.
    if response_type == "boolean":
        return value is True
    if response_type == "single_select":
        return isinstance(value, str) and value.strip().lower() in DEFAULT_APPROVE_VALUES
    if response_type == "editable_text":
        if isinstance(value, Mapping):
            value = value.get("revised_text")
        return isinstance(value, str) and bool(value.strip())
    return False


def timeout_note(request: Mapping[str, Any]) -> str:
    """The one line a reviewer reads about a timeout of ``request`` (a request's JSON object)."""
    response_type = str(request.get("response_type") or "")
    value = request.get("default_response")
    context = request.get("context")
    if isinstance(context, Mapping) and _GATE_KEY in context:
        line = _LEAD + "it times out and the agent is told nobody answered."
        if _may_approve(response_type, value):
            label = default_label(response_type, request.get("response_config"), value)
            line += f" The default ({label}) counts only if the app turned on approve_on_timeout."
        return line
    if value is None:
        return _LEAD + "the request times out, with no default answer."
    label = default_label(response_type, request.get("response_config"), value)
    return _LEAD + f"the request times out; its default answer is {label}"
