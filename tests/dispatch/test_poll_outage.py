"""Issue 20 F3: an approval given in time is never turned into ``timed_out`` by an outage.

A failed call past ``deadline + grace`` (a 502, a refused connection, a timeout) says nothing
about the request, so it never counts for the fail-closed rule: only HITL.sh's own word does
(still pending past the deadline, a server-side timeout, a 404). After
``PollConfig.fail_closed_after_outage`` without any answer the row is failed closed anyway,
and an approval given in time that turns up later is reported (ERROR log, ``late_approvals``).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx2
import pytest
from hitl_harness import Env, refund_graph, switched_client
from langgraph.checkpoint.memory import InMemorySaver

from hitl_agent import PollConfig
from hitl_agent.dispatch import Dispatcher
from hitl_agent.langgraph import GraphResumer

TIMEOUT = 3600  # the keeper's default timeout_seconds
GRACE = 300


def _bad_gateway(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(502, text="<html>Bad Gateway</html>", request=request)


def _partition(request: httpx2.Request) -> httpx2.Response:
    raise httpx2.ConnectError("[Errno 111] Connection refused", request=request)


def _read_timeout(request: httpx2.Request) -> httpx2.Response:
    raise httpx2.ReadTimeout("timed out", request=request)


def _suspend(env: Env, effects: list[str]) -> tuple[Any, dict[str, Any], str]:
    graph = refund_graph(env, InMemorySaver(), effects)
    config: dict[str, Any] = {"configurable": {"thread_id": "t"}}
    graph.invoke({"amount": 9}, config)
    return graph, config, env.only_request_id()


def _state(env: Env, request_id: str) -> str:
    row = env.ledger.get_by_request_id(request_id)
    assert row is not None
    return row.state


@pytest.mark.parametrize("fault", [_bad_gateway, _partition, _read_timeout])
def test_the_first_sweep_back_from_an_outage_fails_and_the_next_records_the_approval(
    env: Env, fault: Any
) -> None:
    effects: list[str] = []
    graph, _, request_id = _suspend(env, effects)
    env.clock.advance(TIMEOUT - 600)
    env.hitl.reviewer.respond(request_id, "approve")  # in time, while the dispatcher is down
    env.clock.advance(600 + GRACE + 60)  # it comes back past deadline + grace
    with switched_client(env) as (switch, client):
        dispatcher = env.keeper.dispatcher(GraphResumer(graph))
        dispatcher.resolver.client = client
        switch.fault = fault
        assert dispatcher.poll_once() == []
        assert switch.calls >= 1
        assert _state(env, request_id) == "pending"  # not timed_out
        assert dispatcher.resolver.stats["failed_closed"] == 0
        switch.fault = None
        delivered = dispatcher.poll_once()
    assert [d.outcome for d in delivered] == ["approved"]
    assert effects == ["refund 9"]


def test_a_partition_hides_an_approval_made_8s_before_the_deadline(env: Env) -> None:
    effects: list[str] = []
    graph, _, request_id = _suspend(env, effects)
    with switched_client(env) as (switch, client):
        dispatcher = env.keeper.dispatcher(GraphResumer(graph))
        dispatcher.resolver.client = client
        env.clock.advance(TIMEOUT - 100)
        assert dispatcher.poll_once() == []  # reached: still pending
        switch.fault = _partition
        env.clock.advance(92)
        env.hitl.reviewer.respond(request_id, "approve")  # 8 s before the deadline
        for _ in range(12):  # sweeps through the partition, well past deadline + grace
            env.clock.advance(60)
            assert dispatcher.poll_once() == []
        assert env.clock() > env.ledger.get_by_request_id(request_id).deadline + GRACE  # type: ignore[union-attr]
        assert _state(env, request_id) == "pending"
        switch.fault = None
        delivered = dispatcher.poll_once()
    assert [d.outcome for d in delivered] == ["approved"]
    assert effects == ["refund 9"]
    assert dispatcher.resolver.stats["failed_closed"] == 0


def test_pending_on_the_servers_word_past_deadline_plus_grace_still_fails_closed(
    env: Env,
) -> None:
    """HITL.sh answering "pending" after deadline + grace is a definite answer: denied."""
    effects: list[str] = []
    graph, config, _ = _suspend(env, effects)
    dispatcher = env.keeper.dispatcher(GraphResumer(graph))
    env.clock.advance(TIMEOUT + GRACE + 1)  # the server has not timed it out (no tick)
    delivered = dispatcher.poll_once()
    assert [d.outcome for d in delivered] == ["timed_out"]
    assert effects == []
    reason = graph.get_state(config).values["decision"]["reason"]
    assert "reported no decision" in reason and "failed closed" in reason


def _bounded(env: Env, graph: Any, client: Any, bound: float | None) -> Dispatcher:
    return Dispatcher(
        ledger=env.ledger,
        client=client,
        resumer=GraphResumer(graph),
        loop_id=env.hitl.loop_id,
        clock=env.clock,
        polling=PollConfig(fail_closed_after_outage=bound),
    )


def test_the_outage_bound_is_a_poll_config_setting(env: Env) -> None:
    graph = refund_graph(env, InMemorySaver(), [])
    default = _bounded(env, graph, env.hitl.client, PollConfig().fail_closed_after_outage)
    assert default.poller.fail_closed_after_outage == 86_400.0
    assert default.polling.fail_closed_after_outage == 86_400.0
    never = _bounded(env, graph, env.hitl.client, None)
    assert never.poller.fail_closed_after_outage is None
    assert never.polling.fail_closed_after_outage is None


def test_after_the_outage_bound_it_fails_closed_and_a_later_approval_is_reported(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    effects: list[str] = []
    graph, config, request_id = _suspend(env, effects)
    with switched_client(env) as (switch, client):
        dispatcher = _bounded(env, graph, client, 1800.0)
        env.clock.advance(TIMEOUT - 60)
        env.hitl.reviewer.respond(request_id, "approve")  # in time
        switch.fault = _bad_gateway
        env.clock.advance(60 + GRACE + 1700)
        assert dispatcher.poll_once() == []  # inside the bound: keep waiting
        assert _state(env, request_id) == "pending"
        env.clock.advance(200)  # 30 min of outage past deadline + grace
        with caplog.at_level(logging.ERROR, logger="hitl_agent.dispatch"):
            delivered = dispatcher.poll_once()
        assert [d.outcome for d in delivered] == ["timed_out"]
        assert effects == []  # fail closed: the action never runs without a known approval
        reason = graph.get_state(config).values["decision"]["reason"]
        assert "fail_closed_after_outage=1800" in reason and "failed closed" in reason
        assert any(request_id in r.getMessage() for r in caplog.records)
        caplog.clear()
        switch.fault = None  # the API is back: the approval given in time is reported
        with caplog.at_level(logging.ERROR, logger="hitl_agent.dispatch"):
            dispatcher.poll_once()
    assert [d.request_id for d in dispatcher.poller.late_approvals] == [request_id]
    assert dispatcher.poller.late_approvals[0].approved
    lost = [r for r in caplog.records if r.levelno == logging.ERROR and "LOST" in r.getMessage()]
    assert len(lost) == 1 and request_id in lost[0].getMessage()
    assert effects == []


def test_a_bound_of_none_waits_for_as_long_as_it_takes(env: Env) -> None:
    effects: list[str] = []
    graph, _, request_id = _suspend(env, effects)
    with switched_client(env) as (switch, client):
        dispatcher = _bounded(env, graph, client, None)
        env.clock.advance(TIMEOUT - 60)
        env.hitl.reviewer.respond(request_id, "approve")
        switch.fault = _partition
        env.clock.advance(7 * 86_400)
        assert dispatcher.poll_once() == []
        assert _state(env, request_id) == "pending"
        switch.fault = None
        delivered = dispatcher.poll_once()
    assert [d.outcome for d in delivered] == ["approved"]
    assert effects == ["refund 9"]


def test_a_keepers_dispatchers_take_its_outage_bound(env: Env) -> None:
    from hitl_agent.gate import Gatekeeper

    keeper = Gatekeeper(
        client=env.hitl.client,
        loop_id=env.hitl.loop_id,
        ledger=env.ledger,
        clock=env.clock,
        polling=PollConfig(fail_closed_after_outage=600.0),
    )
    assert keeper.polling.fail_closed_after_outage == 600.0
    assert keeper.dispatcher().poller.fail_closed_after_outage == 600.0
    assert keeper.dispatcher(deadline_grace=5).poller.deadline_grace == 5
    assert keeper._blocking.poller.fail_closed_after_outage == 600.0
