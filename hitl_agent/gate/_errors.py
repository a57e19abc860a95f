"""Errors raised by gates (they derive from the package's HITLError root)."""

from __future__ import annotations

from .._exceptions import HITLError

__all__ = ["ReviewMismatchError", "ReviewTimeoutError"]


class ReviewMismatchError(HITLError):
    """A correlation key already belongs to a different question.

    Raised when a replayed gate asks something else (other text, args or form) under a key the
    ledger already holds: reusing that row could apply someone else's answer, so the gate fails
    closed. Usually the node's reviews ran in a different order, or parallel tool calls did not
    pass ``tool_call_id``.
    """


class ReviewTimeoutError(HITLError, TimeoutError):
    """A blocking review's local ``wait_timeout`` elapsed before any decision arrived.

    The request is still open on HITL.sh and in the ledger; calling ``review`` again with the
    same ``key`` picks it up instead of creating another.
    """
