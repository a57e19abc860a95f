"""``ask_human_tool``: a tool the model calls to ask a person a question and get a typed answer.

::

    ask = keeper.ask_human_tool()
    ask.invoke({"question": "Which plan?", "response_type": "single_select",
                "options": ["Basic", "Pro"]})                       # -> "Pro"

The answer comes back typed: ``str`` for text, the chosen option (as the model wrote it) for
``single_select``, a list of them for ``multi_select``, a number for ``number`` and ``rating``,
a ``bool`` for ``boolean``. As a ``ToolMessage`` (a model's tool call) the content is that
answer as text (JSON for the non-text types) and ``artifact["answer"]`` is the typed value.
When no one answers before the deadline the result is an error saying so
(``status="error"``), never a made-up answer.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, ToolException
from langgraph.errors import GraphInterrupt
from pydantic import BaseModel, ConfigDict, Field

from ..decision import Decision
from ._callid import CALL_ID
from ._render import neutralise, render_question, reveal_invisible
from ._settings import check_settings
from ._siblings import note_started, note_suspended

if TYPE_CHECKING:
    from ..gate import Gatekeeper

__all__ = ["AskHumanTool", "ask_human_tool"]

AnswerType = Literal["text", "single_select", "multi_select", "number", "rating", "boolean"]

_DESCRIPTION = (
    "Ask a human a question and wait for their answer. Use it when you need a fact, a choice "
    "or a judgement only a person can give. response_type is one of text, single_select, "
    "multi_select, number, rating (1 to 5) or boolean (yes/no); give options for the selects."
)


class AskArgs(BaseModel):
    """The question the model asks."""

    question: str = Field(description="The question, in plain words.")
    response_type: AnswerType = Field(default="text", description="The kind of answer wanted.")
    options: list[str] | None = Field(
        default=None, description="The choices, for single_select and multi_select (1 to 20)."
    )


_HINTS: dict[str, str] = {
    "text": "Type your answer; the agent reads it as written.",
    "single_select": "Pick one option; the agent gets the option you pick.",
    "multi_select": "Pick one or more options; the agent gets the options you pick.",
    "number": "Enter a number; the agent gets the number.",
    "rating": "Rate from 1 to 5; the agent gets the rating.",
    "boolean": "Answer yes or no; the agent gets your answer.",
}


def _form(response_type: str, options: list[str] | None) -> tuple[dict[str, Any], Any]:
    """The response config and the (never used as an answer) timeout default."""
    if response_type in ("single_select", "multi_select"):
        if not options:
            raise ToolException(f"{response_type} needs options: pass 1 to 20 choices")
        if len(options) > 20:
            raise ToolException(f"{len(options)} options given; at most 20 are allowed")
        choices = [
            {
                "value": f"option_{index}",
                "label": neutralise(reveal_invisible(label.strip()))[:200] or "-",
            }
            for index, label in enumerate(options, start=1)
        ]
        if response_type == "single_select":
            return {"options": choices}, "option_1"
        return {"options": choices, "max_selections": len(choices)}, ["option_1"]
    if options:
        raise ToolException(f"options are only for the selects, not for {response_type}")
    if response_type == "text":
        return {"max_length": 5000}, ""
    if response_type == "number":
        limit = 1_000_000_000_000
        bounds = {"min_value": -limit, "max_value": limit}
        return {**bounds, "allow_negative": True, "decimal_places": 4}, 0
    if response_type == "rating":
        return {"scale_min": 1, "scale_max": 5, "scale_step": 1}, 1
    return {"true_label": "Yes", "false_label": "No"}, False


def _answer(decision: Decision, options: list[str] | None) -> Any:
    value = decision.value
    labels = {f"option_{index}": label for index, label in enumerate(options or [], start=1)}
    if decision.response_type == "single_select" and isinstance(value, str):
        return labels.get(value, value)
    if decision.response_type == "multi_select" and isinstance(value, list):
        return [labels.get(item, item) for item in value]
    if decision.response_type in ("number", "rating") and isinstance(value, float):
        return int(value) if value.is_integer() else value
    if decision.response_type == "text":
        return decision.text or ""
    return value


class AskHumanTool(BaseTool):
    """Ask a person; the tool result is their typed answer (see the module docstring)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str = "ask_human"
    description: str = _DESCRIPTION
    args_schema: type[BaseModel] = AskArgs
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    handle_tool_error: bool = True
    keeper: Any = Field(exclude=True, repr=False)
    priority: str | None = None
    timeout_seconds: int | None = None

    def run(self, tool_input: Any, *args: Any, **kwargs: Any) -> Any:
        """Keep the tool call id for the review (no schema parameter needed)."""
        token = CALL_ID.set(kwargs.get("tool_call_id"))
        try:
            return super().run(tool_input, *args, **kwargs)
        finally:
            CALL_ID.reset(token)

    async def arun(self, tool_input: Any, *args: Any, **kwargs: Any) -> Any:
        """Async twin of :meth:`run`."""
        token = CALL_ID.set(kwargs.get("tool_call_id"))
        try:
            return await super().arun(tool_input, *args, **kwargs)
        finally:
            CALL_ID.reset(token)

    def _review_kwargs(
        self, question: str, response_type: str, options: list[str] | None, config: RunnableConfig
    ) -> tuple[str, dict[str, Any]]:
        response_config, default = _form(response_type, options)
        thread = (config.get("configurable") or {}).get("thread_id")
        asked_by = "an AI agent" + (f" (thread {thread})" if thread else "")
        footer = [_HINTS[response_type], "No answer before the deadline: the agent is told so."]
        text = render_question(question, asked_by=asked_by, footer=footer)
        kwargs: dict[str, Any] = {
            "tool_call_id": CALL_ID.get(),
            "response_type": response_type,
            "response_config": response_config,
            "default_response": default,
            "approve_on_timeout": False,
            # The agent's words: invisible characters and the product's marker shown as such.
            "summary": neutralise(reveal_invisible(" ".join(question.split())))[:160]
            or "A question from an AI agent",
        }
        if self.priority is not None:
            kwargs["priority"] = self.priority
        if self.timeout_seconds is not None:
            kwargs["timeout_seconds"] = self.timeout_seconds
        return text, kwargs

    def _finish(self, decision: Decision, options: list[str] | None) -> tuple[Any, dict[str, Any]]:
        if decision.outcome == "timed_out":
            raise ToolException("No one answered before the deadline (timed out): no answer.")
        if decision.outcome == "cancelled":
            raise ToolException("The question was cancelled before anyone answered: no answer.")
        if decision.value is None:
            raise ToolException(f"No usable answer: {decision.reason}")
        answer = _answer(decision, options)
        artifact = {"answer": answer, "decision": decision.model_dump(mode="json")}
        if CALL_ID.get() is not None and not isinstance(answer, str):
            # A ToolMessage's content is text (a list would read as content blocks): the
            # model gets JSON, the typed value stays in the artifact.
            return json.dumps(answer), artifact
        return answer, artifact

    def _run(
        self,
        question: str,
        response_type: str = "text",
        options: list[str] | None = None,
        *,
        config: RunnableConfig,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        note_started(CALL_ID.get())
        text, kwargs = self._review_kwargs(question, response_type, options, config)
        try:
            decision = self.keeper.review(text, **kwargs)
        except GraphInterrupt:
            note_suspended()
            raise
        return self._finish(decision, options)

    async def _arun(
        self,
        question: str,
        response_type: str = "text",
        options: list[str] | None = None,
        *,
        config: RunnableConfig,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        note_started(CALL_ID.get())
        text, kwargs = self._review_kwargs(question, response_type, options, config)
        try:
            decision = await self.keeper.areview(text, **kwargs)
        except GraphInterrupt:
            note_suspended()
            raise
        return self._finish(decision, options)


def ask_human_tool(
    keeper: Gatekeeper,
    *,
    name: str = "ask_human",
    description: str | None = None,
    priority: str | None = None,
    timeout_seconds: int | None = None,
) -> AskHumanTool:
    """A tool that asks a person ``question`` and returns the typed answer.

    Args:
        keeper: the Gatekeeper whose loop, ledger and defaults the questions use.
        name, description: what the model sees (defaults: ``ask_human`` and a description of
            the arguments).
        priority, timeout_seconds: for these requests (None: the keeper's defaults).
    """
    check_settings(keeper, priority, timeout_seconds)
    return AskHumanTool(
        name=name,
        description=description or _DESCRIPTION,
        keeper=keeper,
        priority=priority,
        timeout_seconds=timeout_seconds,
    )
