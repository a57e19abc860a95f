"""Every thread read of RemoteGraphResumer asks for subgraph states, sync and async alike
(issue 18: ``finished``/``afinished`` read ``GET /threads/{id}/state`` without
``subgraphs=true``, unlike every other read and unlike ``GraphResumer.finished``).

No server process here: the real ``langgraph-sdk`` clients talk to a recorded fake of the
LangGraph API through ``httpx.MockTransport``, so these run wherever the SDK is installed (the
``langgraph dev`` tests beside them need a separate virtualenv). Like the real server, the fake
nests a subgraph task's state only when ``subgraphs=true`` was asked for.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient, SyncLangGraphClient

from hitl_agent.decision import Decision
from hitl_agent.langgraph import PAYLOAD_KEY
from hitl_agent.langgraph.remote import RemoteGraphResumer
from hitl_agent.ledger import ReviewRecord

THREAD = "thread-1"
BASE = "http://langgraph.test"
INTERRUPT = {"value": {PAYLOAD_KEY: {"request_id": "req-1", "key": "k"}}, "id": "int-1"}

# The gate waits inside a subgraph: outer:<task 1> | inner:<task 2>.
ROW = ReviewRecord(
    key="k",
    state="decided",
    request_id="req-1",
    thread_id=THREAD,
    checkpoint_ns="outer:task-1|inner:task-2",
    decided_at=1_767_225_600.0,
)
DECISION = Decision(request_id="req-1", status="completed", outcome="approved", approved=True)

Call = tuple[str, str, dict[str, str]]


def _thread_state(subgraphs: bool) -> dict[str, Any]:
    inner = {
        "values": {},
        "next": ["inner"],
        "tasks": [
            {"id": "task-2", "name": "inner", "path": [], "interrupts": [INTERRUPT], "state": None}
        ],
        "checkpoint": {"checkpoint_id": "c-inner"},
        "metadata": {"source": "loop"},
        "created_at": "2026-01-01T00:00:01+00:00",
        "parent_checkpoint": None,
    }
    nested: dict[str, Any] = (
        inner if subgraphs else {"configurable": {"checkpoint_ns": "outer:task-1"}}
    )
    return {
        "values": {},
        "next": ["outer"],
        "tasks": [
            {
                "id": "task-1",
                "name": "outer",
                "path": [],
                "interrupts": [INTERRUPT],
                "state": nested,
            }
        ],
        "checkpoint": {"checkpoint_id": "c-2"},
        "metadata": {"source": "loop"},
        "created_at": "2026-01-01T00:00:01+00:00",
        "parent_checkpoint": {"checkpoint_id": "c-1"},
    }


def _handler(calls: list[Call]) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        calls.append((request.method, request.url.path, params))
        path = request.url.path
        if request.method == "GET" and path == f"/threads/{THREAD}/state":
            return httpx.Response(200, json=_thread_state(params.get("subgraphs") == "true"))
        if request.method == "POST" and path == f"/threads/{THREAD}/history":
            limit = json.loads(request.content).get("limit")
            assert isinstance(limit, int)
            return httpx.Response(200, json=[])
        if request.method == "POST" and path == f"/threads/{THREAD}/runs/wait":
            return httpx.Response(200, json={})
        return httpx.Response(404, json={"detail": "not found"})

    return handle


def _sync_resumer(calls: list[Call]) -> RemoteGraphResumer:
    http = httpx.Client(base_url=BASE, transport=httpx.MockTransport(_handler(calls)))
    return RemoteGraphResumer(BASE, "agent", client=SyncLangGraphClient(http))


def _run_async(calls: list[Call], method: str) -> Any:
    async def main() -> Any:
        handle = _handler(calls)

        async def ahandle(request: httpx.Request) -> httpx.Response:
            await request.aread()
            return handle(request)

        http = httpx.AsyncClient(base_url=BASE, transport=httpx.MockTransport(ahandle))
        resumer = RemoteGraphResumer(BASE, "agent", aclient=LangGraphClient(http))
        try:
            return await _call(resumer, method)
        finally:
            await resumer.aclose()

    return asyncio.run(main())


def _call(resumer: RemoteGraphResumer, method: str) -> Any:
    fn = getattr(resumer, method)
    return fn(ROW, [DECISION]) if method.endswith("resume") else fn(ROW)


TWINS = [
    ("target", "atarget"),
    ("resume", "aresume"),
    ("proceed", "aproceed"),
    ("finished", "afinished"),
]


def _state_reads(calls: list[Call]) -> list[dict[str, str]]:
    return [params for method, path, params in calls if path.endswith("/state")]


@pytest.mark.parametrize(("sync_name", "async_name"), TWINS, ids=[t[0] for t in TWINS])
def test_every_state_read_asks_for_subgraphs(sync_name: str, async_name: str) -> None:
    sync_calls: list[Call] = []
    resumer = _sync_resumer(sync_calls)
    try:
        _call(resumer, sync_name)
    finally:
        resumer.close()
    async_calls: list[Call] = []
    _run_async(async_calls, async_name)
    for name, calls in ((sync_name, sync_calls), (async_name, async_calls)):
        reads = _state_reads(calls)
        assert reads, f"{name} read no thread state"
        assert all(params.get("subgraphs") == "true" for params in reads), (name, reads)


@pytest.mark.parametrize(("sync_name", "async_name"), TWINS, ids=[t[0] for t in TWINS])
def test_sync_and_async_twins_make_the_same_calls_and_answer_alike(
    sync_name: str, async_name: str
) -> None:
    sync_calls: list[Call] = []
    resumer = _sync_resumer(sync_calls)
    try:
        sync_result = _call(resumer, sync_name)
    finally:
        resumer.close()
    async_calls: list[Call] = []
    async_result = _run_async(async_calls, async_name)
    assert async_calls == sync_calls
    assert async_result == sync_result


def test_the_subgraph_gate_is_found_only_in_the_nested_state() -> None:
    """Why it matters: the gate's interrupt is addressed by its own (inner) task's
    namespace, which only a ``subgraphs=true`` state carries."""
    calls: list[Call] = []
    resumer = _sync_resumer(calls)
    try:
        assert resumer.target(ROW) == "int-1"
        assert resumer.resume(ROW, [DECISION]) is True
    finally:
        resumer.close()
    assert [(m, p) for m, p, _ in calls][-1] == ("POST", f"/threads/{THREAD}/runs/wait")
