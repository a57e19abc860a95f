"""LangChain v1 conventions through the wrapper: injected arguments (``ToolRuntime``,
``InjectedState``, ``InjectedStore``, ``InjectedToolCallId``) reach the tool and never the
reviewer; tags, metadata and ``response_format`` are the tool's; one tool run per call in
``astream_events``; an async-only tool called synchronously fails before anyone is paged."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import pytest
from hitl_harness import Env
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import InjectedToolCallId, StructuredTool, ToolException, tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.prebuilt import InjectedState, InjectedStore, ToolRuntime
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore
from pydantic import BaseModel
from tools_support import ScriptedModel, call_of, drive, one_turn_graph, settle

from hitl_agent.gate import args_hash

APPROVE = {("r1", "single_select"): "approve", ("r2", "single_select"): "approve"}


def _reviewed_hash(env: Env, request: Any) -> str:
    row = env.ledger.get_by_request_id(request.id)
    assert row is not None
    return str(row.payload["args_hash"])


# -- 1. injected arguments ---------------------------------------------------------------------


def test_tool_runtime_reaches_the_tool_through_create_agent(env: Env) -> None:
    agents = pytest.importorskip("langchain.agents", reason="the langchain extra is not installed")
    from langchain import tools

    assert tools.ToolRuntime is ToolRuntime  # LangChain v1's name for langgraph's class
    seen: list[tuple[str | None, int]] = []

    @tool
    def refund(order_id: str, amount: int, runtime: ToolRuntime) -> str:
        """Refund an order."""
        seen.append((runtime.tool_call_id, len(runtime.state["messages"])))
        return f"refunded {amount} on {order_id} in {runtime.config['configurable']['thread_id']}"

    safe = env.keeper.require_approval(refund)
    assert convert_to_openai_tool(safe) == convert_to_openai_tool(refund)  # no runtime in it
    calls = [
        {"name": "refund", "args": {"order_id": "A-1", "amount": 120}, "id": "r1"},
        {"name": "refund", "args": {"order_id": "B-2", "amount": 80}, "id": "r2"},
    ]
    model = ScriptedModel(messages=iter([AIMessage("", tool_calls=calls), AIMessage("Done.")]))
    agent = agents.create_agent(model, tools=[safe], checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "rt-1"}}
    agent.invoke({"messages": [HumanMessage("Refund both.")]}, config)

    requests = sorted(env.requests(), key=lambda r: str(call_of(r)))
    assert [call_of(r) for r in requests] == ["r1", "r2"] and seen == []
    first = requests[0].request_text or ""
    assert "runtime" not in first.lower() and "ToolRuntime" not in first
    assert "call 1 of 2 in this turn" in first  # the position came from the tool's own runtime
    assert _reviewed_hash(env, requests[0]) == args_hash(
        "refund", {"order_id": "A-1", "amount": 120}
    )

    state = settle(env, agent, config, APPROVE)
    results = {m.tool_call_id: m for m in state.values["messages"] if isinstance(m, ToolMessage)}
    assert results["r1"].content == "refunded 120 on A-1 in rt-1"
    assert results["r2"].status == "success"
    assert sorted(seen) == [("r1", 2), ("r2", 2)]  # once each, with the agent's state
    assert state.values["messages"][-1].content == "Done."


class RefundArgs(BaseModel):
    """A plain model: no arbitrary types allowed, no injected fields."""

    order_id: str
    amount: int


def test_injected_state_store_and_call_id_pass_through_a_tool_node(env: Env) -> None:
    """Injected arguments in the function only (a custom ``args_schema`` leaves them out),
    as ToolNode injects them into the bare tool."""
    seen: list[dict[str, Any]] = []

    def refund(
        order_id: str,
        amount: int,
        messages: Annotated[list[Any], InjectedState("messages")],
        store: Annotated[BaseStore, InjectedStore()],
        tool_call_id: Annotated[str, InjectedToolCallId],
    ) -> str:
        seen.append({"call": tool_call_id, "messages": len(messages), "store": store})
        return f"refunded {amount} on {order_id}"

    bare = StructuredTool.from_function(
        refund, name="refund", description="Refund an order.", args_schema=RefundArgs
    )
    safe = env.keeper.require_approval(bare)
    assert convert_to_openai_tool(safe) == convert_to_openai_tool(bare)
    store = InMemoryStore()
    calls = [{"name": "refund", "args": {"order_id": "A-1", "amount": 120}, "id": "r1"}]
    graph = one_turn_graph([safe], calls, InMemorySaver(), store=store)
    config = {"configurable": {"thread_id": "inj-1"}}
    graph.invoke({"messages": []}, config)

    (request,) = env.requests()
    text = request.request_text or ""
    assert "store" not in text and "messages" not in text and "tool_call_id" not in text
    assert _reviewed_hash(env, request) == args_hash("refund", calls[0]["args"])
    state = settle(env, graph, config, APPROVE)
    assert state.values["messages"][-1].content == "refunded 120 on A-1"
    assert seen == [{"call": "r1", "messages": 1, "store": store}]


# -- 2. tags, metadata, response_format ----------------------------------------------------


def test_tags_metadata_and_response_format_are_the_tools(env: Env) -> None:
    @tool(response_format="content_and_artifact")
    def export(order_id: str) -> tuple[str, dict[str, Any]]:
        """Export an order."""
        return f"exported {order_id}", {"rows": [order_id]}

    export.tags = ["billing"]
    export.metadata = {"team": "ops"}
    safe = env.keeper.require_approval(export)
    assert safe.tags == ["billing"] and safe.metadata == {"team": "ops"}
    assert safe.response_format == "content_and_artifact"

    calls = [
        {"name": "export", "args": {"order_id": "A-1"}, "id": "r1"},
        {"name": "export", "args": {"order_id": "B-2"}, "id": "r2"},
    ]
    graph = one_turn_graph([safe], calls, InMemorySaver())
    config = {"configurable": {"thread_id": "art-1"}}
    graph.invoke({"messages": []}, config)
    script = {("r1", "single_select"): "approve", ("r2", "single_select"): "reject"}
    state = settle(env, graph, config, script)
    results = {m.tool_call_id: m for m in state.values["messages"][1:]}
    assert results["r1"].content == "exported A-1" and results["r1"].artifact == {"rows": ["A-1"]}
    assert results["r2"].status == "error" and "rejected" in str(results["r2"].content)
    assert results["r2"].artifact["decision"]["action"]["type"] == "reject"

    # Outside a graph, as for the bare tool: a plain dict input gives the content only.
    assert drive(env, lambda: safe.invoke({"order_id": "C-3"}), lambda r: "approve") == (
        "exported C-3"
    )


def test_the_tools_error_handler_applies_after_approval(env: Env) -> None:
    @tool
    def charge(order_id: str) -> str:
        """Charge an order."""
        raise ToolException(f"card declined for {order_id}")

    charge.handle_tool_error = True
    safe = env.keeper.require_approval(charge)
    call = {"type": "tool_call", "id": "ch-1", "name": "charge", "args": {"order_id": "A-1"}}
    message = drive(env, lambda: safe.invoke(call), lambda r: "approve")
    assert message.status == "error" and message.content == "card declined for A-1"


# -- 3. one tool run per call ----------------------------------------------------------------


class EventsGraph:
    """A graph whose ``ainvoke`` runs through ``astream_events`` (v2), keeping the events:
    the dispatcher's resume shows up in them."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.events: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.graph, name)

    async def ainvoke(self, value: Any, config: Any = None, **kwargs: Any) -> None:
        async for event in self.graph.astream_events(value, config, version="v2", **kwargs):
            self.events.append(dict(event))


