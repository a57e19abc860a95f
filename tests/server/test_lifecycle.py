"""Every transition: pending → claimed → completed, claim expiry, release, timeout, cancel."""

from __future__ import annotations

from .conftest import Env, MakeEnv, request_body


def test_created_request_is_pending_with_the_documented_shape(env: Env) -> None:
    response = env.api("POST", f"/api/loops/{env.creds.loop_id}/requests", json=request_body())
    assert response.status_code == 201
    body = response.json()
    assert body["error"] is False
    assert body["msg"] == "Request created and broadcasted successfully"
    data = body["data"]
    assert data["status"] == "pending"
    assert data["polling_url"] == f"/v1/api/requests/{data['request_id']}"
    assert data["broadcasted_to"] == 2  # the reviewer and the loop's creator
    assert len(data["request_id"]) == 24 and int(data["request_id"], 16) >= 0
    request = env.get(data["request_id"])
    assert request["status"] == "pending"
    assert request["response_data"] is None and request["response_by"] is None
    assert request["timeout_at"] == "2026-01-01T00:10:00Z"
    assert request["response_config"]["options"] == ["Approve", "Reject"]  # as sent


def test_claim_then_respond_completes_with_responder_and_time(env: Env) -> None:
    request_id = env.create()
    claimed = env.rev("POST", f"/requests/{request_id}/claim")
    assert claimed.status_code == 200
    assert env.get(request_id)["status"] == "claimed"
    env.clock.advance(42.5)
    answered = env.rev("POST", f"/requests/{request_id}/respond", json={"response_data": "approve"})
    assert answered.status_code == 200, answered.json()
    request = env.get(request_id)
    assert request["status"] == "completed"
    assert request["response_data"] == "approve"
    assert request["response_by"] == env.creds.reviewer_id
    assert request["response_by_user"]["email"] == env.creds.reviewer_email
    assert request["response_time_seconds"] == 42.5


def test_respond_on_pending_claims_implicitly(env: Env) -> None:
    request_id = env.create()
    response = env.rev("POST", f"/requests/{request_id}/respond", json={"response_data": "reject"})
    assert response.status_code == 200
    assert env.get(request_id)["status"] == "completed"


def test_claim_not_completed_in_time_returns_to_pending(make_env: MakeEnv) -> None:
    env = make_env(claim_timeout_seconds=120)
    request_id = env.create()
    env.rev("POST", f"/requests/{request_id}/claim")
    env.clock.advance(119)
    env.tick()
    assert env.get(request_id)["status"] == "claimed"
    env.clock.advance(1)
    env.tick()
    request = env.get(request_id)
    assert request["status"] == "pending"
    other = env.server.add_reviewer("second@localhost", "reviewer-two", [env.creds.loop_id])
    assert other.email == "second@localhost"
    queue = env.rev("GET", "/queue", token="reviewer-two").json()["data"]["requests"]
    assert [item["id"] for item in queue] == [request_id]


def test_expired_claim_is_free_before_the_scheduler_runs(make_env: MakeEnv) -> None:
    env = make_env(claim_timeout_seconds=60)
    env.server.add_reviewer("second@localhost", "reviewer-two", [env.creds.loop_id])
    request_id = env.create()
    env.rev("POST", f"/requests/{request_id}/claim")
    taken = env.rev("POST", f"/requests/{request_id}/claim", token="reviewer-two")
    assert taken.status_code == 409
    assert taken.json()["msg"] == "Request is already claimed by another reviewer"
    env.clock.advance(61)
    assert env.rev("POST", f"/requests/{request_id}/claim", token="reviewer-two").status_code == 200


def test_release_returns_to_pending_and_only_the_holder_may_release(env: Env) -> None:
    env.server.add_reviewer("second@localhost", "reviewer-two", [env.creds.loop_id])
    request_id = env.create()
    env.rev("POST", f"/requests/{request_id}/claim")
    foreign = env.rev("POST", f"/requests/{request_id}/release", token="reviewer-two")
    assert foreign.status_code == 409
    assert env.rev("POST", f"/requests/{request_id}/release").status_code == 200
    assert env.get(request_id)["status"] == "pending"


def test_timeout_at_timeout_at_records_default_and_null_response(env: Env) -> None:
    request_id = env.create(timeout_seconds=60)
    env.clock.advance(59.9)
    env.tick()
    assert env.get(request_id)["status"] == "pending"
    env.clock.advance(0.1)
    env.tick()
    request = env.get(request_id)
    assert request["status"] == "timeout"
    assert request["response_data"] is None  # as the callback doc says; use default_response
    assert request["default_response"] == "reject"
    late = env.rev("POST", f"/requests/{request_id}/respond", json={"response_data": "approve"})
    assert late.status_code == 409


def test_claimed_request_still_times_out(env: Env) -> None:
    request_id = env.create(timeout_seconds=60)
    env.rev("POST", f"/requests/{request_id}/claim")
    env.clock.advance(60)
    env.tick()
    assert env.get(request_id)["status"] == "timeout"


def test_request_past_timeout_cannot_be_answered_before_the_sweep(env: Env) -> None:
    request_id = env.create(timeout_seconds=60)
    env.clock.advance(61)
    late = env.rev("POST", f"/requests/{request_id}/respond", json={"response_data": "approve"})
    assert late.status_code == 409
    assert env.get(request_id)["status"] == "pending"
    env.tick()
    assert env.get(request_id)["status"] == "timeout"


def test_deferred_request_defaults_to_thirty_days(env: Env) -> None:
    request_id = env.create(processing_type="deferred", timeout_seconds=None)
    assert env.get(request_id)["timeout_at"] == "2026-01-31T00:00:00Z"


