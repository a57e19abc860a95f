"""Everything the sync and async clients share, none of it doing IO.

A resource method describes its call as an :class:`APICall` (method, path, query, body and a
parser for ``data``); the clients only send it, retry it under :class:`RetryPolicy`, and hand
the response to :meth:`BaseClient._parse_response`, which maps the ``{error, msg, data}``
envelope to a model or to the right exception.

Every HTTP attempt (a retry included) is reported to the :class:`AttemptMeter` active in the
caller's context, if any: that is how the call budget charges each attempt, not each logical
call (issue 20 F10), and may refuse a retry it cannot pay for. Without a meter nothing
changes. The meter lives in a context variable, so it follows the call into a worker thread
(``asyncio.to_thread``) and through ``await``, and one thread's meter never counts another's
calls on a shared client.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import pydantic

from ._constants import API_PREFIX, DEFAULT_BASE_URL, DEFAULT_TIMEOUT, USER_AGENT
from ._exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
)
from ._http import (
    DEFAULT_STACK,
    TIMEOUT_ERRORS,
    AnyAsyncClient,
    AnyClient,
    AnyRequest,
    AnyResponse,
    AnyTimeout,
    check_client,
    timeout_for,
)
from ._retry import RetryPolicy
from .models.account import RateLimit

__all__ = ["APICall", "AttemptMeter", "BaseClient", "path_param"]

log = logging.getLogger("hitl_agent")
T = TypeVar("T")

_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
}


@dataclass(frozen=True)
class APICall(Generic[T]):
    """One API call, described: ``parse`` turns the envelope's ``data`` into the result."""

    method: str
    path: str
    parse: Callable[[Any], T]
    params: dict[str, Any] | None = None
    json: Any = None
    # A multipart upload: {field: (filename, bytes, content type)} (client.uploads).
    files: dict[str, tuple[str, bytes, str]] | None = None
    # A 2xx body without ``data`` is parsed whole (HITL.sh's n8n node reads a trigger's ids
    # from ``data`` or from the top level).
    top_level: bool = False


class AttemptMeter:
    """Counts the HTTP attempts of the calls made while it is active; may refuse retries.

    ::

        with AttemptMeter(admit_retry=lambda: budget.try_spend(1)) as meter:
            client.requests.get(request_id)
        meter.attempts  # 1 + the retries sent

    Args:
        admit_retry: asked before each retry is sent (after the backoff is known, before
            sleeping); False: the retry is not sent and the call ends with the error or
            response it got. None: every retry the :class:`RetryPolicy` allows is sent.

    Attributes:
        attempts: HTTP requests sent (each retry counts).
        refused: retries ``admit_retry`` refused.
    """

    def __init__(self, admit_retry: Callable[[], bool] | None = None) -> None:
        self.attempts = 0
        self.refused = 0
        self._admit_retry = admit_retry
        self._tokens: list[Token[AttemptMeter | None]] = []

    def __repr__(self) -> str:
        return f"AttemptMeter(attempts={self.attempts}, refused={self.refused})"

    def __enter__(self) -> AttemptMeter:
        self._tokens.append(_METER.set(self))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _METER.reset(self._tokens.pop())

    def admit_retry(self) -> bool:
        """May one more attempt be sent? (Counts a refusal.)"""
        if self._admit_retry is None or self._admit_retry():
            return True
        self.refused += 1
        return False


_METER: ContextVar[AttemptMeter | None] = ContextVar("hitl_agent_attempt_meter", default=None)


