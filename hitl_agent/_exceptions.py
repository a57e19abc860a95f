"""The exception tree of hitl_agent.

Every error the library raises on purpose derives from :class:`HITLError`::

    HITLError
      ConfigError(HITLError, ValueError)       bad arguments, caught before any network call
      ResponseShapeError(HITLError, ValueError) an answer whose shape fits no documented variant
      PollingError                              polling keeps failing in a way retrying cannot fix
      ReviewTimeoutError(HITLError, TimeoutError) a blocking review's wait_timeout elapsed
      ReviewMismatchError                       a correlation key already holds another question
      LedgerError                               the ledger's store failed
      RemoteResumeError(status_code)            a LangGraph Server refused or failed a resume
      ClaimExpiredError                         a resume's claim expired before its action began
      SiblingReviewMissingError                 an approved call's sibling never recorded a review
      APIError                                  anything that went wrong talking to the API
        AmbiguousCreateError(key, created)      a lost create that listing could not settle
      APIConnectionError                      the request failed to get a response
          APITimeoutError                       ... because it timed out
        APIResponseValidationError              the body is not the documented envelope
        APIStatusError(status_code, msg, data)  non-2xx, or ``"error": true`` in a 2xx body
          BadRequestError 400 · AuthenticationError 401 · PermissionDeniedError 403
          NotFoundError 404 · ConflictError 409 · RateLimitError 429
          InternalServerError >= 500

All of them are importable from ``hitl_agent``. ``ReviewTimeoutError``,
``ReviewMismatchError`` and ``AmbiguousCreateError`` are raised by gates (defined in
``hitl_agent.gate``), ``LedgerError`` by ledgers (``hitl_agent.ledger``);
``RemoteResumeError`` is raised by the ``remote`` extra's resumers and defined here, so
catching it needs no extra installed.

Raw ``httpx2``/``httpx`` exceptions never escape the client: they are wrapped into
:class:`APIConnectionError` or :class:`APITimeoutError` with the original as ``__cause__``.
Messages never contain the API key.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx
    import httpx2

    AnyRequest = httpx2.Request | httpx.Request
    AnyResponse = httpx2.Response | httpx.Response

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClaimExpiredError",
    "ConfigError",
    "ConflictError",
    "HITLError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "PollingError",
    "RateLimitError",
    "RemoteResumeError",
    "ResponseShapeError",
    "SiblingReviewMissingError",
]


class HITLError(Exception):
    """Root of every error raised by hitl_agent.

    Every error pickles and copies with its attributes (to a worker process and back, or
    through ``copy``), whatever its ``__init__`` takes.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        # BaseException's reduce calls ``type(self)(*self.args)``, which fails for the errors
        # whose __init__ takes other arguments (ConfigError, APIStatusError, ...).
        return (_rebuild, (type(self), self.args, self.__dict__))


class ConfigError(HITLError, ValueError):
    """An argument is invalid; raised before anything is sent.

    Attributes:
        field: dotted path of the offending field, e.g. ``response_config.options``.
        fix: one sentence saying how to correct it.
    """

    def __init__(self, field: str, problem: str, fix: str) -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        super().__init__(f"{field}: {problem}. Fix: {fix}")


class ResponseShapeError(HITLError, ValueError):
    """A ``response_data`` value matches none of the documented shapes for its response type."""


class PollingError(HITLError):
    """Sweeps for decisions failed ``failures`` times in a row with an error a retry cannot fix.

    Raised by a blocking ``review()``/``areview()`` in place of waiting until its deadline, and
    held by :attr:`Dispatcher.poll_error`. The cause (``__cause__``) is a rejected key (401,
    403), a server that does not answer like the HITL API, a ConfigError or a bug (TypeError,
    ...); outages, 5xx and 429 are retried instead. The request is still open: once the cause
    is fixed, ``review`` with the same ``key`` picks it up.

    Attributes:
        failures: the consecutive failed sweeps.
        request_id: the review that stopped waiting, when there is one.
    """

    def __init__(self, message: str, *, failures: int, request_id: str | None = None) -> None:
        super().__init__(message)
        self.failures = failures
        self.request_id = request_id


