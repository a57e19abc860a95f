"""Issue 22 leftovers: ``hitl-agent review`` answers a request whose config a server sent with
keys this library does not know (read with ``strict=False``), and the demo's uvicorn sends one
``Date`` header per response (the app's own)."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
from click.testing import CliRunner

from hitl_agent.cli._demo import _serve
from hitl_agent.cli._review import ReviewerSeam, review
from hitl_agent.server import create_app


def test_review_answers_a_config_with_keys_it_does_not_know() -> None:
    item = {
        "id": "r1", "priority": "high", "status": "pending", "request_text": "Ship?",
        "response_type": "text", "timeout_at": "2999-01-01T00:00:00Z",
        # A key a newer HITL.sh (or another client) stores; strict parsing refused it.
        "response_config": {"max_length": 100, "placeholder_color": "#fff"},
    }  # fmt: skip
    answers: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/queue"):
            data = {"requests": [] if answers else [item]}
            return httpx.Response(200, json={"error": False, "msg": "ok", "data": data})
        if request.url.path.endswith("/respond"):
            answers.append(json.loads(request.content)["response_data"])
        return httpx.Response(200, json={"error": False, "msg": "ok", "data": {}})

    result = CliRunner().invoke(
        review,
        ["--base-url", "http://h/v1", "--token", "t" * 20],
        input="1\nyes ship it\n",
        obj=ReviewerSeam(http_client=httpx.Client(transport=httpx.MockTransport(handler))),
    )
    assert result.exit_code == 0, result.output
    assert "cannot be answered here" not in result.output
    assert answers == ["yes ship it"]


def test_the_demo_server_sends_one_date_header() -> None:
    app = create_app(":memory:", scheduler_interval=None)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    try:
        with _serve(app, sock):
            response = httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=5)
        assert response.status_code == 200
        assert len(response.headers.get_list("date")) == 1
    finally:
        sock.close()
        app.state.hitl.close()
