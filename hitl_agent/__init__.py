"""hitl_agent: human approval for LLM agents, backed by HITL.sh.

The typed client::

    from hitl_agent import HITLClient
    with HITLClient(api_key="...") as client:
        print(client.test().rate_limit)
"""

from ._client import AsyncHITLClient, HITLClient
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ConflictError,
    HITLError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseShapeError,
)
from ._retry import RetryPolicy
from ._version import __version__
from .models import EditedText, Request

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncHITLClient",
    "AuthenticationError",
    "BadRequestError",
    "ConfigError",
    "ConflictError",
    "EditedText",
    "HITLClient",
    "HITLError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "Request",
    "ResponseShapeError",
    "RetryPolicy",
    "__version__",
]
