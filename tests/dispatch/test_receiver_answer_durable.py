"""An answer's callback is acknowledged only once its truth is recorded (issue 20, found by
the chaos run in callbacks-only mode): a worker killed between a 202 and the GET lost the
answer for good, since nothing polls. Now a first "finished" callback whose GET fails gets 503
and the sender retries (HITL.sh redelivers a failed callback)."""

from __future__ import annotations

from typing import Any

import httpx2
from hitl_harness import SECRET, Env, refund_graph, switched_client
from langgraph.checkpoint.memory import InMemorySaver
from starlette.testclient import TestClient

from hitl_agent._tokens import derive_token
from hitl_agent.dispatch import Dispatcher
from hitl_agent.langgraph import GraphResumer


def _refused(request: httpx2.Request) -> httpx2.Response:
    raise httpx2.ConnectError("connection refused", request=request)


def test_an_answers_callback_is_acknowledged_only_once_its_truth_is_recorded(env: Env) -> None:
    effects: list[str] = []
    graph = refund_graph(env, InMemorySaver(), effects)
    graph.invoke({"amount": 5}, {"configurable": {"thread_id": "durable"}})
    (row,) = env.ledger.list_open()
    assert row.request_id is not None
    env.hitl.reviewer.respond(row.request_id, "approve")
    token = derive_token(SECRET, row.key)
    body: dict[str, Any] = {"request_id": row.request_id, "status": "completed"}
    with switched_client(env) as (switch, client):
        dispatcher = Dispatcher(
            ledger=env.ledger,
            client=client,
            resumer=GraphResumer(graph),
            loop_id=env.hitl.loop_id,
            clock=env.clock,
        )
        with TestClient(dispatcher.asgi_app) as http:
            switch.fault = _refused  # the GET cannot be made: do not acknowledge
            first = http.post(f"/hitl/{token}", json=body)
            assert first.status_code == 503, first.text
            assert env.ledger.get(row.key).state == "pending"  # type: ignore[union-attr]
            switch.fault = None  # the sender retries
            again = http.post(f"/hitl/{token}", json=body)
            assert again.status_code == 202, again.text
    assert env.ledger.get(row.key).state == "resumed"  # type: ignore[union-attr]
    assert effects == ["refund 5"]
