"""Poll health: which sweep failures a retry can fix, and when to stop retrying the others.

One policy for every poll loop (the blocking-mode hub behind ``review()``/``areview()`` and
:meth:`Dispatcher.run_poller`). A sweep fails **transiently** when the API was out of reach
or overloaded: :class:`APIConnectionError` (and its :class:`APITimeoutError`),
:class:`InternalServerError`, :class:`RateLimitError`. The budget and the schedule retry
those, as do 400/404/409 answers, which concern one request (the poller's fail-closed rule
covers them). Any other failure is **persistent**: a rejected key (:class:`AuthenticationError`,
:class:`PermissionDeniedError`), a server that does not answer like the HITL API
(:class:`APIResponseValidationError`), a :class:`ConfigError`, a ``TypeError`` or other bug.
Retrying reproduces it, so after :data:`LIMIT` persistent failures in a row the loops stop
waiting on it: :attr:`PollHealth.error` holds a :class:`PollingError` naming the cause.

A sweep fails persistently when it raises a persistent error, or when no API call of it got
an answer and one failed persistently (a 401 on every list and GET); a sweep with an
answered call resets the count; one that only met transient errors, or made no call, leaves
it as it is.
"""

from __future__ import annotations

import logging

from ._exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    AuthenticationError,
    InternalServerError,
    PermissionDeniedError,
    PollingError,
    RateLimitError,
)

__all__ = [
    "LIMIT",
    "MAX_BACKOFF",
    "PollHealth",
    "is_transient",
    "log_failed_sweep",
    "polling_error",
]

LIMIT = 3
"""Persistent sweep failures in a row before the poll loops give up on them."""
MAX_BACKOFF = 300.0
"""Seconds: the longest gap :meth:`PollHealth.backoff` stretches a failing schedule to."""

_PERSISTENT_API = (AuthenticationError, PermissionDeniedError, APIResponseValidationError)
_TRANSIENT = (APIConnectionError, InternalServerError, RateLimitError)


def is_transient(error: BaseException) -> bool:
    """Can a later sweep succeed where this one failed (see the module docstring)?"""
    if isinstance(error, _TRANSIENT):
        return True
    return isinstance(error, APIError) and not isinstance(error, _PERSISTENT_API)


def _hint(cause: BaseException) -> str:
    if isinstance(cause, AuthenticationError):
        return "the API key was rejected: check it (HITL_API_KEY)"
    if isinstance(cause, PermissionDeniedError):
        return "the API key may not read this loop's requests"
    if isinstance(cause, APIResponseValidationError):
        return "the server at base_url does not answer like the HITL API"
    return "a misconfiguration or a bug, not an outage: see the cause"


def polling_error(
    cause: BaseException, failures: int, request_id: str | None = None
) -> PollingError:
    """A :class:`PollingError` for ``cause`` (chained as its ``__cause__``)."""
    what = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
    message = f"polling for decisions failed {failures} times in a row ({what}); {_hint(cause)}"
    if request_id is not None:
        message = (
            f"no decision for request {request_id}: {message}. The request is still open: "
            "call review again with the same key once this is fixed"
        )
    error = PollingError(message, failures=failures, request_id=request_id)
    error.__cause__ = cause
    return error


class PollHealth:
    """The persistent sweep failures of one dispatcher in a row.

    Args:
        limit: how many in a row make :attr:`error` hold one.
    """

    def __init__(self, limit: int = LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.limit = limit
        self.failures = 0
        """Persistent failures in a row (reset by a sweep that got an answer)."""
        self.cause: BaseException | None = None
        """The latest persistent failure of this run of them."""

    def __repr__(self) -> str:
        return f"PollHealth(failures={self.failures}, limit={self.limit}, cause={self.cause!r})"

    def record(self, error: BaseException | None, *, answered: bool) -> None:
        """One sweep's outcome: the error it raised or, when it returned, the worst its API
        calls met (None: none failed); ``answered``: one of its calls got an answer."""
        if error is not None and not answered and not is_transient(error):
            self.failures += 1
            self.cause = error
        elif answered:
            self.failures = 0
            self.cause = None

    @property
    def failing(self) -> bool:
        """The latest ``limit`` sweeps or more all failed persistently."""
        return self.failures >= self.limit

    @property
    def error(self) -> PollingError | None:
        """What the loops stop waiting with once :attr:`failing`; None until then."""
        if not self.failing or self.cause is None:
            return None
        return polling_error(self.cause, self.failures)

    def backoff(self, interval: float) -> float:
        """``interval`` doubled for each persistent failure in a row, up to
        :data:`MAX_BACKOFF` (never shorter than ``interval``)."""
        if not self.failures:
            return interval
        return max(interval, min(MAX_BACKOFF, interval * 2.0 ** min(self.failures, 32)))


def log_failed_sweep(
    logger: logging.Logger, message: str, error: BaseException, health: PollHealth
) -> None:
    """Log a sweep's ``error`` (recorded in ``health`` already) with its traceback when it is
    transient or starts a run of persistent failures, the rest of that run at DEBUG: the
    run reaching the limit is logged once, at ERROR, by the dispatcher."""
    if is_transient(error) or health.failures <= 1:
        logger.warning(message, exc_info=error)
    else:
        logger.debug(message, exc_info=error)
