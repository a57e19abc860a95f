"""A graph suspended by a review and resumed by the dispatcher, over the local server."""

from __future__ import annotations

from typing import Any

from hitl_harness import Env, refund_graph, sqlite_saver

from hitl_agent.decision import Decision
from hitl_agent.langgraph import PAYLOAD_KEY, GraphResumer


def build(env: Env, saver: Any, effects: list[str], runs: list[str]) -> Any:
    return refund_graph(env, saver, effects, runs, priority="high", context={"order": 1234})


def test_webhook_resumes_the_thread_and_the_action_runs_once(env: Env) -> None:
    conn, saver = sqlite_saver(env.tmp_path / "cp.db")
    effects: list[str] = []
    runs: list[str] = []
    graph = build(env, saver, effects, runs)
    config = {"configurable": {"thread_id": "t1"}}
    try:
        result = graph.invoke({"amount": 250}, config)
        (interrupt,) = result["__interrupt__"]
        payload = interrupt.value[PAYLOAD_KEY]
        request_id = env.only_request_id()
        assert payload["request_id"] == request_id
        assert payload["summary"].startswith("Refund $250")
        assert payload["priority"] == "high"

        dispatcher = env.plug(env.keeper.dispatcher(GraphResumer(graph)))
        env.hitl.reviewer.respond(request_id, "approve")
        env.tick()  # the server POSTs the callback into dispatcher.asgi_app

        assert effects == ["refund 250"]
        state = graph.get_state(config)
        assert state.values["done"] is True and not state.next
        decision = Decision.model_validate(state.values["decision"])
        assert decision.approved and decision.outcome == "approved"
        assert env.ledger.get_by_request_id(request_id).state == "resumed"  # type: ignore[union-attr]
        assert dispatcher.receiver.accepted == 1
        # One request despite the node running twice (park + resume).
        assert runs == ["gate", "gate"]
        assert len(env.requests()) == 1
        # A later sweep and a duplicate resolve change nothing.
        assert dispatcher.poll_once() == []
        assert dispatcher.resolve(request_id) == []
        assert effects == ["refund 250"]
    finally:
        conn.close()


def test_poll_only_resumes_and_rejection_runs_nothing(env: Env) -> None:
    conn, saver = sqlite_saver(env.tmp_path / "cp.db")
    effects: list[str] = []
    graph = build(env, saver, effects, [])
    try:
        graph.invoke({"amount": 5}, {"configurable": {"thread_id": "a"}})
        graph.invoke({"amount": 7}, {"configurable": {"thread_id": "b"}})
        dispatcher = env.keeper.dispatcher(GraphResumer(graph))
        ids = {r.context["order"] and r.id for r in env.requests()}
        assert len(ids) == 2
        assert dispatcher.poll_once() == []  # nothing answered yet
        by_thread = {
            env.ledger.get_by_request_id(rid).thread_id: rid  # type: ignore[union-attr]
            for rid in ids
        }
        env.hitl.reviewer.respond(by_thread["a"], "approve")
        env.hitl.reviewer.respond(by_thread["b"], "reject")
        resolved = dispatcher.poll_once()
        assert sorted(d.outcome for d in resolved) == ["approved", "rejected"]
        assert effects == ["refund 5"]
        rejected = graph.get_state({"configurable": {"thread_id": "b"}}).values["decision"]
        assert rejected["outcome"] == "rejected" and rejected["approved"] is False
    finally:
        conn.close()
