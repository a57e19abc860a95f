"""Errors raised by gates (they derive from the package's HITLError root)."""

from __future__ import annotations

from .._exceptions import APIError, HITLError

__all__ = ["AmbiguousCreateError", "ReviewMismatchError", "ReviewTimeoutError"]


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


class AmbiguousCreateError(APIError):
    """A create's response was lost and listing the loop could not settle it.

    The gate never creates a second request when it cannot tell whether the first one exists
    (invariant 1): it raises this instead. Raised by a gate whose reconciliation ran out of
    call budget or could not list the loop (the intent is kept: the next call with the same
    key reconciles again), and by a blocking review with the default random key, which
    settles its own lost create before it returns (its intent is discarded: no later call can
    find it by that key).

    Attributes:
        key: the review's correlation key (stamped in the request's context as
            ``{"hitl_agent": {"key": ...}}``).
        created: ``False`` when the loop was listed and holds no request with the key
            (nothing was created: calling again is safe); ``None`` when it could not tell.
        retry_after: seconds until the call budget allows the listing again, when the budget
            was what stopped it; else None.
        reason: why the gate could not tell (one phrase).
    """

    def __init__(
        self,
        message: str,
        *,
        key: str,
        created: bool | None = None,
        retry_after: float | None = None,
        reason: str = "",
    ) -> None:
        super().__init__(message)
        self.key = key
        self.created = created
        self.retry_after = retry_after
        self.reason = reason