def _tool_events(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["event"], e["name"]) for e in events if e["event"].startswith("on_tool")]


def _refund_with_a_child_run(effects: list[str]) -> Any:
    lookup = RunnableLambda(lambda order_id: f"order {order_id}", name="lookup")

    @tool
    def refund(order_id: str, amount: int) -> str:
        """Refund an order."""
        effects.append(lookup.invoke(order_id))
        return f"refunded {amount} on {order_id}"

    refund.tags = ["money"]
    return refund


def test_astream_events_one_tool_start_and_end_per_call(env: Env) -> None:
    from hitl_agent.langgraph import GraphResumer

    effects: list[str] = []
    safe = env.keeper.require_approval(_refund_with_a_child_run(effects))
    calls = [{"name": "refund", "args": {"order_id": "A-1", "amount": 120}, "id": "r1"}]
    graph = EventsGraph(one_turn_graph([safe], calls, InMemorySaver()))
    config = {"configurable": {"thread_id": "ev-1"}}

    async def main() -> list[dict[str, Any]]:
        await graph.ainvoke({"messages": []}, config)  # suspended in the review
        # One tool run, ended by the GraphInterrupt that suspends it.
        assert _tool_events(graph.events) == [
            ("on_tool_start", "refund"),
            ("on_tool_error", "refund"),
        ]
        graph.events.clear()
        (request,) = await asyncio.to_thread(env.requests)
        await asyncio.to_thread(env.hitl.reviewer.respond, request.id, "approve")
        await env.keeper.dispatcher(GraphResumer(graph)).apoll_once()
        return graph.events

    events = asyncio.run(main())
    assert _tool_events(events) == [("on_tool_start", "refund"), ("on_tool_end", "refund")]
    start, end = (e for e in events if e["event"] in ("on_tool_start", "on_tool_end"))
    assert start["run_id"] == end["run_id"] and "money" in start["tags"]
    assert start["data"]["input"] == {"order_id": "A-1", "amount": 120}
    assert end["data"]["output"].content == "refunded 120 on A-1"
    # The tool's own child run nests under the one tool run.
    (child,) = (e for e in events if e["event"] == "on_chain_start" and e["name"] == "lookup")
    assert start["run_id"] in child["parent_ids"]
    assert effects == ["order A-1"]


