"""Who may do what: bearer checks, two API keys, a reviewer outside the loop. No secret leaks."""

from __future__ import annotations

from .conftest import Env, request_body


def test_missing_malformed_and_unknown_keys_are_401(env: Env) -> None:
    missing = env.http.get("/v1/test")
    assert missing.status_code == 401
    assert missing.json() == {"error": True, "msg": "Missing or invalid authorization header"}
    basic = env.http.get("/v1/test", headers={"Authorization": "Basic a2V5LW9uZQ=="})
    assert basic.status_code == 401
    unknown = env.api("GET", "/test", key="not-a-key")
    assert (unknown.status_code, unknown.json()["msg"]) == (401, "Invalid API key")
    assert "not-a-key" not in unknown.text
    # The two kinds of bearer token are not interchangeable.
    assert env.api("GET", "/test", key=env.creds.reviewer_token).status_code == 401
    wrong_kind = env.rev("GET", "/queue", token=env.creds.api_key)
    assert (wrong_kind.status_code, wrong_kind.json()["msg"]) == (401, "Invalid reviewer token")


def test_key_check_describes_the_key(env: Env) -> None:
    body = env.api("GET", "/test").json()
    assert body["msg"] == "API key is valid"
    assert body["data"]["account_status"] == "active"
    assert len(body["data"]["api_key_id"]) == 24


def test_a_second_key_cannot_touch_the_first_keys_loops_or_requests(env: Env) -> None:
    second = env.server.add_api_key("key-two", email="other@localhost")
    assert second.user_id != env.api("GET", "/test").json()["data"]["user_id"]
    request_id = env.create()
    loop = env.creds.loop_id
    denied_request = "Access denied to this request"
    for method, path in (
        ("GET", f"/api/requests/{request_id}"),
        ("DELETE", f"/api/requests/{request_id}"),
    ):
        response = env.api(method, path, key="key-two")
        assert (response.status_code, response.json()["msg"]) == (403, denied_request)
    feedback = env.api(
        "POST",
        f"/api/requests/{request_id}/feedback",
        key="key-two",
        json={"feedback": {"rating": 1}},
    )
    assert (feedback.status_code, feedback.json()["msg"]) == (403, denied_request)
    for method, path, kw in (
        ("GET", f"/api/loops/{loop}", {}),
        ("PUT", f"/api/loops/{loop}", {"json": {"name": "mine"}}),
        ("DELETE", f"/api/loops/{loop}", {}),
        ("GET", f"/api/loops/{loop}/members", {}),
        ("DELETE", f"/api/loops/{loop}/members/{env.creds.reviewer_id}", {}),
    ):
        response = env.api(method, path, key="key-two", **kw)
        assert (response.status_code, response.json()["msg"]) == (403, "Access denied to this loop")
    create = env.api("POST", f"/api/loops/{loop}/requests", key="key-two", json=request_body())
    assert (create.status_code, create.json()["msg"]) == (
        403,
        "Only loop creators can create requests",
    )
    listed = env.api("GET", "/api/requests", key="key-two").json()["data"]
    assert listed["requests"] == [] and listed["total"] == 0
    assert env.api("GET", "/api/loops", key="key-two").json()["data"] == {"loops": [], "count": 0}
    assert env.get(request_id)["status"] == "pending"
    assert env.api("GET", f"/api/loops/{loop}").json()["data"]["loop"]["name"] == "Local approvals"


def test_a_reviewer_outside_the_loop_sees_nothing_and_may_not_answer(env: Env) -> None:
    env.server.add_reviewer("outsider@localhost", "outsider-token", [])
    request_id = env.create()
    assert env.rev("GET", "/queue", token="outsider-token").json()["data"]["requests"] == []
    for action, kw in (("claim", {}), ("respond", {"json": {"response_data": "approve"}})):
        response = env.rev("POST", f"/requests/{request_id}/{action}", token="outsider-token", **kw)
        assert (response.status_code, response.json()["msg"]) == (
            403,
            "Access denied to this request",
        )
    assert env.rev("GET", f"/requests/{request_id}", token="outsider-token").status_code == 403
    assert env.get(request_id)["status"] == "pending"


def test_removing_a_member_revokes_their_access(env: Env) -> None:
    request_id = env.create()
    removed = env.api("DELETE", f"/api/loops/{env.creds.loop_id}/members/{env.creds.reviewer_id}")
    assert removed.status_code == 200
    assert removed.json()["data"]["user_id"] == env.creds.reviewer_id
    assert env.rev("GET", "/queue").json()["data"]["requests"] == []
    answer = env.rev("POST", f"/requests/{request_id}/respond", json={"response_data": "approve"})
    assert answer.status_code == 403


def test_reviewer_me_lists_their_loops(env: Env) -> None:
    me = env.rev("GET", "/me").json()["data"]
    assert me["user_id"] == env.creds.reviewer_id
    assert me["loops"] == [{"id": env.creds.loop_id, "name": "Local approvals"}]


def test_secrets_never_appear_in_reprs_or_errors(env: Env) -> None:
    account = env.server.add_api_key("key-secret-value")
    reviewer = env.server.add_reviewer("r@localhost", "token-secret-value", [env.creds.loop_id])
    for text in (repr(env.creds), repr(account), repr(reviewer), repr(env.server)):
        assert "key-one" not in text and "reviewer-one" not in text
        assert "secret-value" not in text
    with env.server.storage.read() as conn:
        dump = "\n".join(conn.iterdump())
    for secret in ("key-secret-value", "token-secret-value", "key-one", "reviewer-one"):
        assert secret not in dump


def test_found_keys_are_remembered_and_junk_keys_are_not(env: Env) -> None:
    """The key memo (every API call authenticates) keeps only keys that exist: 300 junk
    keys stay 401 and leave it as it was; a key added after a miss is found at once."""
    assert env.api("GET", "/test").status_code == 200
    before = dict(env.server._callers)
    assert len(before) == 1
    for index in range(300):
        assert env.api("GET", "/test", key=f"junk-{index}").status_code == 401
    assert env.server._callers == before
    assert env.api("GET", "/test", key="late-key").status_code == 401
    env.server.add_api_key("late-key", email="late@localhost")
    late = env.api("GET", "/test", key="late-key")
    assert late.status_code == 200
    assert late.json()["data"]["user_id"] != env.api("GET", "/test").json()["data"]["user_id"]
