"""The bridge beyond one plain agent: nested as a node of a parent graph, ainvoke with the
async paths, agent-inbox's HumanInterrupt schema, gates of keeper.review in the same graph,
and the import error without the langchain extra."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from typing import Annotated, Any, TypedDict

import pytest
from bridge_agents import answer, calls, documented_agent, follow_up, script
from hitl_harness import Env
from langchain_core.messages import AnyMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import interrupt

USER = {"messages": [HumanMessage("Go.")]}


class Outer(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def test_a_nested_agent_is_found_and_resumed_through_its_parent(env: Env) -> None:
    effects: list[str] = []
    agent = documented_agent(
        script(
            calls(
                ("write_file", {"filename": "a.txt", "content": "x"}),
                ("execute_sql", {"query": "SELECT 1"}),
            )
        ),
        effects,
        None,
    )
    builder = StateGraph(Outer)
    builder.add_node("agent", agent)
    builder.add_edge(START, "agent")
    builder.add_edge("agent", END)
    parent = builder.compile(checkpointer=InMemorySaver())

    bridge = env.keeper.bridge(parent)
    assert {"write_file", "execute_sql", "read_data"} <= set(bridge.tools)
    env.plug(env.keeper.dispatcher(bridge.resumer))
    cfg: dict[str, Any] = {"configurable": {"thread_id": "nested"}}
    parent.invoke(USER, cfg)
    write, sql = bridge.submit(cfg)
    assert write.checkpoint_ns is not None and write.checkpoint_ns.startswith("agent:")
    assert "|HumanInTheLoopMiddleware.after_model:" in write.checkpoint_ns
    assert write.request_id is not None and sql.request_id is not None
    env.hitl.reviewer.respond(sql.request_id, "approve")
    # An edit of the nested agent's tool: validated against that tool's schema.
    answer(env, write, "edit", json.dumps({"filename": "z.txt", "content": "z"}))
    assert sorted(effects) == ["execute_sql SELECT 1", "write_file z.txt z"]
    state = parent.get_state(cfg)
    assert not state.next
    assert state.values["messages"][-1].content == "All done."


@pytest.mark.parametrize("mode", ["batched", "per_call"])
def test_ainvoke_asubmit_and_the_async_dispatcher(env: Env, mode: str) -> None:
    effects: list[str] = []
    agent = documented_agent(
        script(calls(("write_file", {"filename": "a.txt", "content": "x"}))),
        effects,
        InMemorySaver(),
        mode=mode,
    )
    bridge = env.keeper.bridge(agent)
    dispatcher = env.keeper.dispatcher(bridge.resumer)
    cfg: dict[str, Any] = {"configurable": {"thread_id": f"async-{mode}"}}

    loop_reads: list[str] = []
    read = env.ledger.get_by_request_id

    def watched(request_id: str) -> Any:
        if threading.current_thread() is threading.main_thread():
            loop_reads.append(request_id)  # asyncio.run runs the loop on this thread
        return read(request_id)

    env.ledger.get_by_request_id = watched  # type: ignore[method-assign]

    async def main() -> None:
        await agent.ainvoke(USER, cfg)
        (row,) = await bridge.asubmit(cfg)
        assert await bridge.asubmit(cfg) == [await asyncio.to_thread(env.ledger.get, row.key)]
        # Edit in two steps on the async path: the tap opens the follow-up (nothing is
        # delivered), the edited args deliver the final decision once.
        await asyncio.to_thread(env.hitl.reviewer.respond, row.request_id, "edit")
        assert await dispatcher.apoll_once() == []
        second = await asyncio.to_thread(follow_up, env, row)
        assert second is not None and second.request_id is not None
        edited = json.dumps({"filename": "a.txt", "content": "y"})
        await asyncio.to_thread(env.hitl.reviewer.respond, second.request_id, edited)
        delivered = await dispatcher.apoll_once()
        assert sorted(d.request_id for d in delivered) == sorted(
            [row.request_id, second.request_id]
        )
        assert await dispatcher.apoll_once() == []

    asyncio.run(main())
    assert loop_reads == []  # the resume's encode read its rows off the event loop
    assert effects == ["write_file a.txt y"]
    assert not agent.get_state(cfg).next
    assert len(env.requests()) == 2


class Inbox(TypedDict, total=False):
    response: dict[str, Any]
    done: str


def _inbox_graph(effects: list[str], **flags: bool) -> Any:
    """A graph asking in agent-inbox's HumanInterrupt schema, as agent-inbox's docs show."""

    def ask(state: Inbox) -> dict[str, Any]:
        request = {
            "action_request": {"action": "send_email", "args": {"to": "bob", "body": "hi"}},
            "config": {
                "allow_accept": True,
                "allow_edit": True,
                "allow_respond": True,
                "allow_ignore": True,
                **flags,
            },
            "description": "Send this email?",
        }
        response = interrupt([request])[0]
        if response["type"] == "accept":
            effects.append("send bob hi")
        elif response["type"] == "edit":
            effects.append(
                f"send {response['args']['args']['to']} {response['args']['args']['body']}"
            )
        return {"response": response}

    builder = StateGraph(Inbox)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)
    return builder.compile(checkpointer=InMemorySaver())


def test_agent_inbox_interrupts_are_answered_with_one_human_response(env: Env) -> None:
    cases = [
        (("approve", None), {"type": "accept", "args": None}, ["send bob hi"]),
        (
            ("edit", json.dumps({"to": "eve", "body": "yo"})),
            {"type": "edit", "args": {"action": "send_email", "args": {"to": "eve", "body": "yo"}}},
            ["send eve yo"],
        ),
        (("respond", "call him"), {"type": "response", "args": "call him"}, []),
        (("reject_with_reason", "no"), {"type": "ignore", "args": "no"}, []),
        (("reject", None), {"type": "ignore", "args": None}, []),
    ]
    for i, (changes, expected, expected_effects) in enumerate(cases):
        effects: list[str] = []
        graph = _inbox_graph(effects)
        bridge = env.keeper.bridge(graph)
        env.plug(env.keeper.dispatcher(bridge.resumer))
        cfg: dict[str, Any] = {"configurable": {"thread_id": f"inbox-{i}"}}
        graph.invoke({}, cfg)
        (row,) = bridge.submit(cfg)
        assert row.request_id is not None
        request = env.hitl.reviewer.get(row.request_id)
        # Boxed under its label, never the title: the description may quote the model.
        assert "it may quote the model):** ` Send this email? `" in request["request_text"]
        answer(env, row, *changes)
        assert graph.get_state(cfg).values["response"] == expected
        assert effects == expected_effects


def test_agent_inbox_timeout_is_an_ignore_saying_timed_out(env: Env) -> None:
    effects: list[str] = []
    graph = _inbox_graph(effects, allow_edit=False, allow_respond=False)
    bridge = env.keeper.bridge(graph)
    env.plug(env.keeper.dispatcher(bridge.resumer))
    cfg: dict[str, Any] = {"configurable": {"thread_id": "inbox-timeout"}}
    graph.invoke({}, cfg)
    (row,) = bridge.submit(cfg)
    assert row.request_id is not None
    assert env.hitl.reviewer.get(row.request_id)["response_type"] == "single_select"
    env.clock.advance(3601)
    env.tick()
    response = graph.get_state(cfg).values["response"]
    assert response["type"] == "ignore" and "timed out" in response["args"]
    assert effects == []


def test_keeper_review_gates_in_the_same_graph_still_resume(env: Env) -> None:
    """The dispatcher sends every graph row to bridge.resumer: gate rows get the gate's codec."""

    class S(TypedDict, total=False):
        outcome: str

    def gate(state: S) -> dict[str, Any]:
        return {"outcome": env.keeper.review("Deploy?").outcome}

    builder = StateGraph(S)
    builder.add_node("gate", gate)
    builder.add_edge(START, "gate")
    graph = builder.compile(checkpointer=InMemorySaver())
    bridge = env.keeper.bridge(graph)
    env.plug(env.keeper.dispatcher(bridge.resumer))
    cfg: dict[str, Any] = {"configurable": {"thread_id": "gate"}}
    graph.invoke({}, cfg)
    assert bridge.submit(cfg) == []  # not a middleware interrupt: the bridge leaves it alone
    env.hitl.reviewer.respond(env.only_request_id(), True)
    env.tick()
    assert graph.get_state(cfg).values == {"outcome": "approved"}


def test_submit_without_a_thread_id_names_the_field(env: Env) -> None:
    from hitl_agent import ConfigError

    bridge = env.keeper.bridge(documented_agent(script(), [], InMemorySaver()))
    with pytest.raises(ConfigError) as err:
        bridge.submit({"configurable": {}})
    assert err.value.field == "config.configurable.thread_id"
    with pytest.raises(ConfigError) as err:
        env.keeper.bridge()
    assert err.value.field == "agent"


def test_without_langchain_the_bridge_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['langchain'] = None\n"
        "try:\n"
        "    import hitl_agent.langchain._bridge\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'hitl-agent[langchain]'" in out.stdout