class RemoteResumeError(HITLError):
    """The LangGraph Server refused or failed a resume (the SDK's error is chained).

    Raised by :class:`~hitl_agent.langgraph.remote.RemoteGraphResumer` and the remote bridge
    (the ``remote`` extra); defined here so that catching it needs no extra installed.

    Attributes:
        status_code: the HTTP status of a refused call (409: the thread is busy with another
            run; 404/422: unknown assistant or invalid payload), None otherwise.
    """

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code

    @classmethod
    def wrap(cls, what: str, exc: Exception) -> RemoteResumeError:
        """An error saying ``what`` failed because of ``exc`` (status and server body)."""
        import httpx  # langgraph-sdk's HTTP stack; on use only, like the extra

        status: int | None = None
        detail = str(exc)
        if isinstance(exc, httpx.HTTPStatusError):
            status = exc.response.status_code
            notes = [n for n in getattr(exc, "__notes__", ()) if isinstance(n, str)]
            body = notes[-1] if notes else getattr(exc, "message", "")
            detail = f"HTTP {status} {exc.response.reason_phrase}: {body}".rstrip(": ")
        return cls(f"{what} failed: {detail}", status)


class ClaimExpiredError(HITLError):
    """A resume's claim expired before its approved action could start: it did not start.

    The process stalled past its lease (another replica may hold the row now); the resolver
    retries the resume. Raised by the tool wrappers, right before an action would start.
    """


class SiblingReviewMissingError(HITLError):
    """An approved call waited for a sibling call of its model turn to record its review,
    and it never did; the approved call did not run.

    The sibling failed before asking, or never started: LangGraph's ``tools_condition`` runs
    a turn's calls in one ToolNode task, whose thread pool may be smaller than the number of
    gated calls. Route with ``hitl_agent.langgraph.tools_condition`` (one task per call).
    """


class APIError(HITLError):
    """A call to the HITL API failed.

    Attributes:
        request: the ``AnyRequest`` that failed, when there was one.
    """

    def __init__(self, message: str, *, request: AnyRequest | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request = request


class APIConnectionError(APIError):
    """No response arrived: DNS, refused connection, reset, protocol error."""

    def __init__(
        self, message: str = "Connection error.", *, request: AnyRequest | None = None
    ) -> None:
        super().__init__(message, request=request)


class APITimeoutError(APIConnectionError):
    """The request timed out. For a create, the request may or may not exist on the server."""

    def __init__(
        self, message: str = "Request timed out.", *, request: AnyRequest | None = None
    ) -> None:
        super().__init__(message, request=request)


class APIResponseValidationError(APIError):
    """The server answered, but not with the documented ``{error, msg, data}`` envelope."""

    def __init__(
        self, message: str, *, response: AnyResponse, request: AnyRequest | None = None
    ) -> None:
        super().__init__(message, request=request)
        self.response = response
        self.status_code = response.status_code


class APIStatusError(APIError):
    """The API answered with an error: a non-2xx status or ``"error": true``.

    Attributes:
        status_code: the HTTP status.
        msg: the server's ``msg`` (also the exception message).
        data: the server's ``data``: a string, an object, or ``None``.
        response: the ``AnyResponse``.
    """

    def __init__(
        self,
        msg: str,
        *,
        response: AnyResponse,
        data: Any = None,
        request: AnyRequest | None = None,
    ) -> None:
        detail = f"{msg} ({data})" if isinstance(data, str) and data else msg
        super().__init__(f"HTTP {response.status_code}: {detail}", request=request)
        self.msg = msg
        self.data = data
        self.response = response
        self.status_code = response.status_code


class BadRequestError(APIStatusError):
    """400: validation failed or the request is in the wrong state."""


class AuthenticationError(APIStatusError):
    """401: missing, malformed or unknown API key."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not touch this loop or request."""


class NotFoundError(APIStatusError):
    """404: no such loop, request or member (also: another key's request)."""


class ConflictError(APIStatusError):
    """409: the resource is not in a state that allows this transition."""


class RateLimitError(APIStatusError):
    """429: the key's hourly quota is spent.

    Attributes:
        usage_count, usage_limit, remaining: the figures from the 429 body, when sent.
        reset_at: when the window resets (from ``data.reset_at`` or ``X-RateLimit-Reset``).
    """

    def __init__(
        self,
        msg: str,
        *,
        response: AnyResponse,
        data: Any = None,
        request: AnyRequest | None = None,
        reset_at: datetime | None = None,
    ) -> None:
        super().__init__(msg, response=response, data=data, request=request)
        figures = data if isinstance(data, dict) else {}
        self.usage_count: int | None = _int_or_none(figures.get("usage_count"))
        self.usage_limit: int | None = _int_or_none(figures.get("usage_limit"))
        self.remaining: int | None = _int_or_none(figures.get("remaining"))
        self.reset_at: datetime | None = reset_at


class InternalServerError(APIStatusError):
    """5xx: the server failed."""


def _rebuild(cls: type[HITLError], args: tuple[Any, ...], state: dict[str, Any]) -> HITLError:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None
