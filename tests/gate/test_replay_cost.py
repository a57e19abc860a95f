"""What a replayed review costs (issue 12, item 4b): every resume re-runs the gate's node from
the top, so ``review()`` runs again there. It reads its ledger row once (the decision comes
from that row, never from the resume value) and does not validate the same spec again."""

from __future__ import annotations

from typing import Any, TypedDict

import pytest
from hitl_harness import Env, count_ledger_reads
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from hitl_agent import ConfigError
from hitl_agent.gate import ReviewSpec
from hitl_agent.langgraph import GraphResumer


class State(TypedDict, total=False):
    approved: bool
    reason: str


def _graph(env: Env, in_node: list[bool]) -> Any:
    def gate(state: State) -> State:
        in_node.append(True)
        try:
            decision = env.keeper.review("Refund $42 to order 1234?")
        finally:
            in_node.clear()
        return {"approved": decision.approved, "reason": decision.reason or ""}

    builder = StateGraph(State)
    builder.add_node("gate", gate)
    builder.add_edge(START, "gate")
    builder.add_edge("gate", END)
    return builder.compile(checkpointer=InMemorySaver())


@pytest.mark.parametrize("answer", [True, False])
def test_a_replayed_review_reads_its_ledger_row_once(
    env: Env, monkeypatch: pytest.MonkeyPatch, answer: bool
) -> None:
    in_node: list[bool] = []
    reads = count_ledger_reads(env, monkeypatch, in_node)
    graph = _graph(env, in_node)
    config = {"configurable": {"thread_id": f"replay-{answer}"}}
    graph.invoke({}, config)
    reads.clear()
    env.hitl.reviewer.respond(env.only_request_id(), answer)
    dispatcher = env.keeper.dispatcher(GraphResumer(graph))
    dispatcher.poll_once()
    state = graph.get_state(config)
    assert state.values["approved"] is answer and not state.next
    # Old: the row by key (ensure_request), then the same row again by request id (_trusted).
    assert reads == ["get"]


def test_the_same_arguments_build_the_same_spec_once() -> None:
    spec = ReviewSpec.build("Refund?", context={"order": 1, "tags": ["a"]}, priority="high")
    again = ReviewSpec.build("Refund?", context={"tags": ["a"], "order": 1}, priority="high")
    assert again is spec
    assert spec.spec_hash() == spec._hash() and spec.spec_hash() is spec.spec_hash()
    # Values that JSON (and a careless cache key) would confuse stay apart.
    others = [
        ReviewSpec.build("Refund?", context={"order": value, "tags": ["a"]}, priority="high")
        for value in (True, 1.0, "1")
    ]
    assert all(other is not spec for other in others)
    assert len({other.spec_hash() for other in [spec, *others]}) == 4
    # A tuple is another argument than a list: a separate build, with equal content.
    as_tuple = ReviewSpec.build("Refund?", context={"order": 1, "tags": ("a",)}, priority="high")
    assert as_tuple is not spec


def test_iterators_and_failures_are_never_cached() -> None:
    first = ReviewSpec.build("Pick?", response_type="boolean", approve_values=iter(["yes"]))
    second = ReviewSpec.build("Pick?", response_type="boolean", approve_values=iter(["yes"]))
    assert first.approve_values == second.approve_values == ("yes",)
    assert first is not second
    for _ in range(2):
        with pytest.raises(ConfigError):
            ReviewSpec.build("Pick?", response_type="single_select")


def test_large_arguments_are_built_every_time() -> None:
    # The cache holds small specs only: a huge context is never kept alive by it.
    big = {"rows": [{"id": i, "note": "x" * 100} for i in range(200)]}
    assert ReviewSpec.build("Refund?", context=big) is not ReviewSpec.build("Refund?", context=big)
    small = {"rows": [{"id": i, "note": "x" * 100} for i in range(20)]}
    assert ReviewSpec.build("Refund?", context=small) is ReviewSpec.build("Refund?", context=small)
