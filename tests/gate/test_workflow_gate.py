"""Issue 22 W1: ``Gatekeeper(workflow=...)`` reviews through a HITL.sh workflow.

Against the local server's default workflow (trigger -> human review): the trigger carries
the rendered request and every field a create would; the answer's ``request_id`` feeds the
same ledger row, callback, poller and reconciliation as a loop's created request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import httpx2
import pytest
from create_faults import AsyncFaults, Faults
from hitl_harness import CALLBACK_URL, Env, make_env, refund_graph
from langgraph.checkpoint.memory import InMemorySaver

from hitl_agent import (
    APIConnectionError,
    AsyncHITLClient,
    ConfigError,
    HITLClient,
    RetryPolicy,
    ReviewTimeoutError,
)
from hitl_agent.gate import Gatekeeper
from hitl_agent.langgraph import GraphResumer
from hitl_agent.ledger import SqliteLedger
from hitl_agent.testing import FakeClock, alocal_hitl

WORKFLOW = "wf_local-approvals-workflow"  # the local server's default workflow
NO_RETRY = RetryPolicy(max_retries=0)


@pytest.fixture
def wf(tmp_path: Path) -> Iterator[Env]:
    yield from make_env(tmp_path, loop_id=None, workflow=WORKFLOW)


def _requests(env: Env) -> list[Any]:
    return list(env.hitl.client.requests.iter())  # every request of the key, any loop


def _executions(env: Env) -> list[dict[str, Any]]:
    with env.hitl.server.storage.read() as conn:
        return [dict(row) for row in conn.execute("SELECT * FROM executions").fetchall()]


def test_exactly_one_of_loop_id_and_workflow(wf: Env) -> None:
    common: dict[str, Any] = {"client": wf.hitl.client, "ledger": wf.ledger}
    for given in ({}, {"loop_id": wf.hitl.loop_id, "workflow": WORKFLOW}):
        with pytest.raises(ConfigError, match="loop_id/workflow") as caught:
            Gatekeeper(**common, **given)
        assert "workflow=" in str(caught.value) and "loop_id=" in str(caught.value)
    with pytest.raises(ConfigError, match="workflow"):
        Gatekeeper(**common, workflow="https://api.hitl.sh/v1/api/loops/x")
    keeper = Gatekeeper(**common, workflow=f"https://api.hitl.sh/v1/workflows/webhook/{WORKFLOW}")
    assert keeper.workflow is not None and keeper.workflow.shape == "webhook"
    assert keeper.loop_id is None and f"workflow={WORKFLOW!r}" in repr(keeper)


def test_a_graph_gate_triggers_once_and_its_callback_resumes_it(wf: Env) -> None:
    effects: list[str] = []
    graph = refund_graph(wf, InMemorySaver(), effects, priority="high")
    config: dict[str, Any] = {"configurable": {"thread_id": "wf-1"}}
    graph.invoke({"amount": 250}, config)
    graph.invoke(None, config)  # a replay finds its row: no second trigger
    (request,) = _requests(wf)
    (execution,) = _executions(wf)
    assert execution["request_id"] == request.id and execution["workflow_id"] == WORKFLOW
    # The trigger carried the rendered request and the fields the node uses.
    assert request.request_text == "Refund $250?" and request.priority == "high"
    assert request.response_type == "single_select" and request.default_response == "reject"
    assert [o["value"] for o in request.response_config["options"]] == ["approve", "reject"]
    assert request.callback_url.startswith(CALLBACK_URL + "/")
    assert request.platform == "hitl-agent" and request.processing_type == "time-sensitive"
    (row,) = wf.ledger.list_open()
    assert request.context["hitl_agent"]["key"] == row.key
    assert row.request_id == request.id and row.loop_id is None
    assert row.payload["workflow_id"] == WORKFLOW

    wf.plug(wf.keeper.dispatcher(GraphResumer(graph)))
    wf.hitl.reviewer.respond(request.id, "approve")
    wf.tick()  # the callback is delivered into the dispatcher, which resumes the thread
    assert effects == ["refund 250"]
    assert not graph.get_state(config).next


def test_the_budgeted_poller_finds_a_workflow_answer(wf: Env) -> None:
    effects: list[str] = []
    graph = refund_graph(wf, InMemorySaver(), effects)
    config: dict[str, Any] = {"configurable": {"thread_id": "wf-2"}}
    graph.invoke({"amount": 40}, config)
    (request,) = _requests(wf)
    wf.hitl.reviewer.respond(request.id, "reject")
    dispatcher = wf.keeper.dispatcher(GraphResumer(graph))  # no callback delivered: polls
    (decision,) = dispatcher.poll_once()
    assert decision.request_id == request.id and not decision.approved
    assert effects == [] and not graph.get_state(config).next


@pytest.fixture
def faulty(wf: Env) -> Iterator[tuple[Faults, Gatekeeper]]:
    faults = Faults(wf.hitl.http)
    client = HITLClient(
        wf.hitl.api_key, base_url=wf.hitl.base_url,
        http_client=cast(httpx.Client, faults), retry=NO_RETRY,
    )  # fmt: skip
    keeper = Gatekeeper(
        client=client, workflow=WORKFLOW, ledger=wf.ledger, clock=wf.clock, poll_interval=60.0
    )
    yield faults, keeper


def test_a_lost_trigger_response_is_reconciled_into_one_request(
    wf: Env, faulty: tuple[Faults, Gatekeeper]
) -> None:
    faults, keeper = faulty
    faults.lose = True  # the trigger reaches the server; its answer is lost
    with pytest.raises(APIConnectionError):
        keeper.review("Refund $40?", key="order-40", mode="block", wait_timeout=0.01)
    (row,) = wf.ledger.list_open()
    assert row.state == "intent"  # kept: the next call with this key reconciles first
    with pytest.raises(ReviewTimeoutError):
        keeper.review("Refund $40?", key="order-40", mode="block", wait_timeout=0.01)
    (request,) = _requests(wf)
    assert len(_executions(wf)) == 1 and faults.calls.count("POST") == 1
    (row,) = wf.ledger.list_open()
    assert (row.state, row.request_id) == ("pending", request.id)


def test_a_random_key_review_settles_its_own_lost_trigger(
    wf: Env, faulty: tuple[Faults, Gatekeeper]
) -> None:
    faults, keeper = faulty
    faults.lose = True
    with pytest.raises(ReviewTimeoutError):
        keeper.review("Refund $41?", mode="block", wait_timeout=0.01)
    (request,) = _requests(wf)
    assert [(r.state, r.request_id) for r in wf.ledger.list_open()] == [("pending", request.id)]
    assert faults.calls.count("POST") == 1


def test_the_async_twin_triggers_and_reconciles(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        async with alocal_hitl(clock=clock) as hitl:
            faults = AsyncFaults(hitl.http)
            aclient = AsyncHITLClient(
                hitl.api_key, base_url=hitl.base_url,
                http_client=cast(httpx2.AsyncClient, faults), retry=NO_RETRY,
            )  # fmt: skip
            ledger = SqliteLedger(tmp_path / "a.db", clock=clock)
            ledger.setup()
            sync_client = HITLClient(hitl.api_key, base_url=hitl.base_url)  # never called
            keeper = Gatekeeper(
                client=sync_client, async_client=aclient, workflow=hitl.workflow_id,
                ledger=ledger, clock=clock, poll_interval=60.0,
            )  # fmt: skip
            faults.lose = True
            with pytest.raises(APIConnectionError):
                await keeper.areview("Ship?", key="ship-1", mode="block", wait_timeout=0.01)
            with pytest.raises(ReviewTimeoutError):
                await keeper.areview("Ship?", key="ship-1", mode="block", wait_timeout=0.01)
            page = await hitl.client.requests.list()
            assert page.total == 1 and faults.calls.count("POST") == 1
            (row,) = ledger.list_open()
            assert row.request_id == page.requests[0].id and row.state == "pending"
            ledger.close()

    asyncio.run(scenario())
