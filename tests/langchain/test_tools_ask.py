"""ask_human_tool: the model asks, a person answers, the tool result is the typed answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hitl_harness import Env
from langchain_core.messages import ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from tools_support import TIMEOUT, drive, one_turn_graph, settle


def _call(**args: Any) -> dict[str, Any]:
    return {"type": "tool_call", "id": "ask-1", "name": "ask_human", "args": args}


@pytest.mark.parametrize(
    ("args", "answer", "typed", "content"),
    [
        ({"question": "Customer name?"}, "Ada", "Ada", "Ada"),
        (
            {"question": "Plan?", "response_type": "single_select", "options": ["Basic", "Pro!"]},
            "option_2",
            "Pro!",
            "Pro!",
        ),
        (
            {"question": "Tags?", "response_type": "multi_select", "options": ["a", "b", "c"]},
            ["option_1", "option_3"],
            ["a", "c"],
            '["a", "c"]',
        ),
        ({"question": "How many?", "response_type": "number"}, 12, 12, "12"),
        ({"question": "Price?", "response_type": "number"}, 9.75, 9.75, "9.75"),
        ({"question": "Quality?", "response_type": "rating"}, 4, 4, "4"),
        ({"question": "Ship it?", "response_type": "boolean"}, True, True, "true"),
        ({"question": "Ship it?", "response_type": "boolean"}, False, False, "false"),
    ],
    ids=["text", "single", "multi", "int", "float", "rating", "yes", "no"],
)
def test_typed_answers(
    env: Env, args: dict[str, Any], answer: Any, typed: Any, content: str
) -> None:
    ask = env.keeper.ask_human_tool()
    # Without a tool call: the typed value itself.
    assert drive(env, lambda: ask.invoke(args), lambda r: answer) == typed
    # As a tool call: a ToolMessage whose content is the answer, the decision as artifact.
    message = drive(env, lambda: ask.invoke(_call(**args)), lambda r: answer)
    assert isinstance(message, ToolMessage) and message.status == "success"
    assert message.content == content
    assert message.artifact["decision"]["request_id"]
    assert message.artifact["answer"] == typed


def test_the_form_matches_the_type(env: Env) -> None:
    ask = env.keeper.ask_human_tool(priority="high")
    seen: list[Any] = []

    def reviewer(request: Any) -> Any:
        seen.append(request)
        return "option_1"

    drive(
        env,
        lambda: ask.invoke(
            {"question": "Q?", "response_type": "single_select", "options": ["x", "y"]}
        ),
        reviewer,
    )
    (request,) = seen
    assert request.response_type == "single_select" and request.priority == "high"
    assert [o["label"] for o in request.response_config["options"]] == ["x", "y"]
    assert request.request_text.startswith("**Question from an AI agent** (the agent's own words")


def test_no_answer_says_so(env: Env) -> None:
    ask = env.keeper.ask_human_tool()
    message = drive(env, lambda: ask.invoke(_call(question="Anyone?")), lambda r: TIMEOUT)
    assert message.status == "error" and "No one answered" in message.content


def test_bad_arguments_are_an_error_for_the_model(env: Env) -> None:
    ask = env.keeper.ask_human_tool()
    message = ask.invoke(_call(question="Pick", response_type="single_select"))
    assert message.status == "error" and "needs options" in message.content
    assert env.requests() == []


def test_async_and_durable(env: Env) -> None:
    ask = env.keeper.ask_human_tool()
    assert (
        drive(env, lambda: asyncio.run(ask.ainvoke({"question": "Async?"})), lambda r: "yes")
        == "yes"
    )
    graph = one_turn_graph(
        [ask], [_call(question="Which?", response_type="boolean")], InMemorySaver()
    )
    config = {"configurable": {"thread_id": "ask"}}
    graph.invoke({"messages": []}, config)
    state = settle(env, graph, config, lambda r: True)
    assert state.values["messages"][-1].content == "true"
