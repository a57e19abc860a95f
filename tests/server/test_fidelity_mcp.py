"""HITL.sh's own client code, replayed against the local server.

HITL.sh publishes an MCP server (``hitl-sh/mcp.hitl.sh``) whose API client
(``lib/hitl-client.ts``), tool layer (``app/mcp/route.ts``) and test scripts
(``scripts/test-hitl-mcp.mjs``, ``test-all-tools.mjs``, ``test-all-response-types.mjs``) were
written against the live API. :class:`McpHitlClient` is a line-by-line port of that client:
the same base URL joining (``new URL("api/loops", "…/v1/")``), the same headers, the same
error rule (non-2xx throws with ``body.msg``; the tool layer also throws on ``error: true``).
Each test replays one script's calls with the script's bodies, unchanged, and reads back the
fields the script reads (``data.id`` after a create, ``loops[0].id``, ``summary.count``, ...).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin

import httpx
import pytest

from hitl_agent.models import Request

from .conftest import Env

USER_AGENT = "hitl-mcp-server/0.1.0"  # route.ts USER_AGENT


class HitlApiError(Exception):
    """lib/hitl-client.ts HitlApiError: ``message`` is ``body.msg``."""

    def __init__(self, message: str, status: int, body: Any) -> None:
        super().__init__(f"{message} (status {status})")
        self.status = status
        self.body = body


class McpHitlClient:
    """lib/hitl-client.ts ``HitlClient``, over the app's TestClient."""

    def __init__(self, http: Any, api_key: str, base_url: str = "http://testserver/v1") -> None:
        self.http = http  # an httpx.Client, or the app's TestClient
        self.api_key = api_key
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"  # ensureTrailing…
        self.calls: list[tuple[str, str]] = []

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        url = urljoin(self.base_url, path.removeprefix("/"))
        headers = {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"}
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(body)  # JSON.stringify(payload)
        headers["User-Agent"] = USER_AGENT
        response = self.http.request(method, url, headers=headers, content=content)
        self.calls.append((method, url))
        if "application/json" in response.headers.get("content-type", ""):
            parsed = response.json()
        else:
            parsed = {"raw": response.text} if response.text else None
        if not 200 <= response.status_code < 300:
            msg = (parsed or {}).get(
                "msg"
            ) or f"HITL API request failed with {response.status_code}"
            raise HitlApiError(msg, response.status_code, parsed)
        return parsed

    def validate_api_key(self) -> Any:
        return self._request("GET", "test")

    def get_loops(self) -> Any:
        return self._request("GET", "api/loops")

    def create_request(self, loop_id: str, payload: dict[str, Any]) -> Any:
        return self._request("POST", f"api/loops/{loop_id}/requests", payload)

    def list_requests(self, params: dict[str, Any]) -> Any:
        search = {
            key: str(params[key])
            for key in ("status", "priority", "loop_id", "limit", "offset", "sort")
            if params.get(key) is not None
        }
        path = f"api/requests?{urlencode(search)}" if search else "api/requests"
        return self._request("GET", path)

    def get_request(self, request_id: str) -> Any:
        return self._request("GET", f"api/requests/{request_id}")

    def update_request(self, request_id: str, payload: dict[str, Any]) -> Any:
        return self._request("PATCH", f"api/requests/{request_id}", payload)

    def cancel_request(self, request_id: str, payload: dict[str, Any] | None = None) -> Any:
        # route.ts passes {reason} when the tool is given one (an older revision's body).
        return self._request("DELETE", f"api/requests/{request_id}", payload)

    def add_request_feedback(self, request_id: str, payload: dict[str, Any]) -> Any:
        return self._request("POST", f"api/requests/{request_id}/feedback", payload)


def _envelope(response: Any) -> Any:
    """route.ts normalizeEnvelope: an ``error: true`` body throws even on a 2xx."""
    if response["error"]:
        raise AssertionError(response["msg"] or "HITL API returned an error")
    return response


class McpTools:
    """The tool handlers of app/mcp/route.ts: what each returns to the MCP caller."""

    def __init__(self, client: McpHitlClient) -> None:
        self.client = client
        key = _envelope(client.validate_api_key())["data"]  # getAuthInfoForToken
        assert key["user_id"] and key["api_key_id"] and isinstance(key["permissions"], list)

    def list_loops(self) -> dict[str, Any]:
        envelope = _envelope(self.client.get_loops())
        return {
            "message": envelope["msg"],
            "loops": envelope["data"]["loops"],
            "count": envelope["data"]["count"],
        }

    def create_request(self, arguments: dict[str, Any]) -> dict[str, Any]:
        payload = dict(arguments)
        loop_id = payload.pop("loop_id")
        if not payload.get("platform"):
            payload["platform"] = "api"
        envelope = _envelope(self.client.create_request(loop_id, payload))
        return {"message": envelope["msg"], "data": envelope["data"]}

    def list_requests(self, arguments: dict[str, Any]) -> dict[str, Any]:
        envelope = _envelope(self.client.list_requests(arguments))
        data = envelope["data"]
        return {
            "message": envelope["msg"],
            "summary": {
                "count": data["count"],
                "total": data["total"],
                "has_more": data["has_more"],
            },
            "requests": data["requests"],
        }

    def get_request(self, request_id: str) -> dict[str, Any]:
        envelope = _envelope(self.client.get_request(request_id))
        return {"message": envelope["msg"], "data": envelope["data"]}

    def update_request(self, request_id: str, updates: dict[str, Any]) -> dict[str, Any]:
        envelope = _envelope(self.client.update_request(request_id, updates))
        return {"message": envelope["msg"], "data": envelope["data"]}

    def cancel_request(self, request_id: str, reason: str | None = None) -> dict[str, Any]:
        payload = {"reason": reason} if reason else None
        envelope = _envelope(self.client.cancel_request(request_id, payload))
        return {"message": envelope["msg"], "data": envelope["data"]}

    def add_request_feedback(self, request_id: str, feedback: dict[str, Any]) -> dict[str, Any]:
        envelope = _envelope(self.client.add_request_feedback(request_id, {"feedback": feedback}))
        return {"message": envelope["msg"], "data": envelope["data"]}


@pytest.fixture
def tools(env: Env) -> McpTools:
    return McpTools(McpHitlClient(env.http, env.creds.api_key))


def test_sanity_script_test_hitl_mcp(tools: McpTools) -> None:
    """scripts/test-hitl-mcp.mjs: list_loops, then list_requests {limit: 3}."""
    loops = tools.list_loops()
    assert loops["count"] == len(loops["loops"]) >= 1
    requests = tools.list_requests({"limit": 3})
    assert requests["summary"] == {"count": 0, "total": 0, "has_more": False}


def test_all_tools_script_runs_every_tool(tools: McpTools, env: Env) -> None:
    """scripts/test-all-tools.mjs, call by call, with its bodies."""
    _all_tools_script(tools, env.creds.loop_id)


def _all_tools_script(tools: McpTools, loop_id: str) -> None:
    loops = tools.list_loops()
    first = loops["loops"][0]
    assert first["id"] == loop_id and first["name"]
    test_loop_id = loops["loops"][0]["id"]

    all_requests = tools.list_requests({})
    assert all_requests["summary"]["count"] == 0
    filtered = tools.list_requests({"limit": 5, "status": "pending"})
    assert filtered["summary"]["count"] == 0

    created = tools.create_request(
        {
            "loop_id": test_loop_id,
            "processing_type": "deferred",
            "type": "markdown",
            "priority": "medium",
            "request_text": "MCP Server Test Request - Please review this test message",
            "response_type": "single_select",
            "response_config": {
                "options": ["Approve", "Reject", "Needs Changes"],
                "required": True,
            },
            "default_response": "Reject",
            "platform": "api",
            "tags": ["test", "mcp-server"],
        }
    )
    assert created["message"] == "Request created and broadcasted successfully"
    new_request_id = created["data"]["id"]  # the script reads data.id
    assert new_request_id == created["data"]["request_id"]

    got = tools.get_request(new_request_id)["data"]["request"]
    assert got["id"] == new_request_id
    assert got["tags"] == ["test", "mcp-server"]
    assert got["response_config"]["options"] == ["Approve", "Reject", "Needs Changes"]
    assert got["default_response"] == "Reject"

    updated = tools.update_request(
        new_request_id,
        {
            "priority": "high",
            "request_text": "MCP Server Test Request - UPDATED with high priority",
        },
    )
    assert updated["message"] == "Request updated successfully"
    assert updated["data"]["request"]["priority"] == "high"
    after = tools.get_request(new_request_id)["data"]["request"]
    assert after["request_text"] == "MCP Server Test Request - UPDATED with high priority"
    assert after["priority"] == "high" and after["tags"] == ["test", "mcp-server"]

    cancelled = tools.cancel_request(new_request_id)
    assert cancelled["data"]["refund_info"]["refunded"] is True

    # The script expects this one may fail ("request may need to be completed first"): it
    # must fail with the documented error, not something else.
    with pytest.raises(HitlApiError) as failure:
        tools.add_request_feedback(
            new_request_id,
            {
                "rating": 5,
                "comment": "Test feedback from MCP server test suite",
                "accuracy": 5,
                "timeliness": 5,
                "helpfulness": 5,
                "would_recommend": True,
                "category": "positive",
            },
        )
    assert failure.value.status == 400
    assert failure.value.body["msg"] == "Feedback can only be added to completed requests"
    # Every call went to the documented paths under /v1 (no /v1/v1, no missing /api).
    assert all(url.startswith(tools.client.base_url) for _, url in tools.client.calls)


RESPONSE_TYPE_CASES: list[dict[str, Any]] = [
    {  # Test 1: Single Select - Markdown
        "processing_type": "deferred",
        "type": "markdown",
        "priority": "high",
        "request_text": "Please categorize this customer support ticket.",
        "context": {
            "ticket_id": "TICKET-12345",
            "customer_email": "user@example.com",
            "subject": "Login issues",
        },
        "response_type": "single_select",
        "response_config": {
            "options": [
                "Technical Issue",
                "Account Problem",
                "Billing Question",
                "Feature Request",
                "Other",
            ],
            "required": True,
        },
        "default_response": "Other",
        "platform": "api",
    },
    {  # Test 2: Multi Select - Image
        "processing_type": "time-sensitive",
        "type": "image",
        "priority": "critical",
        "request_text": "What objects do you see in this image? Select all that apply.",
        "image_url": "https://images.unsplash.com/photo-1506905925346-21bda4d32df4",
        "timeout_seconds": 900,
        "response_type": "multi_select",
        "response_config": {
            "options": [
                "Person",
                "Car",
                "Building",
                "Tree",
                "Animal",
                "Traffic Light",
                "Road Sign",
            ],
            "max_selections": 3,
            "required": True,
        },
        "default_response": ["Tree"],
        "platform": "api",
    },
    {  # Test 3: Rating - Markdown
        "processing_type": "deferred",
        "type": "markdown",
        "priority": "low",
        "request_text": "Please rate the quality of this AI-generated content on a scale of 1-5.",
        "context": {
            "content_id": "ai_gen_123",
            "content_type": "blog_post",
            "generated_by": "gpt-4",
        },
        "response_type": "rating",
        "response_config": {"scale_max": 5},
        "default_response": 3,
        "platform": "api",
    },
    {  # Test 4: Text - Markdown (the default is shorter than min_length)
        "processing_type": "time-sensitive",
        "type": "markdown",
        "priority": "medium",
        "request_text": "Please provide a summary of this article in 2-3 sentences.",
        "context": {"article_url": "https://example.com/article", "word_limit": 50},
        "timeout_seconds": 1800,
        "response_type": "text",
        "response_config": {"min_length": 20, "max_length": 500},
        "default_response": "No summary provided",
        "platform": "api",
    },
    {  # Test 5: Number - Markdown
        "processing_type": "time-sensitive",
        "type": "markdown",
        "priority": "medium",
        "request_text": "How many people are visible in this crowd photo?",
        "context": {
            "event_name": "Tech Conference 2025",
            "photo_location": "Main auditorium",
            "timestamp": "2025-01-15T14:30:00Z",
        },
        "timeout_seconds": 3600,
        "response_type": "number",
        "response_config": {
            "min_value": 1,
            "max_value": 1000,
            "allow_negative": False,
            "decimal_places": 2,
        },
        "default_response": 105.5,
        "platform": "api",
    },
]


def test_all_response_types_script_creates_and_cancels_each(tools: McpTools) -> None:
    """scripts/test-all-response-types.mjs: five creates, then a cancel of every data.id."""
    loops = tools.list_loops()
    test_loop_id = loops["loops"][0]["id"]
    created_ids = []
    for payload in RESPONSE_TYPE_CASES:
        created = tools.create_request({"loop_id": test_loop_id, **payload})
        created_ids.append(created["data"]["id"])
        stored = tools.get_request(created["data"]["id"])["data"]["request"]
        assert stored["default_response"] == payload["default_response"]
        assert stored["response_config"].items() >= payload["response_config"].items()
    assert len(set(created_ids)) == 5
    for request_id in created_ids[:-1]:
        assert tools.cancel_request(request_id)["data"]["status"] == "cancelled"
    # cancel_request's optional reason goes in a DELETE body; it is accepted (and not read).
    last = tools.cancel_request(created_ids[-1], reason="test cleanup")
    assert last["data"]["refund_info"]["refunded"] is True
    listed = tools.list_requests({"status": "cancelled"})
    assert listed["summary"]["total"] == 5


def test_a_reviewer_answering_a_plain_option_by_its_written_value(env: Env) -> None:
    """The get-request doc's example: options ``["Approve", ...]``, answer ``"Approve"``."""
    request_id = env.create(response_config={"options": ["Approve", "Reject", "Needs Changes"]},
                            default_response="Approve")  # fmt: skip
    answered = env.rev("POST", f"/requests/{request_id}/respond", json={"response_data": "Approve"})
    assert answered.status_code == 200, answered.json()
    request = env.get(request_id)
    assert request["response_data"] == "Approve"
    assert Request.model_validate(request).response_value == "Approve"
    # The snake-cased spelling the newest docs derive is accepted too (the console sends it).
    other = env.create(default_response="reject")
    assert env.rev(
        "POST", f"/requests/{other}/respond", json={"response_data": "approve"}
    ).is_success


def test_a_rich_option_default_must_be_its_value_not_its_label(env: Env) -> None:
    """Only what the docs refuse is refused: a rich option's default is its value."""
    options = [{"value": "ok", "label": "Looks good"}, {"value": "no", "label": "Reject it"}]
    response = env.api("POST", f"/api/loops/{env.creds.loop_id}/requests",
                       json={**_body(options), "default_response": "Reject it"})  # fmt: skip
    assert response.status_code == 400 and "default_response" in response.json()["data"]
    assert env.create(response_config={"options": options}, default_response="no")


def _body(options: list[Any]) -> dict[str, Any]:
    from .conftest import request_body

    return request_body(response_config={"options": options})


def test_the_scripts_run_against_hitl_agent_serve_over_http(tmp_path: Path) -> None:
    """As a new user would: ``hitl-agent serve`` in a process, the MCP client over TCP."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    key = "hitl_local_" + "m" * 24
    err = (tmp_path / "serve.stderr").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from hitl_agent.cli import main; main()", "serve",
         "--port", str(port), "--db", str(tmp_path / "hitl.db"), "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=err,
        env={**os.environ, "HITL_LOCAL_API_KEY": key},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/v1"
    try:
        with httpx.Client(timeout=5.0) as http:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, (tmp_path / "serve.stderr").read_text()
                try:
                    http.get(base + "/test")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "serve did not start"
                    time.sleep(0.05)
            tools = McpTools(McpHitlClient(http, key, base_url=base))
            _all_tools_script(tools, tools.list_loops()["loops"][0]["id"])
            loop_id = tools.list_loops()["loops"][0]["id"]
            for payload in RESPONSE_TYPE_CASES:
                created = tools.create_request({"loop_id": loop_id, **payload})
                assert tools.cancel_request(created["data"]["id"])["data"]["status"] == "cancelled"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            err.close()
