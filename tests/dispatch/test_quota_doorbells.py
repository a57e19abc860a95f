"""Issue 8 H3: authenticated doorbells for a pending request cannot drain the call budget.

On the old receiver every valid POST cost a GET: 100 of them took the budget from 70 to 0,
and the reviewer's later approval could be fetched by neither the callback nor a sweep.
"""

from __future__ import annotations

from typing import Any, cast

import httpx
from hitl_harness import SECRET, Env, refund_graph
from langgraph.checkpoint.memory import InMemorySaver
from starlette.testclient import TestClient

from hitl_agent import HITLClient, RetryPolicy
from hitl_agent._tokens import derive_token
from hitl_agent.dispatch import CallBudget, Dispatcher
from hitl_agent.langgraph import GraphResumer

THREAD = {"configurable": {"thread_id": "h3"}}


def _parked(env: Env, effects: list[str], budget: CallBudget) -> tuple[Any, Dispatcher, str, str]:
    graph = refund_graph(env, InMemorySaver(), effects)
    graph.invoke({"amount": 9}, THREAD)
    request_id = env.only_request_id()
    row = env.ledger.get_by_request_id(request_id)
    assert row is not None
    dispatcher = env.plug(env.keeper.dispatcher(GraphResumer(graph)))
    dispatcher.resolver.budget = budget
    return graph, dispatcher, request_id, derive_token(SECRET, row.key)


class _Counting:
    """The local server's TestClient, noting each API call (HITLClient needs only send)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def send(self, request: httpx.Request, **kwargs: Any) -> Any:
        self.calls.append((request.method, request.url.path))
        return self.inner.send(request, **kwargs)


def _counting(env: Env, dispatcher: Dispatcher) -> _Counting:
    counting = _Counting(env.hitl.http)
    dispatcher.resolver.client = HITLClient(
        env.hitl.api_key,
        base_url=env.hitl.base_url,
        http_client=cast(httpx.Client, counting),
        retry=RetryPolicy(max_retries=0),
    )
    return counting


def _ring(dispatcher: Dispatcher, token: str, request_id: str, times: int) -> None:
    with TestClient(dispatcher.asgi_app) as client:
        for _ in range(times):
            response = client.post(f"/hitl/{token}", json={"request_id": request_id})
            assert response.status_code == 202


def test_a_hundred_doorbells_cost_one_get_and_the_approval_still_lands(env: Env) -> None:
    effects: list[str] = []
    budget = CallBudget(70, clock=env.clock)
    graph, dispatcher, request_id, token = _parked(env, effects, budget)
    counting = _counting(env, dispatcher)
    gets = f"/v1/api/requests/{request_id}"

    _ring(dispatcher, token, request_id, 100)
    assert counting.calls.count(("GET", gets)) == 1
    assert budget.remaining() == 69  # was 0 on the old receiver

    # At most one GET per request per gap, and the gap doubles while it stays pending.
    for advance, expected in ((30, 1), (31, 2), (100, 2), (21, 3)):
        env.clock.advance(advance)
        _ring(dispatcher, token, request_id, 20)
        assert counting.calls.count(("GET", gets)) == expected, advance

    # The reviewer approves; the server's own callback lands inside the gap (coalesced) and
    # the next sweep, which looks at coalesced doorbells first, finds the approval.
    env.hitl.reviewer.respond(request_id, "approve")
    env.tick()
    dispatcher.poll_once()
    assert effects == ["refund 9"]
    assert graph.get_state(THREAD).values["decision"]["approved"] is True
    assert budget.remaining() >= 60
    row = env.ledger.get_by_request_id(request_id)
    assert row is not None and row.state == "resumed"


def test_listings_keep_a_reserve_that_answer_fetches_may_use(env: Env) -> None:
    effects: list[str] = []
    budget = CallBudget(20, clock=env.clock)
    _, dispatcher, request_id, token = _parked(env, effects, budget)
    counting = _counting(env, dispatcher)
    assert budget.try_spend(18)  # two calls left: the reserve listings never spend
    env.hitl.reviewer.respond(request_id, "approve")
    dispatcher.poll_once()
    assert counting.calls == [] and effects == []  # the sweep did not list
    _ring(dispatcher, token, request_id, 1)  # the doorbell's GET may use the reserve
    assert counting.calls == [("GET", f"/v1/api/requests/{request_id}")]
    assert effects == ["refund 9"]


def test_the_server_timeout_is_recorded_as_a_timeout_not_a_failure(env: Env) -> None:
    effects: list[str] = []
    budget = CallBudget(90, clock=env.clock)
    graph, dispatcher, request_id, token = _parked(env, effects, budget)
    _counting(env, dispatcher)
    _ring(dispatcher, token, request_id, 50)  # noise while pending
    env.clock.advance(3601)
    env.hitl.tick_sync()  # the server times the request out (and calls back)
    dispatcher.poll_once()
    decision = graph.get_state(THREAD).values["decision"]
    assert effects == [] and decision["outcome"] == "timed_out"
    assert "failed closed" not in decision["reason"]  # the server's own timeout
    assert dispatcher.resolver.stats["failed_closed"] == 0


def test_a_sweep_fetches_coalesced_doorbells_before_it_lists(env: Env) -> None:
    """Issue 7 Q1: calls that fetch answers come before calls that look for them."""
    effects: list[str] = []
    budget = CallBudget(90, clock=env.clock)
    _, dispatcher, request_id, token = _parked(env, effects, budget)
    counting = _counting(env, dispatcher)
    _ring(dispatcher, token, request_id, 2)  # one GET, one doorbell left for the sweep
    env.clock.advance(61)
    env.hitl.reviewer.respond(request_id, "approve")
    counting.calls.clear()
    dispatcher.poll_once()
    assert counting.calls[0] == ("GET", f"/v1/api/requests/{request_id}")
    assert effects == ["refund 9"]
