"""``bridge()``: the one way to build a ``HumanInTheLoopMiddleware`` bridge, local or remote.

``keeper.bridge(...)`` delegates here. Each bridge class lives in a module that imports what
it serves (LangChain's middleware; langgraph-sdk for the remote one), so this module imports
them only when asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigError

if TYPE_CHECKING:
    from ..gate import Gatekeeper
    from ._bridge import MiddlewareBridge
    from ._bridge_remote import RemoteMiddlewareBridge

__all__ = ["bridge"]


def bridge(
    keeper: Gatekeeper,
    agent: Any = None,
    *,
    langgraph_url: str | None = None,
    assistant_id: str | None = None,
    **options: Any,
) -> MiddlewareBridge | RemoteMiddlewareBridge:
    """Serve an unchanged ``HumanInTheLoopMiddleware`` agent's interrupts on HITL.sh.

    ``bridge(keeper, agent)`` for a compiled graph with its checkpointer, or
    ``bridge(keeper, langgraph_url=URL, assistant_id=ID)`` for one served by a LangGraph
    Server. ``options``: ``priority``, ``timeout_seconds``, ``durability``, ``config``,
    ``policies`` (approval policies per gated tool: ``{"execute_sql": {"quorum": 2}}``)
    (remote: ``api_key``, ``headers``, ``client``, ``aclient``). See docs/bridge.md.

    Raises:
        ConfigError: neither a graph nor both ``langgraph_url`` and ``assistant_id``.
        ImportError: the ``langchain`` (or, remote, the ``remote``) extra is missing.
    """
    if agent is None:
        if not langgraph_url or not assistant_id:
            raise ConfigError(
                "agent",
                "neither a graph nor langgraph_url and assistant_id were given",
                "pass keeper.bridge(agent) or keeper.bridge(langgraph_url=..., assistant_id=...)",
            )
        from .._extras import require

        require("remote", "keeper.bridge(langgraph_url=...)", "langgraph_sdk")
        from ._bridge_remote import RemoteMiddlewareBridge

        return RemoteMiddlewareBridge(keeper, langgraph_url, assistant_id, **options)
    from ._bridge import MiddlewareBridge

    return MiddlewareBridge(keeper, agent, **options)