def test_astream_events_of_the_tool_itself(env: Env) -> None:
    effects: list[str] = []
    safe = env.keeper.require_approval(
        _refund_with_a_child_run(effects), when=lambda args: args["amount"] > 100
    )

    async def events_of(call: dict[str, Any]) -> list[tuple[str, str]]:
        return _tool_events([e async for e in safe.astream_events(call, version="v2")])

    one_run = [("on_tool_start", "refund"), ("on_tool_end", "refund")]
    for amount, answer in [(500, "approve"), (600, "reject"), (5, None)]:
        call = {
            "type": "tool_call",
            "id": f"ev-{amount}",
            "name": "refund",
            "args": {"order_id": "A-1", "amount": amount},
        }
        assert drive(env, lambda c=call: asyncio.run(events_of(c)), lambda r, a=answer: a) == (
            one_run
        ), amount
    assert effects == ["order A-1", "order A-1"]  # approved and policy-skipped


# -- 4. async-only tools --------------------------------------------------------------------


def _async_only(effects: list[str]) -> Any:
    async def refund(order_id: str) -> str:
        effects.append(order_id)
        return f"refunded {order_id}"

    return StructuredTool.from_function(
        coroutine=refund, name="refund", description="Refund an order."
    )


def test_an_async_only_tool_called_sync_fails_before_a_review(env: Env) -> None:
    effects: list[str] = []
    safe = env.keeper.require_approval(_async_only(effects))
    call = {"type": "tool_call", "id": "a-1", "name": "refund", "args": {"order_id": "A-1"}}
    with pytest.raises(NotImplementedError, match=r"async-only.*no reviewer was asked"):
        drive(env, lambda: safe.invoke(call), lambda r: "approve")
    graph = one_turn_graph([safe], [{**call, "id": "a-2"}], InMemorySaver())
    with pytest.raises(NotImplementedError, match="async-only"):
        drive(
            env,
            lambda: graph.invoke({"messages": []}, {"configurable": {"thread_id": "a"}}),
            lambda r: "approve",
        )
    assert env.requests() == [] and env.ledger.list_open() == [] and effects == []

    # Called asynchronously it is reviewed and runs.
    result = drive(env, lambda: asyncio.run(safe.ainvoke(call)), lambda r: "approve")
    assert result.content == "refunded A-1" and effects == ["A-1"]
    assert len(env.requests()) == 1
