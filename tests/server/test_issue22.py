"""Issue 22 rows W4 and W5 against the local server: what HITL.sh's own clients and docs send
and read (reference hitl-2026.md, hitl-api.md §5, §6.1, §7)."""

from __future__ import annotations

from typing import Any

import pytest

from hitl_agent.models import Request

from .conftest import Env, request_body

# -- W4: n8n's rating/number keys ----------------------------------------------------------------

N8N_CONFIGS = [
    # HITL.sh's n8n node sends min/max and an empty prompt (hitl-api.md §7.1).
    ("rating", {"min": 1, "max": 5, "prompt": ""}, 1, 4),
    ("number", {"min": 0, "max": 100, "prompt": ""}, 0, 42),
]


@pytest.mark.parametrize(("kind", "config", "default", "answer"), N8N_CONFIGS)
def test_n8n_min_max_requests_take_an_answer(
    env: Env, kind: str, config: dict[str, Any], default: int, answer: int
) -> None:
    # Before: accepted at create, then every answer refused ("response_config.min: unknown
    # field") and the request timed out to n8n's default.
    request_id = env.create(response_type=kind, response_config=config, default_response=default)
    response = env.rev("POST", f"/requests/{request_id}/respond", json={"response_data": answer})
    assert response.status_code == 200, response.json()
    got = env.get(request_id)
    assert got["status"] == "completed" and got["response_data"] == answer


@pytest.mark.parametrize(("kind", "config", "default", "answer"), N8N_CONFIGS)
def test_alias_keys_are_stored_once_under_the_documented_names(
    env: Env, kind: str, config: dict[str, Any], default: int, answer: int
) -> None:
    request_id = env.create(response_type=kind, response_config=config, default_response=default)
    stored = env.get(request_id)["response_config"]
    assert "min" not in stored and "max" not in stored
    low, high = ("scale_min", "scale_max") if kind == "rating" else ("min_value", "max_value")
    assert (stored[low], stored[high]) == (config["min"], config["max"])
    assert stored["prompt"] == ""  # an unknown key from a real client: kept, ignored
    # The client reads what the server stored, prompt and all.
    assert Request.from_data({"request": env.get(request_id)}).response_value is None


def test_an_answer_outside_n8n_bounds_is_still_refused(env: Env) -> None:
    request_id = env.create(
        response_type="rating", response_config={"min": 1, "max": 5}, default_response=1
    )
    response = env.rev("POST", f"/requests/{request_id}/respond", json={"response_data": 6})
    assert response.status_code == 400
    assert "response_data" in response.json()["data"]


# -- W5: number default under HITL.sh's documented min_value of 1 --------------------------------


def test_number_default_zero_without_min_value_is_refused_as_documented(env: Env) -> None:
    response = env.api(
        "POST",
        f"/api/loops/{env.creds.loop_id}/requests",
        json=request_body(
            response_type="number", response_config={"max_value": 10}, default_response=0
        ),
    )
    assert response.status_code == 400, response.json()
    assert response.json()["msg"] == "Validation failed"
    assert response.json()["data"].startswith("default_response: 0 is outside 1..10")
    # With min_value given (the client always sends it) 0 is fine.
    env.create(
        response_type="number",
        response_config={"max_value": 10, "min_value": 0},
        default_response=0,
    )


# -- W5: loops ---------------------------------------------------------------------------------


def test_loop_without_icon_is_refused_naming_icon(env: Env) -> None:
    response = env.api("POST", "/api/loops", json={"name": "No icon"})
    assert response.status_code == 400
    assert response.json()["msg"] == "Validation failed"
    assert response.json()["data"].startswith("icon: required")
    assert env.api("POST", "/api/loops", json={"name": "Icon", "icon": "eye"}).status_code == 201


def test_loop_create_join_url_is_absolute(env: Env) -> None:
    data = env.api("POST", "/api/loops", json={"name": "L", "icon": "eye"}).json()["data"]
    assert data["join_url"].startswith("http://testserver/")
    assert data["invite_code"] in data["join_url"]


