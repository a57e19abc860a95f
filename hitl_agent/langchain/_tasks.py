"""Whether a tool call runs in a LangGraph task of its own or shares one with its turn."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["shares_task"]

# LangGraph marks a task started by a ``Send`` (one per call: create_agent, and
# hitl_agent.langgraph.tools_condition) with this trigger in the run's metadata.
_PUSH = "__pregel_push"


def shares_task(config: Mapping[str, Any]) -> bool:
    """True when this call runs inside a graph task that is not a per-call ``Send``: a
    ``ToolNode`` reached by an ordinary edge runs every call of the turn in one task."""
    metadata = config.get("metadata") or {}
    triggers = metadata.get("langgraph_triggers")
    if triggers is None:
        return False  # not in a graph run
    return _PUSH not in triggers
