"""Every decision of a gated tool, end to end against the local server with a scripted reviewer:
blocking (sync and async, outside any graph) and durable (a ToolNode graph resumed by the
dispatcher)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from hitl_harness import Env
from langchain_core.messages import ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from tools_support import (
    CANCEL,
    TIMEOUT,
    drive,
    one_turn_graph,
    refund_tool,
    settle,
)

from hitl_agent.decision import Decision

CALL = {
    "type": "tool_call",
    "id": "call-1",
    "name": "refund",
    "args": {"order_id": "A-1", "amount": 250},
}

# (name, answers by response type, expected effects, result check)
CASES: list[tuple[str, dict[str, Any], list[tuple[str, int]], Callable[[str, str], bool]]] = [
    (
        "approve",
        {"single_select": "approve"},
        [("A-1", 250)],
        lambda text, status: text == "refunded 250 on A-1" and status == "success",
    ),
    (
        "reject",
        {"single_select": "reject"},
        [],
        lambda text, status: "rejected" in text and "No reason" in text and status == "error",
    ),
    (
        "reject_with_reason",
        {"single_select": "reject_with_reason", "text": "Order was never paid"},
        [],
        lambda text, status: (
            "rejected" in text and "Reason: Order was never paid" in text and status == "error"
        ),
    ),
    (
        "edit",
        {
            "single_select": "edit",
            "editable_text": {"revised_text": "order_id: A-1\namount: 90", "was_edited": True},
        },
        [("A-1", 90)],
        lambda text, status: text == "refunded 90 on A-1" and status == "success",
    ),
    (
        "edit_invalid",
        {
            "single_select": "edit",
            "editable_text": {"revised_text": "order_id: A-1\namount: ninety", "was_edited": True},
        },
        [],
        lambda text, status: "invalid" in text and "`amount`" in text and status == "error",
    ),
    (
        "edit_unknown_field",
        {
            "single_select": "edit",
            "editable_text": {"revised_text": "order_id: A-1\namont: 90", "was_edited": True},
        },
        [],
        lambda text, status: "`amont`" in text and status == "error",
    ),
    (
        "respond",
        {"single_select": "respond", "text": "Offer a voucher instead."},
        [],
        lambda text, status: text == "Offer a voucher instead." and status == "success",
    ),
    (
        "timeout",
        {"single_select": TIMEOUT},
        [],
        lambda text, status: "timed out" in text and "reject" not in text and status == "error",
    ),
    (
        "cancel",
        {"single_select": CANCEL},
        [],
        lambda text, status: "cancelled" in text and "reject" not in text and status == "error",
    ),
]
IDS = [case[0] for case in CASES]


def _wrapped(env: Env, effects: list[tuple[str, int]]) -> Any:
    return env.keeper.require_approval(refund_tool(effects), allow_edit=True, allow_respond=True)


def _by_type(answers: dict[str, Any]) -> Callable[[Any], Any]:
    return lambda request: answers[request.response_type]


@pytest.mark.parametrize(("name", "answers", "effects_after", "check"), CASES, ids=IDS)
def test_blocking_sync(
    env: Env, name: str, answers: dict[str, Any], effects_after: Any, check: Any
) -> None:
    effects: list[tuple[str, int]] = []
    safe = _wrapped(env, effects)
    message = drive(env, lambda: safe.invoke(CALL), _by_type(answers))
    assert isinstance(message, ToolMessage) and message.tool_call_id == "call-1"
    assert check(message.content, message.status), (message.content, message.status)
    assert effects == effects_after
    if message.artifact is not None:  # not-run results carry the typed decision
        decision = (
            Decision.model_validate(message.artifact["decision"])
            if message.artifact["decision"]
            else None
        )
        if name == "respond":
            assert decision is not None and decision.action is not None
            assert decision.action.type == "respond"
        if name == "reject_with_reason":
            assert decision is not None and decision.action is not None
            assert (
                decision.action.type == "reject"
                and decision.action.message == "Order was never paid"
            )


@pytest.mark.parametrize(
    ("name", "answers", "effects_after", "check"),
    [c for c in CASES if c[0] in ("approve", "reject_with_reason", "edit", "respond", "timeout")],
    ids=["approve", "reject_with_reason", "edit", "respond", "timeout"],
)
def test_blocking_async(
    env: Env, name: str, answers: dict[str, Any], effects_after: Any, check: Any
) -> None:
    effects: list[tuple[str, int]] = []
    safe = _wrapped(env, effects)
    message = drive(env, lambda: asyncio.run(safe.ainvoke(CALL)), _by_type(answers))
    assert check(message.content, message.status), (message.content, message.status)
    assert effects == effects_after


def test_blocking_without_a_tool_call_returns_the_text(env: Env) -> None:
    effects: list[tuple[str, int]] = []
    safe = _wrapped(env, effects)
    result = drive(
        env,
        lambda: safe.invoke({"order_id": "A-1", "amount": 5}),
        _by_type({"single_select": "reject"}),
    )
    assert isinstance(result, str) and result.startswith("Not run: a reviewer rejected")
    approved = drive(
        env,
        lambda: safe.invoke({"order_id": "A-2", "amount": 6}),
        _by_type({"single_select": "approve"}),
    )
    assert approved == "refunded 6 on A-2" and effects == [("A-2", 6)]


@pytest.mark.parametrize(("name", "answers", "effects_after", "check"), CASES, ids=IDS)
def test_durable_tool_node(
    env: Env, name: str, answers: dict[str, Any], effects_after: Any, check: Any
) -> None:
    effects: list[tuple[str, int]] = []
    graph = one_turn_graph([_wrapped(env, effects)], [CALL], InMemorySaver())
    config = {"configurable": {"thread_id": f"t-{name}"}}
    graph.invoke({"messages": []}, config)
    assert graph.get_state(config).next == ("tools",)  # suspended, nothing ran
    assert effects == []
    state = settle(env, graph, config, _by_type(answers))
    (message,) = state.values["messages"][1:]
    assert check(message.content, message.status), (message.content, message.status)
    assert effects == effects_after


def test_durable_async_graph(env: Env) -> None:
    effects: list[tuple[str, int]] = []
    graph = one_turn_graph([_wrapped(env, effects)], [CALL], InMemorySaver())
    config = {"configurable": {"thread_id": "t-async"}}
    answers = {
        "single_select": "edit",
        "editable_text": {"revised_text": "order_id: A-1\namount: 42", "was_edited": True},
    }

    async def main() -> Any:
        from hitl_agent.langgraph import GraphResumer

        await graph.ainvoke({"messages": []}, config)
        dispatcher = env.keeper.dispatcher(GraphResumer(graph))
        for _ in range(4):
            for request in await asyncio.to_thread(env.requests):
                if request.status == "pending":
                    await asyncio.to_thread(
                        env.hitl.reviewer.respond, request.id, answers[request.response_type]
                    )
            await dispatcher.apoll_once()
            state = await graph.aget_state(config)
            if not state.next:
                return state
        raise AssertionError("still waiting")

    state = asyncio.run(main())
    assert [m.content for m in state.values["messages"][1:]] == ["refunded 42 on A-1"]
    assert effects == [("A-1", 42)]
