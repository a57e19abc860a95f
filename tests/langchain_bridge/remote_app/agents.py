"""Unchanged HumanInTheLoopMiddleware agents served by ``langgraph dev`` (not loaded by pytest).

``batched`` and ``per_call`` are LangChain's documented configuration (write_file: all
decisions, execute_sql: approve/reject, read_data: ungated). The scripted model calls all
three tools after the user's message and says "All done." after the tools answered. Each tool
appends ``<thread> <tool> <args>`` to ``$HITL_REMOTE_EFFECTS``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.config import get_config


class Model(GenericFakeChatModel):
    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        if isinstance(messages[-1], HumanMessage):
            message = AIMessage(
                content="",
                tool_calls=[
                    {"name": "write_file", "args": {"filename": "a", "content": "x"}, "id": "c0"},
                    {"name": "read_data", "args": {"query": "q"}, "id": "c1"},
                    {"name": "execute_sql", "args": {"query": "DELETE t"}, "id": "c2"},
                ],
            )
        else:
            message = AIMessage(content="All done.")
        return ChatResult(generations=[ChatGeneration(message=message)])


def _effect(what: str) -> None:
    thread_id = get_config()["configurable"]["thread_id"]
    with Path(os.environ["HITL_REMOTE_EFFECTS"]).open("a", encoding="utf-8") as f:
        f.write(f"{thread_id} {what}\n")


@tool
def write_file(filename: str, content: str) -> str:
    """Write a file."""
    _effect(f"write_file {filename} {content}")
    return "written"


@tool
def execute_sql(query: str) -> str:
    """Run SQL."""
    _effect(f"execute_sql {query}")
    return "1 row"


@tool
def read_data(query: str) -> str:
    """Read data."""
    _effect(f"read_data {query}")
    return "42"


def _agent(mode: Any) -> Any:
    return create_agent(
        Model(messages=iter([])),
        tools=[write_file, execute_sql, read_data],
        middleware=[
            HumanInTheLoopMiddleware(
                interrupt_on={
                    "write_file": True,
                    "execute_sql": {"allowed_decisions": ["approve", "reject"]},
                    "read_data": False,
                },
                description_prefix="Tool execution pending approval",
                interrupt_mode=mode,
            )
        ],
    )


batched = _agent("batched")
per_call = _agent("per_call")
