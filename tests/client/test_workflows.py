"""``client.workflows.trigger`` (issue 22 W1), sync and async, over both HTTP stacks, against
the local server (through its ASGI app): an id and both documented trigger URL shapes reach
the client's base_url, the answer names the execution and the backing request, and the
request reads back with ``GET /v1/api/requests/{id}``."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from hitl_agent import ConfigError
from hitl_agent.models import WorkflowRef, WorkflowTrigger, workflow_ref
from hitl_agent.resources import AsyncWorkflows, Workflows
from hitl_agent.testing import LocalHITL, local_hitl

from .conftest import Harness

pytestmark = pytest.mark.anyio


@pytest.fixture
def hitl() -> Iterator[LocalHITL]:
    with local_hitl() as running:
        yield running


def _forward(hitl: LocalHITL) -> Callable[[httpx.Request], httpx.Response]:
    """A MockTransport handler that hands each call to the local server's app."""

    def handler(request: httpx.Request) -> httpx.Response:
        answer = hitl.http.request(
            request.method,
            request.url.path,
            params=dict(request.url.params),
            headers={"Authorization": request.headers["authorization"]},
            content=request.content or None,
        )
        return httpx.Response(
            answer.status_code, headers=dict(answer.headers), content=answer.content
        )

    return handler


@pytest.mark.parametrize(
    ("shape", "path"),
    [("id", "/v1/workflows/{id}/trigger"), ("trigger", "/v1/workflows/{id}/trigger"),
     ("webhook", "/v1/workflows/webhook/{id}")],
)  # fmt: skip
async def test_trigger_in_each_shape_creates_a_readable_request(
    make: Callable[..., Harness], hitl: LocalHITL, shape: str, path: str
) -> None:
    workflow_id = hitl.workflow_id
    given = {
        "id": workflow_id,
        "trigger": f"https://api.hitl.sh/v1/workflows/{workflow_id}/trigger",
        "webhook": f"https://api.hitl.sh/v1/workflows/webhook/{workflow_id}",
    }[shape]
    harness = make(_forward(hitl), api_key=hitl.api_key, base_url="http://testserver/v1")
    answer = await harness.call(
        "workflows.trigger",
        given,
        {"content": "Refund $250 to order 1234?", "user_id": "u-1", "execution_id": "forged"},
    )
    assert isinstance(answer, WorkflowTrigger)
    assert answer.execution_id and answer.request_id and answer.workflow_id == workflow_id
    # The key went to the client's base_url only, never to the URL's host.
    assert harness.recorder.last.url.host == "testserver"
    assert harness.recorder.last.url.path == path.format(id=workflow_id)
    request = await harness.call("requests.get", answer.request_id)
    assert request.status == "pending" and request.request_text == "Refund $250 to order 1234?"
    assert request.response_type == "single_select" and request.default_response == "reject"
    # The request names its run, whatever the body says.
    extra = request.model_extra or {}
    assert (extra["workflow_id"], extra["execution_id"]) == (workflow_id, answer.execution_id)
    assert [option["value"] for option in request.response_config["options"]] == [
        "approve",
        "reject",
    ]


async def test_an_unknown_workflow_is_a_404(make: Callable[..., Harness], hitl: LocalHITL) -> None:
    from hitl_agent import NotFoundError

    harness = make(_forward(hitl), api_key=hitl.api_key, base_url="http://testserver/v1")
    with pytest.raises(NotFoundError, match="Workflow not found"):
        await harness.call("workflows.trigger", "wf_nope", {})


async def test_a_body_that_is_not_json_is_refused_before_sending(
    make: Callable[..., Harness],
) -> None:
    harness = make(httpx.Response(500))
    with pytest.raises(ConfigError, match="body"):
        await harness.call("workflows.trigger", "wf_1", {"when": object()})
    with pytest.raises(ConfigError, match="workflow_id"):
        await harness.call("workflows.trigger", "https://api.hitl.sh/v1/loops/x", {})
    assert harness.recorder.seen == []


def test_workflow_refs_read_both_documented_shapes() -> None:
    assert workflow_ref("wf_1") == WorkflowRef("wf_1", "trigger")
    assert workflow_ref("https://api.hitl.sh/v1/workflows/wf_1/trigger") == WorkflowRef("wf_1")
    assert workflow_ref("https://api.hitl.sh/v1/workflows/webhook/wf_1/") == WorkflowRef(
        "wf_1", "webhook"
    )
    assert WorkflowRef("a b").path() == "/workflows/a%20b/trigger"
    for bad in ("", "https://api.hitl.sh/v1/api/loops/1", "not an id!"):
        with pytest.raises(ConfigError, match="workflow"):
            workflow_ref(bad)


def test_the_sync_and_async_resources_are_twins() -> None:
    sync_sig = inspect.signature(Workflows.trigger)
    async_sig = inspect.signature(AsyncWorkflows.trigger)
    assert [(p.name, p.default) for p in sync_sig.parameters.values()] == [
        (p.name, p.default) for p in async_sig.parameters.values()
    ]
    assert inspect.iscoroutinefunction(AsyncWorkflows.trigger)
    assert not inspect.iscoroutinefunction(Workflows.trigger)


def test_the_answer_reads_top_level_id_spellings() -> None:
    answer: Any = WorkflowTrigger.model_validate({"id": "ex1", "request_id": "r1"})
    assert answer.execution_id == "ex1" and answer.request_id == "r1"


async def test_an_answer_with_the_ids_at_the_top_level_is_read(
    make: Callable[..., Harness],
) -> None:
    # HITL.sh's n8n node reads data.execution_id / data.request_id, or the same keys at the
    # top level: both shapes are read.
    harness = make(httpx.Response(201, json={"execution_id": "ex1", "request_id": "r1"}))
    answer = await harness.call("workflows.trigger", "wf_1", {})
    assert (answer.execution_id, answer.request_id) == ("ex1", "r1")
