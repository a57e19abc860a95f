"""The answer words that approve and reject a ``single_select`` by default.

Kept on the ground floor so that the reader of decisions (:mod:`hitl_agent.decision`) and the
local server's console (which says what a timeout's default would do) share one list without
the server importing the decision layer.
"""

from __future__ import annotations

__all__ = ["DEFAULT_APPROVE_VALUES", "DEFAULT_REJECT_VALUES"]

DEFAULT_APPROVE_VALUES: frozenset[str] = frozenset({"approve", "approved", "yes", "allow"})
"""``single_select`` values that approve (compared case-insensitively)."""

DEFAULT_REJECT_VALUES: frozenset[str] = frozenset(
    {"reject", "rejected", "no", "deny", "denied", "decline", "declined"}
)
"""``single_select`` values that reject; any other option is an ``answered`` decision."""
