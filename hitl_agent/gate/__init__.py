"""Review gates: ask a human once, wait safely, get a typed Decision.

::

    from hitl_agent.gate import Gatekeeper
    keeper = Gatekeeper(client=client, loop_id=loop_id, ledger="sqlite:///hitl.db")
    decision = keeper.review("Delete the staging database?", priority="high")
"""

from .._hooks import CRASH_POINTS, set_hook
from .._tokens import derive_token, token_hash, token_matches
from ._create import CreateTarget, aensure_request, ensure_request
from ._errors import ReviewMismatchError, ReviewTimeoutError
from ._keeper import Gatekeeper
from ._spec import ARGS_HASH_KEY, CONTEXT_KEY, ReviewSpec, args_hash, canonical_json

__all__ = [
    "ARGS_HASH_KEY",
    "CONTEXT_KEY",
    "CRASH_POINTS",
    "CreateTarget",
    "Gatekeeper",
    "ReviewMismatchError",
    "ReviewSpec",
    "ReviewTimeoutError",
    "aensure_request",
    "args_hash",
    "canonical_json",
    "derive_token",
    "ensure_request",
    "set_hook",
    "token_hash",
    "token_matches",
]
