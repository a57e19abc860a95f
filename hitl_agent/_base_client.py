"""Everything the sync and async clients share, none of it doing IO.

A resource method describes its call as an :class:`APICall` (method, path, query, body and a
parser for ``data``); the clients only send it, retry it under :class:`RetryPolicy`, and hand
the response to :meth:`BaseClient._parse_response`, which maps the ``{error, msg, data}``
envelope to a model or to the right exception.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
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

__all__ = ["APICall", "BaseClient", "path_param"]

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
        )
        # The timeout goes in as the mapping both libraries' transports read: a Timeout object
        # of the other library is refused by httpx2 (2.17+), and a look-alike client may be
        # either library underneath.
        request.extensions = {**request.extensions, "timeout": self._timeout_extension}
        return request

    @staticmethod
    def _now() -> datetime:
        return datetime.now(UTC)

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
            return call.parse(body.get("data"))
        except (pydantic.ValidationError, TypeError, KeyError) as err:
            raise APIResponseValidationError(
                f"HTTP {response.status_code}: unexpected data for {call.method} {call.path}: "
                f"{err}",
                response=response,
                request=response.request,
            ) from None

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
                reset_at=reset_at or headers.reset_at,
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


def _http_date(value: str | None) -> datetime | None:
    """An RFC 9110 ``Date`` header as an aware datetime, or None when absent or unreadable."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
