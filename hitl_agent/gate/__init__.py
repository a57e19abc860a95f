"""Review gates: ask a human once, wait safely, get a typed Decision.

::

    from hitl_agent.gate import Gatekeeper
    keeper = Gatekeeper(client=client, loop_id=loop_id, ledger="sqlite:///hitl.db")
    decision = keeper.review("Delete the staging database?", priority="high")

Besides the keeper: :class:`ReviewSpec` (one validated question), the hashing that binds a
decision to what runs (:func:`args_hash`, :data:`ARGS_HASH_KEY`, :func:`canonical_json`,
:data:`CONTEXT_KEY`) and the create-once primitive integrations build on
(:class:`CreateTarget`, from :meth:`Gatekeeper.create_target`, with :func:`ensure_request` /
:func:`aensure_request`). Test hooks (``hitl_agent._hooks``) and callback tokens
(``hitl_agent._tokens``) are internal.
"""

from ._create import CreateTarget, aensure_request, ensure_request, retire_request
from ._errors import AmbiguousCreateError, ReviewMismatchError, ReviewTimeoutError
from ._keeper import Gatekeeper
from ._spec import (
    ARGS_HASH_KEY,
    CONTEXT_KEY,
    GATED_TOOL_KEY,
    ReviewSpec,
    args_hash,
    canonical_json,
)

__all__ = [
    "ARGS_HASH_KEY",
    "CONTEXT_KEY",
    "GATED_TOOL_KEY",
    "AmbiguousCreateError",
    "CreateTarget",
    "Gatekeeper",
    "ReviewMismatchError",
    "ReviewSpec",
    "ReviewTimeoutError",
    "aensure_request",
    "args_hash",
    "canonical_json",
    "ensure_request",
    "retire_request",
]