def path_param(name: str, value: str) -> str:
    """``value`` escaped for a URL path; an empty value is a ValueError naming ``name``."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"Expected a non-empty value for `{name}` but received {value!r}")
    return quote(value, safe="")


def api_path(*parts: str) -> str:
    """A path under the ``/api`` prefix that loops and requests use."""
    return API_PREFIX + "/" + "/".join(parts)


class BaseClient:
    """Configuration, request building and response parsing shared by both clients."""

    def __init__(
        self,
        api_key: str | None,
        *,
        base_url: str | None,
        timeout: float | AnyTimeout | None,
        retry: RetryPolicy | None,
    ) -> None:
        api_key = api_key if api_key is not None else os.environ.get("HITL_API_KEY")
        if not api_key:
            raise ConfigError(
                "api_key",
                "no API key was given",
                "pass api_key=... or set HITL_API_KEY (for the local server: "
                "the key `hitl-agent serve` prints)",
            )
        if not isinstance(api_key, str) or any(
            ch.isspace() or not ch.isprintable() for ch in api_key
        ):
            # httpx would reject such a header value with an error quoting it, key included.
            raise ConfigError(
                "api_key",
                "contains whitespace or control characters",
                "pass the key exactly as the dashboard shows it (strip newlines and spaces)",
            )
        self._api_key = api_key
        base = base_url or os.environ.get("HITL_BASE_URL") or DEFAULT_BASE_URL
        if not base.startswith(("http://", "https://")):
            raise ConfigError(
                "base_url", f"{base!r} is not an http(s) URL", "use e.g. https://api.hitl.sh/v1"
            )
        self.base_url = base.rstrip("/")
        self.timeout: AnyTimeout = (
            DEFAULT_TIMEOUT if timeout is None else timeout_for(DEFAULT_STACK, timeout)
        )
        self.retry = retry or RetryPolicy()
        self.rate_limit: RateLimit | None = None
        """The ``X-RateLimit-*`` figures of the last response that carried them."""
        self.server_date: datetime | None = None
        """The ``Date`` of the last response that carried one: the server's clock, which
        deadlines and reconciliation are judged by (ours may be skewed)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._api_key}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }

    def _bind(self, http_client: AnyClient | AnyAsyncClient, *, asynchronous: bool) -> None:
        """Send through ``http_client``, whichever library (or look-alike) it is."""
        check_client(http_client, asynchronous=asynchronous)
        # Typed as Any: the two libraries' clients have the same API but their objects must
        # not mix, which the union type cannot express; _build_request keeps them apart.
        self._http: Any = http_client
        self._timeout_extension = self.timeout.as_dict()

    def _build_request(self, call: APICall[Any]) -> Any:
        params = {key: value for key, value in (call.params or {}).items() if value is not None}
        request = self._http.build_request(
            call.method,
            self.base_url + call.path,
            params=params or None,
            json=call.json,
            headers=self._headers(),
            **({"files": call.files} if call.files is not None else {}),
        )
        # The timeout goes in as the mapping both libraries' transports read: a Timeout object
        # of the other library is refused by httpx2 (2.17+), and a look-alike client may be
        # either library underneath.
        request.extensions = {**request.extensions, "timeout": self._timeout_extension}
        return request

    @staticmethod
    def _now() -> datetime:
        return datetime.now(UTC)

    @staticmethod
    def _count_attempt() -> None:
        """An HTTP request is about to be sent: the active meter (if any) counts it."""
        meter = _METER.get()
        if meter is not None:
            meter.attempts += 1

    @staticmethod
    def _admit_retry() -> bool:
        """The policy wants to retry: may it (the active meter's budget)? True without one."""
        meter = _METER.get()
        return meter is None or meter.admit_retry()

    def _wrap_transport_error(self, err: Exception, request: AnyRequest) -> APIConnectionError:
        # httpx messages carry the URL but not headers; the key is masked anyway in case a
        # transport quotes a header back.
        detail = str(err).replace(self._api_key, "***")
        # Name the host: "connection refused" alone does not say which server was meant.
        where = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}{request.url.path}"
        if isinstance(err, TIMEOUT_ERRORS):
            return APITimeoutError(
                f"{request.method} {where} timed out"
                + (
                    " (the request may have been created; it was not sent again)"
                    if request.method == "POST"
                    else ""
                ),
                request=request,
            )
        return APIConnectionError(
            f"{request.method} {where} failed: {type(err).__name__}: {detail}",
            request=request,
        )

    def _log_response(self, response: AnyResponse) -> None:
        request = response.request
        log.debug(
            'HTTP Request: %s %s "%d %s"',
            request.method,
            request.url.path,
            response.status_code,
            response.reason_phrase,
        )

    def _observe(self, response: AnyResponse) -> None:
        """Log ``response`` and keep its ``X-RateLimit-*`` figures (retried ones included)."""
        self._log_response(response)
        rate_limit = RateLimit.from_headers(response.headers)
        if rate_limit is not None:
            self.rate_limit = rate_limit
        date = _http_date(response.headers.get("date"))
        if date is not None:
            self.server_date = date

    def _parse_response(self, call: APICall[T], response: AnyResponse) -> T:
        self._observe(response)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not (200 <= response.status_code < 300 or "msg" in body):
            if 200 <= response.status_code < 300:
                raise APIResponseValidationError(
                    f"HTTP {response.status_code}: the body is not a JSON envelope",
                    response=response,
                    request=response.request,
                )
            text = response.text[:200] if response.text else response.reason_phrase
            raise self._status_error(response, text, None)
        if body.get("error") is True or not 200 <= response.status_code < 300:
            msg = body.get("msg")
            raise self._status_error(
                response, msg if isinstance(msg, str) else response.reason_phrase, body.get("data")
            )
        try:
            data = body if call.top_level and "data" not in body else body.get("data")
            return call.parse(data)
        except (pydantic.ValidationError, TypeError, KeyError) as err:
            raise APIResponseValidationError(
                f"HTTP {response.status_code}: unexpected data for {call.method} {call.path}: "
                f"{err}",
                response=response,
                request=response.request,
            ) from None

    def _retry_after(self, response: AnyResponse) -> datetime | None:
        # A 429 that names no reset moment but says Retry-After: the budget waits that long,
        # not its 60 s fallback (issue 20 F11).
        return _retry_after_at(response, self._now())

    def _status_error(self, response: AnyResponse, msg: str, data: Any) -> APIStatusError:
        status = response.status_code
        if status == 429:
            headers = RateLimit.from_headers(response.headers) or RateLimit()
            reset_at = None
            if isinstance(data, dict) and isinstance(data.get("reset_at"), str):
                try:
                    reset_at = datetime.fromisoformat(data["reset_at"].replace("Z", "+00:00"))
                except ValueError:
                    reset_at = None
            error = RateLimitError(
                msg,
                response=response,
                data=data,
                request=response.request,
                reset_at=reset_at or headers.reset_at or self._retry_after(response),
            )
            # The 429 body is the documented source; the headers fill what it leaves out.
            if error.usage_limit is None:
                error.usage_limit = headers.limit
            if error.remaining is None:
                error.remaining = headers.remaining
            return error
        cls = _STATUS_ERRORS.get(status)
        if cls is None:
            cls = InternalServerError if status >= 500 else APIStatusError
        return cls(msg, response=response, data=data, request=response.request)


def _retry_after_at(response: AnyResponse, now: datetime) -> datetime | None:
    """``Retry-After`` (seconds or an HTTP date) as the moment it names, on the server's clock
    (the response's ``Date``) when it sent one; None when absent or unreadable."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    base = _http_date(response.headers.get("date")) or now
    try:
        seconds = float(value)
    except ValueError:
        return _http_date(value)
    if seconds != seconds or seconds in (float("inf"), float("-inf")) or seconds < 0:
        return None  # NaN, infinite or negative: no figure to wait by
    return base + timedelta(seconds=min(seconds, 86_400.0))


def _http_date(value: str | None) -> datetime | None:
    """An RFC 9110 ``Date`` header as an aware datetime, or None when absent or unreadable."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