def test_loop_requests_lists_the_loops_requests(env: Env) -> None:
    # Before: 405. The API introduction, openapi.json and third-party connectors call it.
    first = env.create()
    second = env.create(priority="high")
    response = env.api("GET", f"/api/loops/{env.creds.loop_id}/requests")
    assert response.status_code == 200, response.json()
    data = response.json()["data"]
    assert [item["id"] for item in data["requests"]] == [second, first]
    assert (data["count"], data["total"], data["loop_id"]) == (2, 2, env.creds.loop_id)
    high = env.api("GET", f"/api/loops/{env.creds.loop_id}/requests?priority=high").json()
    assert [item["id"] for item in high["data"]["requests"]] == [second]


def test_loop_requests_refuses_strangers_and_unknown_loops(env: Env) -> None:
    env.server.add_api_key("key-two", email="other@localhost")  # another user
    response = env.api("GET", f"/api/loops/{env.creds.loop_id}/requests", key="key-two")
    assert (response.status_code, response.json()["msg"]) == (403, "Access denied to this loop")
    missing = env.api("GET", "/api/loops/65f1234567890abcdef00000/requests")
    assert (missing.status_code, missing.json()["msg"]) == (404, "Loop not found")
    bad = env.api("GET", "/api/loops/nope/requests")
    assert (bad.status_code, bad.json()["msg"]) == (400, "Invalid loop ID format")


# -- W5: one Date header -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/test", "/openapi.json", "/v1/nothing-here"])
def test_every_response_has_exactly_one_date_header(env: Env, path: str) -> None:
    response = env.http.get(path, headers={"Authorization": f"Bearer {env.creds.api_key}"})
    assert len(response.headers.get_list("date")) == 1


def test_under_uvicorn_with_serve_options_one_date_header(tmp_path: Any) -> None:
    # uvicorn adds its own Date on top of the app's: every response had two.
    import socket
    import threading
    import time

    import uvicorn

    from hitl_agent.server import create_app
    from hitl_agent.server._app import UVICORN_OPTIONS

    app = create_app(tmp_path / "hitl.db", scheduler_interval=None)
    app.state.hitl.bootstrap(api_key="key-one-0123456789", reviewer_token="rev-one-0123456789")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", **UVICORN_OPTIONS))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for path in ("/v1/test", "/openapi.json"):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                conn.sendall(
                    f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    "Authorization: Bearer key-one-0123456789\r\n\r\n".encode()
                )
                raw = b""
                while chunk := conn.recv(65536):
                    raw += chunk
            head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower().split("\r\n")
            assert sum(line.startswith("date:") for line in head) == 1, head
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        app.state.hitl.close()
        sock.close()


def test_loop_create_returns_a_qr_code_of_the_join_url(env: Env) -> None:
    # openapi.json: qr_code_base64 and qr_code_url are required strings (were null).
    import base64
    import struct

    from hitl_agent.server._qr import qr_matrix

    data = env.api("POST", "/api/loops", json={"name": "L", "icon": "eye"}).json()["data"]
    prefix = "data:image/png;base64,"
    assert data["qr_code_base64"].startswith(prefix)
    png = base64.b64decode(data["qr_code_base64"].removeprefix(prefix))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    side = struct.unpack(">I", png[16:20])[0]
    assert side == (len(qr_matrix(data["join_url"])) + 8) * 6  # the QR code of join_url
    assert data["qr_code_url"] == f"http://testserver/qr/{data['invite_code']}.png"
    served = env.http.get(data["qr_code_url"])
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert served.content == png
    assert env.http.get("http://testserver/qr/NOSUCHCODE.png").status_code == 404


def test_qr_encoder_matches_the_standard_for_an_exactly_full_symbol() -> None:
    # Cross-checked against segno 1.6.6 (same matrices for versions 1-6 at level L, mask 0);
    # here the invariants any reader relies on: size, finder patterns, the dark module.
    from hitl_agent.server._qr import MAX_QR_BYTES, qr_matrix

    for length, version in ((17, 1), (32, 2), (53, 3), (78, 4), (106, 5), (134, 6)):
        matrix = qr_matrix("x" * length)
        size = 17 + 4 * version
        assert len(matrix) == size, length
        assert all(matrix[r][c] for r, c in ((0, 0), (0, size - 1), (size - 1, 0)))
        assert matrix[size - 8][8]
    with pytest.raises(ValueError, match="do not fit"):
        qr_matrix("x" * (MAX_QR_BYTES + 1))
