"""LangChain integration: tools that ask a human, and the ``HumanInTheLoopMiddleware`` bridge.

::

    safe_refund = keeper.require_approval(refund)            # same name, schema, description
    ask = keeper.ask_human_tool()                            # question, response_type, options

Both tools are :class:`~langchain_core.tools.BaseTool` objects for ``create_agent``, a
``ToolNode`` or a plain ``tool.invoke``: inside a graph run they suspend the thread durably (one
review per tool call, keyed by the call's id); outside one they block on the process's shared
poll loop. They need only ``langchain-core``. See docs/tools.md for the forms a reviewer sees.

The bridge lives in ``hitl_agent.langchain._bridge`` and is reached through
:meth:`hitl_agent.gate.Gatekeeper.bridge`; it needs the ``langchain`` extra
(``pip install 'hitl-agent[langchain]'``).
"""

from ._approval import ApprovalTool, Policy, require_approval
from ._ask import AskHumanTool, ask_human_tool

__all__ = ["ApprovalTool", "AskHumanTool", "Policy", "ask_human_tool", "require_approval"]
