"""Issue 21 S7: a callback for an answered request is never coalesced into a doorbell that came
before the answer.

Before: one authenticated doorbell while the request was pending opened the per-request gap
(issue 8 H3), and the real answer's callback, landing inside that gap, only rang for the next
sweep: the agent was not resumed within 15 s (3/3).
"""

from __future__ import annotations

from hitl_harness import SECRET, Env
from starlette.testclient import TestClient

from hitl_agent._tokens import derive_token
from hitl_agent.dispatch import Dispatcher
from hitl_agent.dispatch._receiver import claims_final


def _parked(env: Env) -> tuple[Dispatcher, str, str]:
    from hitl_agent.gate import ReviewSpec, ensure_request

    spec = ReviewSpec.build("Allow?")
    row = ensure_request(env.keeper._target, env.hitl.client, "s7-key", spec)
    assert row.request_id is not None
    dispatcher = env.plug(env.keeper.dispatcher())
    return dispatcher, row.request_id, derive_token(SECRET, "s7-key")


def test_the_answer_callback_after_a_pending_doorbell_resolves_at_once(env: Env) -> None:
    dispatcher, request_id, token = _parked(env)
    with TestClient(dispatcher.asgi_app) as client:
        response = client.post(f"/hitl/{token}", json={"request_id": request_id})
        assert response.status_code == 202
        assert dispatcher.resolver.stats["fetched"] == 1  # pending: the gap is now open
        env.hitl.reviewer.respond(request_id, True)
        env.tick()  # the server's own callback ({"status": "completed", ...}) arrives
    row = env.ledger.get_by_request_id(request_id)
    assert row is not None and row.decision is not None, "coalesced into the earlier doorbell"
    assert row.decision["approved"] is True
    assert dispatcher.resolver.stats["fetched"] == 2


def test_forged_finished_claims_cost_at_most_one_get_per_request(env: Env) -> None:
    dispatcher, request_id, token = _parked(env)
    forged = {"event": "request.completed", "status": "completed", "request_id": request_id}
    with TestClient(dispatcher.asgi_app) as client:
        for _ in range(20):
            assert client.post(f"/hitl/{token}", json=forged).status_code == 202
    # One GET for the first finished claim, one doorbell GET; the rest are coalesced.
    assert dispatcher.resolver.stats["fetched"] <= 2
    row = env.ledger.get_by_request_id(request_id)
    assert row is not None and row.state == "pending" and row.decision is None
    # The forged claim that found it pending left it for the next sweep to look at first.
    assert request_id in dispatcher.resolver.budget.take_rung()


def test_claims_final_reads_every_documented_place_and_spelling() -> None:
    assert claims_final({"status": "completed"})
    assert claims_final({"status": "timed_out"})
    assert claims_final({"status": "Answered"})
    assert claims_final({"event": "request.timeout"})
    assert claims_final({"data": {"request": {"status": "cancelled"}}})
    assert claims_final({"data": {"status": "resolved"}})
    assert not claims_final({"status": "pending"})
    assert not claims_final({"event": "request.claimed"})
    assert not claims_final({"request_id": "x"})
    assert not claims_final(["completed"])
