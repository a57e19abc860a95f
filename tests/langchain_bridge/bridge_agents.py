"""LangChain's documented HumanInTheLoopMiddleware agents, driven by a scripted chat model.

``documented_agent`` is the docs page's configuration (``write_file`` all decisions,
``execute_sql`` approve/reject, ``read_data`` ungated); ``per_call_agent`` is the
middleware's own per-call sample (``send_email`` all decisions, ``delete_file``
approve/reject). Every tool appends what it did to ``effects``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.tools import tool


class ScriptedModel(GenericFakeChatModel):
    """A fake chat model that accepts tools and answers from a script."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


def calls(*items: tuple[str, dict[str, Any]]) -> AIMessage:
    """An AIMessage calling ``items`` as (tool, args), ids ``call_0``, ``call_1``, ..."""
    return AIMessage(
        content="",
        tool_calls=[
            {"name": name, "args": args, "id": f"call_{i}", "type": "tool_call"}
            for i, (name, args) in enumerate(items)
        ],
    )


def script(*turns: AIMessage) -> ScriptedModel:
    return ScriptedModel(messages=iter([*turns, AIMessage(content="All done.")]))


def documented_tools(effects: list[str]) -> list[Any]:
    @tool
    def write_file(filename: str, content: str) -> str:
        """Write content to a file."""
        effects.append(f"write_file {filename} {content}")
        return f"wrote {filename}"

    @tool
    def execute_sql(query: str) -> str:
        """Run a SQL statement."""
        effects.append(f"execute_sql {query}")
        return "1 row"

    @tool
    def read_data(query: str) -> str:
        """Read data."""
        effects.append(f"read_data {query}")
        return "42"

    return [write_file, execute_sql, read_data]


def documented_agent(
    model: ScriptedModel, effects: list[str], saver: Any, *, mode: str = "batched", **kw: Any
) -> Any:
    """The docs page's agent (``interrupt_on`` with write_file / execute_sql / read_data)."""
    return create_agent(
        model,
        tools=documented_tools(effects),
        middleware=[
            HumanInTheLoopMiddleware(
                interrupt_on={
                    "write_file": True,
                    "execute_sql": {"allowed_decisions": ["approve", "reject"]},
                    "read_data": False,
                },
                description_prefix="Tool execution pending approval",
                interrupt_mode=mode,  # type: ignore[arg-type]
            )
        ],
        checkpointer=saver,
        **kw,
    )


def per_call_agent(model: ScriptedModel, effects: list[str], saver: Any) -> Any:
    """The middleware's per-call sample: send_email (all decisions), delete_file."""

    @tool
    def send_email(to: str, body: str) -> str:
        """Send an email."""
        effects.append(f"send_email {to} {body}")
        return "sent"

    @tool
    def delete_file(path: str) -> str:
        """Delete a file."""
        effects.append(f"delete_file {path}")
        return "deleted"

    return create_agent(
        model,
        tools=[send_email, delete_file],
        middleware=[
            HumanInTheLoopMiddleware(
                interrupt_on={
                    "send_email": True,
                    "delete_file": {"allowed_decisions": ["approve", "reject"]},
                },
                interrupt_mode="per_call",
            )
        ],
        checkpointer=saver,
    )


def tool_messages(messages: Sequence[BaseMessage]) -> dict[str, ToolMessage]:
    """The ToolMessages of a run by tool_call_id."""
    return {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}


def draft(text: str, **changes: str) -> str:
    """A submitted editable_text draft: ``decision`` / ``message`` / ``args`` lines replaced."""
    lines = text.split("\n")
    out: list[str] = []
    skip_args = False
    for line in lines:
        label = line.partition(":")[0].strip()
        if skip_args:
            continue
        if label in changes:
            out.append(f"{label}: {changes[label]}")
            skip_args = label == "args"
        else:
            out.append(line)
    return "\n".join(out)


def follow_up(env: Any, row: Any) -> Any:
    """The follow-up row of ``row`` (its key: the first's plus ``|1``), or None."""
    return env.ledger.get(row.key + "|1")


def answer(env: Any, row: Any, choice: str, text: str | None = None) -> Any:
    """A reviewer taps ``choice`` on ``row``'s request; for a choice that asks for text (edit,
    reject_with_reason, respond) the dispatcher opens the follow-up, answered with ``text``
    (``None``: left unanswered). Returns the follow-up row (None when there is none)."""
    env.hitl.reviewer.respond(row.request_id, choice)
    env.tick()
    second = follow_up(env, row)
    if second is not None and text is not None:
        env.hitl.reviewer.respond(second.request_id, text)
        env.tick()
    return second