def test_cancel_pending_refunds_and_claimed_does_not(env: Env) -> None:
    pending = env.create()
    claimed = env.create()
    env.rev("POST", f"/requests/{claimed}/claim")
    first = env.api("DELETE", f"/api/requests/{pending}").json()
    assert first["msg"] == "Request cancelled successfully"
    assert first["data"]["previous_status"] == "pending"
    assert first["data"]["refund_info"] == {
        "refunded": True,
        "reason": "Request cancelled before processing began",
    }
    second = env.api("DELETE", f"/api/requests/{claimed}").json()["data"]
    assert second["previous_status"] == "claimed"
    assert second["refund_info"] == {
        "refunded": False,
        "reason": "Request was already being processed by reviewer",
    }
    assert env.get(claimed)["status"] == "cancelled"


def test_terminal_requests_cannot_be_cancelled(env: Env) -> None:
    request_id = env.create()
    env.rev("POST", f"/requests/{request_id}/respond", json={"response_data": "approve"})
    response = env.api("DELETE", f"/api/requests/{request_id}")
    assert response.status_code == 400
    assert response.json()["msg"] == "Request cannot be cancelled in current state"
    assert env.get(request_id)["status"] == "completed"


def test_answered_request_is_a_409(env: Env) -> None:
    request_id = env.create()
    env.rev("POST", f"/requests/{request_id}/respond", json={"response_data": "approve"})
    again = env.rev("POST", f"/requests/{request_id}/respond", json={"response_data": "reject"})
    assert again.status_code == 409
    assert again.json()["msg"] == "Request has already been answered"
    assert env.get(request_id)["response_data"] == "approve"
    assert env.rev("POST", f"/requests/{request_id}/claim").status_code == 409


def test_invalid_answer_is_a_400_naming_the_problem_and_changes_nothing(env: Env) -> None:
    request_id = env.create()
    response = env.rev("POST", f"/requests/{request_id}/respond", json={"response_data": "maybe"})
    assert response.status_code == 400
    body = response.json()
    assert body["msg"] == "Invalid response"
    assert "response_data" in body["data"] and "Approve" in body["data"]
    assert env.get(request_id)["status"] == "pending"


def test_editable_text_answer_is_stored_as_revised_text(env: Env) -> None:
    request_id = env.create(
        response_type="editable_text",
        response_config={"draft_text": "Hello"},
        default_response="Hello",
    )
    env.rev("POST", f"/requests/{request_id}/respond", json={"response_data": "Hello there"})
    assert env.get(request_id)["response_data"] == {
        "revised_text": "Hello there",
        "was_edited": True,
    }


def test_feedback_only_on_completed_requests(env: Env) -> None:
    request_id = env.create()
    early = env.api(
        "POST", f"/api/requests/{request_id}/feedback", json={"feedback": {"rating": 5}}
    )
    assert early.status_code == 400
    assert early.json()["msg"] == "Feedback can only be added to completed requests"
    env.rev("POST", f"/requests/{request_id}/respond", json={"response_data": "approve"})
    ok = env.api("POST", f"/api/requests/{request_id}/feedback", json={"feedback": {"rating": 4}})
    assert ok.status_code == 200
    assert ok.json()["data"]["feedback"] == {"rating": 4}


def test_queue_orders_critical_first_then_oldest(env: Env) -> None:
    low = env.create(priority="low")
    env.clock.advance(1)
    critical_old = env.create(priority="critical")
    env.clock.advance(1)
    high = env.create(priority="high")
    env.clock.advance(1)
    critical_new = env.create(priority="critical")
    done = env.create(priority="critical")
    env.rev("POST", f"/requests/{done}/respond", json={"response_data": "approve"})
    queue = env.rev("GET", "/queue").json()["data"]["requests"]
    assert [item["id"] for item in queue] == [critical_old, critical_new, high, low]
    assert all("request_html" in item for item in queue)
    assert "<strong>prod</strong>" in queue[0]["request_html"]


def test_list_filters_sorts_and_paginates(env: Env) -> None:
    ids = []
    for index in range(5):
        ids.append(env.create(priority="high" if index % 2 else "low"))
        env.clock.advance(1)
    env.api("DELETE", f"/api/requests/{ids[0]}")
    page = env.api("GET", "/api/requests", params={"status": "pending", "limit": 2}).json()["data"]
    assert [r["id"] for r in page["requests"]] == [ids[4], ids[3]]
    assert page["count"] == 2 and page["total"] == 4 and page["has_more"] is True
    assert page["pagination"] == {"limit": 2, "offset": 0, "next_offset": 2}
    last = env.api("GET", "/api/requests", params={"status": "pending", "offset": 2}).json()
    assert [r["id"] for r in last["data"]["requests"]] == [ids[2], ids[1]]
    assert last["data"]["has_more"] is False and last["data"]["pagination"]["next_offset"] is None
    asc = env.api("GET", "/api/requests", params={"sort": "created_at_asc"}).json()["data"]
    assert [r["id"] for r in asc["requests"]] == ids
    by_priority = env.api("GET", "/api/requests", params={"sort": "priority_desc"}).json()["data"]
    assert [r["priority"] for r in by_priority["requests"]] == ["high"] * 2 + ["low"] * 3
    high = env.api("GET", "/api/requests", params={"priority": "high"}).json()["data"]
    assert high["total"] == 2
    by_status = env.api("GET", "/api/requests", params={"sort": "status_asc"}).json()["data"]
    assert by_status["requests"][0]["status"] == "cancelled"
    in_loop = env.api("GET", "/api/requests", params={"loop_id": env.creds.loop_id}).json()
    assert in_loop["data"]["total"] == 5
