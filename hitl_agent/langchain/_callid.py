"""The id of the tool call being run, carried from ``BaseTool.run`` to the tool's ``_run``.

``BaseTool.invoke`` hands a ``ToolCall`` dict's ``id`` to :meth:`BaseTool.run` as
``tool_call_id=`` (LangChain's documented path; it names the resulting ``ToolMessage``). A tool
that needs it without adding a parameter to its schema reads it in ``run`` and keeps it here
for ``_run``: LangChain copies the context into the thread or task that runs ``_run``.
"""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["CALL_ID"]

CALL_ID: ContextVar[str | None] = ContextVar("hitl_agent_tool_call_id", default=None)
