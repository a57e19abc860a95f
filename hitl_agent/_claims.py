"""The resume claim an approved action is about to start under.

The resolver resumes a thread under a lease (hitl_agent.dispatch._lease). A process that
stalled (a VM pause, a long GC) may wake with its lease gone: another replica may already
have claimed the row and resumed the thread. The tool wrapper checks here, right before it
records that the action starts, and refuses to start it under a claim that expired: the
resume fails before the action, and the resolver retries (or the replica that took over runs
it, once). The dispatch layer sets the check; the wrappers read it; neither imports the
other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from ._exceptions import ClaimExpiredError

__all__ = ["ClaimExpiredError", "check_claim", "resuming_under"]

_EXPIRED: ContextVar[Callable[[], bool] | None] = ContextVar("hitl_agent_claim", default=None)


@contextmanager
def resuming_under(expired: Callable[[], bool]) -> Iterator[None]:
    """Run a resume whose actions must not start once ``expired()`` is true."""
    token = _EXPIRED.set(expired)
    try:
        yield
    finally:
        _EXPIRED.reset(token)


def check_claim() -> None:
    """Raise :class:`ClaimExpiredError` when the current resume's claim has expired."""
    expired = _EXPIRED.get()
    if expired is not None and expired():
        raise ClaimExpiredError(
            "the resume's claim on this review expired before the approved action started "
            "(this process stalled past its lease); the action was not started and the "
            "resume will be retried"
        )
