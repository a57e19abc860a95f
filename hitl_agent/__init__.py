"""hitl_agent: human approval for LLM agents, backed by HITL.sh.

The typed client, and a review gate that suspends a LangGraph thread durably::

    from hitl_agent import Gatekeeper, HITLClient
    with HITLClient(api_key="...") as client:
        keeper = Gatekeeper(client=client, loop_id="...", ledger="sqlite:///hitl.db")
        decision = keeper.review("Refund $250 to order 1234?")
"""

from ._client import AsyncHITLClient, HITLClient
from ._config import CallbackConfig, PollConfig, ReviewDefaults
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClaimExpiredError,
    ConfigError,
    ConflictError,
    HITLError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    PollingError,
    RateLimitError,
    RemoteResumeError,
    ResponseShapeError,
    SiblingReviewMissingError,
)
from ._retry import RetryPolicy
from ._version import __version__
from .decision import Decision
from .gate import AmbiguousCreateError, Gatekeeper, ReviewMismatchError, ReviewTimeoutError
from .ledger import LedgerError
from .models import EditedText, Request
from .policies import Escalate, Grants, Quorum

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AmbiguousCreateError",
    "AsyncHITLClient",
    "AuthenticationError",
    "BadRequestError",
    "CallbackConfig",
    "ClaimExpiredError",
    "ConfigError",
    "ConflictError",
    "Decision",
    "EditedText",
    "Escalate",
    "Gatekeeper",
    "Grants",
    "HITLClient",
    "HITLError",
    "InternalServerError",
    "LedgerError",
    "NotFoundError",
    "PermissionDeniedError",
    "PollConfig",
    "PollingError",
    "Quorum",
    "RateLimitError",
    "RemoteResumeError",
    "Request",
    "ResponseShapeError",
    "RetryPolicy",
    "ReviewDefaults",
    "ReviewMismatchError",
    "ReviewTimeoutError",
    "SiblingReviewMissingError",
    "__version__",
]

# Reprs, tracebacks and pickles name the public path (``hitl_agent.Gatekeeper``), not the
# private module that defines the class, as httpx does.
for _name in __all__:
    if not _name.startswith("__"):  # every other root name is a class
        globals()[_name].__module__ = "hitl_agent"
del _name
