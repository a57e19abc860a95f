"""Fixtures and fakes for tests of code that asks humans: a local HITL server, a scripted
reviewer and a clock that moves only when told to.

::

    from hitl_agent.testing import FakeClock, local_hitl

    clock = FakeClock()
    with local_hitl(clock=clock) as hitl:
        created = hitl.client.requests.create(hitl.loop_id, request_text="Deploy?",
            response_type="boolean", default_response=False, timeout_seconds=600)
        clock.advance(601)
        hitl.tick_sync()
        assert hitl.client.requests.get(created.request_id).status == "timeout"
"""

from .._extras import MissingExtraError

try:
    import starlette  # noqa: F401  (local_hitl serves the local server: the `server` extra)
except ImportError as err:
    raise MissingExtraError("server", "hitl_agent.testing", err.name or "starlette") from err

from ._clock import FakeClock
from ._local import AsyncLocalHITL, LocalHITL, alocal_hitl, hitl_or_local, local_hitl
from ._reviewer import AsyncScriptedReviewer, ScriptedReviewer

__all__ = [
    "AsyncLocalHITL",
    "AsyncScriptedReviewer",
    "FakeClock",
    "LocalHITL",
    "ScriptedReviewer",
    "alocal_hitl",
    "hitl_or_local",
    "local_hitl",
]
