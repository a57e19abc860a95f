"""Issue 22 rows read by the client: every documented create-answer shape and status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from hitl_agent import Decision

from . import documented as doc
from .conftest import Harness, respond

pytestmark = pytest.mark.anyio

_CREATE: dict[str, Any] = {
    "request_text": "Ship it?",
    "response_type": "boolean",
    "response_config": {},
    "default_response": False,
    "timeout_seconds": 600,
}


@pytest.mark.parametrize(
    "data",
    [
        {"request_id": doc.REQUEST_ID, "status": "pending"},  # API reference
        {"id": doc.REQUEST_ID, "status": "pending"},  # HITL.sh's MCP test script
        # An old quickstart nests it: data.request.id (raised APIResponseValidationError).
        {"request": {"id": doc.REQUEST_ID, "status": "pending"}},
        {"request": {"request_id": doc.REQUEST_ID}, "polling_url": "/v1/api/requests/x"},
    ],
)
async def test_every_documented_create_answer_gives_the_id(
    data: dict[str, Any], make: Callable[..., Harness]
) -> None:
    api = make(respond(201, {"error": False, "msg": "created", "data": data}))
    created = await api.call("requests.create", doc.LOOP_ID, **_CREATE)
    assert created.request_id == doc.REQUEST_ID
    assert created.status == "pending"


@pytest.mark.parametrize(
    ("status", "approved"),
    [("answered", True), ("resolved", True), ("failed", False), ("timed_out", False)],
)
async def test_a_get_with_an_n8n_or_snippet_status_ends_the_wait(
    status: str, approved: bool, make: Callable[..., Harness]
) -> None:
    body = {"id": doc.REQUEST_ID, "status": status, "response_type": "boolean",
            "response_config": {}, "default_response": False, "response_data": True}  # fmt: skip
    api = make(respond(200, {"error": False, "msg": "ok", "data": {"request": body}}))
    request = await api.call("requests.get", doc.REQUEST_ID)
    assert request.is_terminal and request.reported_status == status
    decision = Decision.from_request(request)
    assert decision is not None and decision.approved is approved
