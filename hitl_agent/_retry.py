"""When to send a call again, and how long to wait first. Pure: no IO, no sleeping.

HITL.sh has no idempotency key, so a create that reached the server and is sent again puts a
second request in front of a human. The policy therefore splits failures in two:

* failures that prove nothing was sent (the connection never opened, no pooled connection was
  free) are safe to retry for every method;
* everything else (read timeouts, resets after the body left, 5xx, 408, 429) is retried only for
  GET, PUT and DELETE, whose repetition changes nothing.

A 429 waits for ``X-RateLimit-Reset`` (or ``Retry-After``) when that is within
``rate_limit_wait_cap`` seconds, and otherwise gives up at once: HITL.sh's window is an hour,
and no SDK-style eight-second backoff gets through it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from ._exceptions import ConfigError
from ._http import NEVER_SENT_ERRORS, TRANSIENT_ERRORS, AnyHeaders, AnyResponse

__all__ = ["IDEMPOTENT_METHODS", "NEVER_SENT_ERRORS", "TRANSIENT_ERRORS", "RetryPolicy"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_RETRYABLE_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class RetryPolicy:
    """Retry limits and delays.

    Attributes:
        max_retries: retries after the first attempt.
        initial_delay: first backoff in seconds; doubles each retry.
        max_delay: backoff ceiling in seconds.
        rate_limit_wait_cap: the longest a 429 may be waited out before RateLimitError.
    """

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    rate_limit_wait_cap: float = 60.0

    def __post_init__(self) -> None:
        for name in ("max_retries", "initial_delay", "max_delay", "rate_limit_wait_cap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(name, f"{value!r} is not a number >= 0", f"give {name} >= 0")

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter for retry number ``attempt`` (0-based)."""
        delay = min(self.initial_delay * 2.0**attempt, self.max_delay)
        return delay * (1 - 0.25 * random.random())

    def delay_after_error(self, method: str, error: Exception, attempt: int) -> float | None:
        """Seconds to wait before retrying after a transport error, or None to give up."""
        if attempt >= self.max_retries or not isinstance(error, TRANSIENT_ERRORS):
            return None
        if isinstance(error, NEVER_SENT_ERRORS) or method.upper() in IDEMPOTENT_METHODS:
            return self.backoff(attempt)
        return None

    def delay_after_response(
        self, method: str, response: AnyResponse, attempt: int, *, now: datetime
    ) -> float | None:
        """Seconds to wait before retrying after ``response``, or None to use it as it is."""
        status = response.status_code
        if status not in _RETRYABLE_STATUSES and status < 500:
            return None
        if attempt >= self.max_retries or method.upper() not in IDEMPOTENT_METHODS:
            return None
        if status == 429:
            wait = rate_limit_wait(response.headers, now=now)
            if wait is None:
                return self.backoff(attempt)
            return wait if wait <= self.rate_limit_wait_cap else None
        return self.backoff(attempt)


def rate_limit_wait(headers: AnyHeaders, *, now: datetime) -> float | None:
    """Seconds until the quota resets, from ``X-RateLimit-Reset`` or ``Retry-After``."""
    reset = headers.get("x-ratelimit-reset")
    if reset is not None:
        try:
            return max(0.0, float(reset) - now.timestamp())
        except ValueError:
            pass
    retry_after = headers.get("retry-after")
    if retry_after is not None:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            return None
    return None
