"""The hourly quota per API key: headers on every response, the documented 429, refunds."""

from __future__ import annotations

from hitl_agent.server._quota import NO_QUOTA_LIMIT

from .conftest import MakeEnv


def test_headers_count_down_then_429_with_the_documented_body(make_env: MakeEnv) -> None:
    env = make_env(rate_limit=3)
    env.clock.advance(1800)  # half past midnight: the window resets at 01:00
    remaining = []
    for _ in range(3):
        response = env.api("GET", "/api/loops")
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit"] == "3"
        assert response.headers["X-RateLimit-Reset"] == str(1_767_225_600 + 3600)
        remaining.append(response.headers["X-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]
    refused = env.api("GET", "/api/loops")
    assert refused.status_code == 429
    assert refused.json() == {
        "error": True,
        "msg": "API key request limit exceeded",
        "data": {
            "usage_count": 3,
            "usage_limit": 3,
            "remaining": 0,
            "reset_at": "2026-01-01T01:00:00Z",
        },
    }
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    env.clock.advance(1800)  # the top of the hour
    again = env.api("GET", "/api/loops")
    assert (again.status_code, again.headers["X-RateLimit-Remaining"]) == (200, "2")


def test_errors_count_and_429s_do_not(make_env: MakeEnv) -> None:
    env = make_env(rate_limit=2)
    assert env.api("GET", "/api/requests/nope").status_code == 400
    assert env.api("GET", "/test").json()["data"]["rate_limit"]["remaining"] == 0
    for _ in range(3):
        assert env.api("GET", "/test").status_code == 429
    env.clock.advance(3600)
    assert env.api("GET", "/test").headers["X-RateLimit-Remaining"] == "1"


def test_cancelling_a_pending_request_refunds_one_call(make_env: MakeEnv) -> None:
    env = make_env(rate_limit=10)
    pending = env.create()  # 1 call
    claimed = env.create()  # 2 calls
    env.rev("POST", f"/requests/{claimed}/claim")  # reviewer calls are not counted
    cancel = env.api("DELETE", f"/api/requests/{pending}")  # 3 calls, 1 refunded
    assert cancel.json()["data"]["refund_info"]["refunded"] is True
    assert cancel.headers["X-RateLimit-Remaining"] == "8"
    no_refund = env.api("DELETE", f"/api/requests/{claimed}")  # 3 calls
    assert no_refund.json()["data"]["refund_info"]["refunded"] is False
    assert no_refund.headers["X-RateLimit-Remaining"] == "7"


def test_keys_have_separate_quotas_and_no_limit_says_so_in_the_headers(
    make_env: MakeEnv,
) -> None:
    env = make_env(rate_limit=1)
    env.server.add_api_key("key-two")
    assert env.api("GET", "/test").status_code == 200
    refused = env.api("GET", "/test")
    assert refused.status_code == 429 and refused.headers["X-RateLimit-Remaining"] == "0"
    assert env.api("GET", "/test", key="key-two").status_code == 200
    unlimited = make_env(db=":memory:")
    # Every authenticated response carries the headers, as on HITL.sh (issue 7 W2): without
    # a rate limit, the documented "no quota" figure, which never counts down.
    for _ in range(3):
        response = unlimited.api("GET", "/test")
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit"] == str(NO_QUOTA_LIMIT) == "100000"
        assert response.headers["X-RateLimit-Remaining"] == "100000"
        assert int(response.headers["X-RateLimit-Reset"]) % 3600 == 0
        assert response.headers["Date"].endswith("GMT")
    missing = unlimited.api("GET", "/api/requests/" + "0" * 24)
    assert missing.status_code == 404 and missing.headers["X-RateLimit-Limit"] == "100000"
    wrong_key = env.api("GET", "/test", key="not-a-key")
    assert wrong_key.status_code == 401 and wrong_key.headers["X-RateLimit-Limit"] == "1"
    assert response.json()["data"]["rate_limit"]["limit"] is None
