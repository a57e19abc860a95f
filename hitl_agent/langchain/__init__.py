"""LangChain integration: tools that ask a human, and the ``HumanInTheLoopMiddleware`` bridge.

::

    safe_refund = keeper.require_approval(refund)            # same name, schema, description
    ask = keeper.ask_human_tool()                            # question, response_type, options

Both tools are :class:`~langchain_core.tools.BaseTool` objects for ``create_agent``, a
``ToolNode`` or a plain ``tool.invoke``: inside a graph run they suspend the thread durably (one
review per tool call, keyed by the call's id); outside one they block on the process's shared
poll loop. They need only ``langchain-core``. See docs/tools.md for the forms a reviewer sees.

The bridge (``bridge(keeper, agent)``, or ``keeper.bridge(agent)``) is a
:class:`MiddlewareBridge` (:class:`RemoteMiddlewareBridge` for a LangGraph Server); it needs
the ``langchain`` extra (``pip install 'hitl-agent[langchain]'``), loaded on first use.
"""

from typing import TYPE_CHECKING, Any

from ._approval import ApprovalTool, Policy, require_approval
from ._ask import AskHumanTool, ask_human_tool
from ._bridges import bridge
from ._once import ApprovedCall, approved_call

if TYPE_CHECKING:
    from ._bridge import MiddlewareBridge
    from ._bridge_remote import RemoteMiddlewareBridge


def __getattr__(name: str) -> Any:
    # The bridge classes import LangChain's middleware (and langgraph-sdk): the `langchain`
    # and `remote` extras, loaded on first use so that the tool wrappers need neither.
    if name == "MiddlewareBridge":
        from ._bridge import MiddlewareBridge

        return MiddlewareBridge
    if name == "RemoteMiddlewareBridge":
        from ._bridge_remote import RemoteMiddlewareBridge

        return RemoteMiddlewareBridge
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ApprovalTool",
    "ApprovedCall",
    "AskHumanTool",
    "MiddlewareBridge",
    "Policy",
    "RemoteMiddlewareBridge",
    "approved_call",
    "ask_human_tool",
    "bridge",
    "require_approval",
]
