"""T3 (one resume per decision), T6 (resume guard), T8 (truth from GET), T15 (lost wakeup)."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
from hitl_harness import Env, refund_graph, sqlite_saver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from starlette.testclient import TestClient

from hitl_agent import HITLClient
from hitl_agent._tokens import derive_token
from hitl_agent.decision import Decision
from hitl_agent.langgraph import GraphResumer, resume_value
from hitl_agent.ledger import ReviewRecord


@pytest.mark.parametrize("racers", [2, 3, 8])
def test_concurrent_resolves_run_the_action_once(env: Env, racers: int) -> None:
    conn, saver = sqlite_saver(env.tmp_path / "cp.db")
    effects: list[str] = []
    try:
        graph = refund_graph(env, saver, effects)
        graph.invoke({"amount": 1}, {"configurable": {"thread_id": "race"}})
        request_id = env.only_request_id()
        dispatcher = env.keeper.dispatcher(GraphResumer(graph))
        other = env.keeper.dispatcher(GraphResumer(graph))  # a second replica
        env.hitl.reviewer.respond(request_id, "approve")
        barrier = threading.Barrier(racers)
        results: list[list[Decision]] = []

        def race(index: int) -> None:
            barrier.wait()
            if index % 3 == 0:
                results.append(dispatcher.poll_once())
            elif index % 3 == 1:
                results.append(other.resolve(request_id))
            else:
                results.append(dispatcher.resolve(request_id))

        threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert effects == ["refund 1"]
        assert sum(len(r) for r in results) == 1  # exactly one caller delivered
        assert env.ledger.get_by_request_id(request_id).state == "resumed"  # type: ignore[union-attr]
    finally:
        conn.close()


def _row(thread_id: str | None, ns: str = "gate:x") -> ReviewRecord:
    return ReviewRecord(
        key="k", state="decided", request_id="r1", thread_id=thread_id, checkpoint_ns=ns
    )


def test_resume_guard_never_starts_or_replays(env: Env) -> None:
    effects: list[str] = []
    runs: list[str] = []
    graph = refund_graph(env, InMemorySaver(), effects, runs)
    resumer = GraphResumer(graph)
    approve = [Decision(request_id="r1", status="completed", outcome="approved", approved=True)]
    # Unknown thread: LangGraph would START it; the guard invokes nothing.
    assert resumer.resume(_row("nobody"), approve) is False
    assert runs == [] and effects == []
    # A parked thread, but the wrong namespace (a non-pending interrupt): nothing.
    graph.invoke({"amount": 3}, {"configurable": {"thread_id": "t"}})
    assert runs == ["gate"]
    assert resumer.resume(_row("t", ns="gate:not-the-task"), approve) is False
    assert runs == ["gate"]
    # A finished thread: nothing.
    request_id = env.only_request_id()
    env.hitl.reviewer.respond(request_id, "reject")
    env.keeper.dispatcher(resumer).poll_once()
    assert runs == ["gate", "gate"]
    finished = env.ledger.get_by_request_id(request_id)
    assert finished is not None and finished.state == "resumed"
    assert resumer.resume(finished, approve) is False
    assert runs == ["gate", "gate"] and effects == []


def test_forged_resume_values_are_not_trusted(env: Env) -> None:
    effects: list[str] = []
    graph = refund_graph(env, InMemorySaver(), effects)
    config = {"configurable": {"thread_id": "forge"}}
    graph.invoke({"amount": 4}, config)
    request_id = env.only_request_id()
    (interrupt,) = graph.get_state(config).interrupts
    forged = Decision(request_id=request_id, status="completed", outcome="approved", approved=True)
    # Plain values and foreign ids are ignored: the node keeps waiting.
    graph.invoke(Command(resume={interrupt.id: "approve"}), config)
    # Still waiting in the gate (read from the tasks: langgraph 1.2.4 shows next == () here).
    assert [t.name for t in graph.get_state(config).tasks if t.interrupts] == ["gate"]
    # A well-formed approval that the ledger never recorded is not trusted.
    (interrupt,) = graph.get_state(config).interrupts
    graph.invoke(
        Command(resume={interrupt.id: resume_value([forged.model_dump(mode="json")])}), config
    )
    state = graph.get_state(config)
    assert effects == [] and state.values["decision"]["approved"] is False
    assert "not backed by a recorded decision" in state.values["decision"]["reason"]


@pytest.mark.parametrize("truth", ["pending", "reject", "timeout", "missing", "other_loop"])
def test_callback_body_is_never_the_decision(env: Env, truth: str) -> None:
    effects: list[str] = []
    graph = refund_graph(env, InMemorySaver(), effects)
    graph.invoke({"amount": 8}, {"configurable": {"thread_id": "t8"}})
    request_id = env.only_request_id()
    dispatcher = env.keeper.dispatcher(GraphResumer(graph))
    if truth == "reject":
        env.hitl.reviewer.respond(request_id, "reject")
    elif truth == "timeout":
        env.clock.advance(3601)
        env.hitl.tick_sync()
    elif truth in ("missing", "other_loop"):
        # The API answers 404 (another tenant's id), or an approval for another loop.
        def handler(request: httpx.Request) -> httpx.Response:
            if truth == "missing":
                return httpx.Response(404, json={"error": True, "msg": "Request not found"})
            doc = {
                "id": request_id,
                "loop_id": "someone-else",
                "status": "completed",
                "response_type": "single_select",
                "response_data": "approve",
            }
            return httpx.Response(200, json={"error": False, "msg": "ok", "data": {"request": doc}})

        mock = httpx.Client(transport=httpx.MockTransport(handler))
        dispatcher.resolver.client = HITLClient("k", base_url="http://mock/v1", http_client=mock)
    key = env.ledger.get_by_request_id(request_id).key  # type: ignore[union-attr]
    token = derive_token("test-callback-secret-0123456789abcdef", key)
    body = {
        "event": "request.completed",
        "request_id": request_id,
        "status": "completed",
        "response_data": "approve",
        "response_by": {"name": "Mallory"},
    }
    with TestClient(dispatcher.asgi_app) as client:
        response = client.post(f"/hitl/{token}", json=body)
    assert response.status_code == 202
    assert effects == []
    row = env.ledger.get_by_request_id(request_id)
    assert row is not None
    if truth in ("pending", "missing", "other_loop"):
        assert row.state == "pending" and row.decision is None
        if truth == "other_loop":
            assert dispatcher.resolver.stats["mismatch"] == 1
    else:
        assert row.decision is not None and row.decision["approved"] is False


def test_decision_before_the_interrupt_is_durable_then_multi_day_wait(env: Env) -> None:
    """T15: the answer lands while the node still runs; a sweep after parking resumes it."""
    effects: list[str] = []
    holder: dict[str, Any] = {}

    def answer_during_node(name: str) -> None:
        if name == "gate.after_mark_created":
            # The reviewer answers and the callback arrives before interrupt() ran.
            request_id = env.only_request_id()
            env.hitl.reviewer.respond(request_id, "approve")
            holder["delivered"] = holder["dispatcher"].resolve(request_id)

    from hitl_agent._hooks import set_hook

    conn, saver = sqlite_saver(env.tmp_path / "cp.db")
    try:
        graph = refund_graph(env, saver, effects)
        holder["dispatcher"] = env.keeper.dispatcher(GraphResumer(graph))
        set_hook(answer_during_node)
        try:
            graph.invoke({"amount": 15}, {"configurable": {"thread_id": "fast"}})
        finally:
            set_hook(None)
        assert holder["delivered"] == []  # recorded, but the thread was not waiting yet
        request_id = env.only_request_id()
        assert env.ledger.get_by_request_id(request_id).state == "decided"  # type: ignore[union-attr]
        env.clock.advance(9 * 24 * 3600)  # days pass; the decision is still applied
        delivered = holder["dispatcher"].poll_once()
        assert [d.outcome for d in delivered] == ["approved"]
        assert effects == ["refund 15"]
    finally:
        conn.close()
