"""LangChain tools that ask a human: ``require_approval`` and ``ask_human_tool``.

::

    safe_refund = keeper.require_approval(refund)            # same name, schema, description
    ask = keeper.ask_human_tool()                            # question, response_type, options

Both are :class:`~langchain_core.tools.BaseTool` objects for ``create_agent``, a ``ToolNode``
or a plain ``tool.invoke``: inside a graph run they suspend the thread durably (one review per
tool call, keyed by the call's id); outside one they block on the process's shared poll loop.
See docs/tools.md for the forms a reviewer sees.
"""

from ._approval import ApprovalTool, Policy, require_approval
from ._ask import AskHumanTool, ask_human_tool

__all__ = ["ApprovalTool", "AskHumanTool", "Policy", "ask_human_tool", "require_approval"]
