"""Every thread read of RemoteGraphResumer asks for subgraph states, sync and async alike
(issue 18: ``finished``/``afinished`` read ``GET /threads/{id}/state`` without
``subgraphs=true``, unlike every other read and unlike ``GraphResumer.finished``).

No server process here: the real ``langgraph-sdk`` clients talk to a recorded fake of the
LangGraph API through ``httpx.MockTransport``, so these run wherever the SDK is installed (the
``langgraph dev`` tests beside them need a separate virtualenv). Like the real server, the fake
nests a subgraph task's state only when ``subgraphs=true`` was asked for.

Every pair (``target``, ``resume``, ``proceed``, ``finished`` and their async twins) also runs
through each scenario of :data:`SCENARIOS` (waiting, consumed but not finished, consumed then
a new turn, finished, unknown thread, a server error, a run that ends in error, a busy thread):
both twins make the same calls with the same bodies and return (or raise) the same, which is
what sharing their decisions (``ThreadScan``, ``find_interrupt``, ``_unread``) keeps true.
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
from hitl_agent.langgraph.remote import RemoteGraphResumer, RemoteResumeError
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


def _task(task_id: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"id": task_id, "name": name, "path": [], "interrupts": [], "state": None, **extra}


def _checkpoint(
    checkpoint: str, parent: str | None, tasks: list[Any], *, next_: Any = (), source: str = "loop"
) -> dict[str, Any]:
    return {
        "values": {},
        "next": list(next_),
        "tasks": tasks,
        "checkpoint": {"checkpoint_id": checkpoint},
        "metadata": {"source": source},
        "created_at": "2026-01-01T00:00:05+00:00",
        "parent_checkpoint": {"checkpoint_id": parent} if parent else None,
    }


# The gate's step ran (its root task finished at c-2) and the run died in ``act`` (c-3).
_GATE_STEP = _checkpoint("c-2", "c-1", [_task("task-1", "outer", result={"ok": True})])
_CONSUMED = _checkpoint("c-3", "c-2", [_task("task-3", "act")], next_=["act"])
# After the gate's step a new message started a new turn (an ``input`` checkpoint).
_NEW_TURN = _checkpoint("c-4", "c-3", [_task("task-4", "agent")], next_=["agent"], source="input")
_DONE = _checkpoint("c-5", "c-4", [])

# scenario -> (thread state, history newest first, runs/wait status and body)
SCENARIOS: dict[str, tuple[Any, list[Any], tuple[int, Any]]] = {
    "waiting": (None, [], (200, {})),
    "consumed, not finished": (_CONSUMED, [_CONSUMED, _GATE_STEP], (200, {})),
    "consumed, then a new turn": (_NEW_TURN, [_NEW_TURN, _CONSUMED, _GATE_STEP], (200, {})),
    "finished": (_DONE, [_DONE, _CONSUMED, _GATE_STEP], (200, {})),
    "unknown thread": (404, [], (404, {"detail": "thread not found"})),
    "server error": (500, [], (200, {})),
    "run ends in error": (None, [], (200, {"__error__": {"error": "Boom", "message": "no"}})),
    "thread busy": (None, [_CONSUMED, _GATE_STEP], (409, {"detail": "thread is busy"})),
}


def _handler(
    calls: list[Call], scenario: str = "waiting", bodies: list[Any] | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    state, history, (run_status, run_body) = SCENARIOS[scenario]
    if scenario == "thread busy":
        state = _CONSUMED

    def handle(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        calls.append((request.method, request.url.path, params))
        if bodies is not None and request.method == "POST":
            bodies.append(json.loads(request.content))
        path = request.url.path
        if request.method == "GET" and path == f"/threads/{THREAD}/state":
            if isinstance(state, int):
                return httpx.Response(state, json={"detail": f"state {state}"})
            if state is not None:
                return httpx.Response(200, json=state)
            return httpx.Response(200, json=_thread_state(params.get("subgraphs") == "true"))
        if request.method == "POST" and path == f"/threads/{THREAD}/history":
            limit = json.loads(request.content).get("limit")
            assert isinstance(limit, int)
            return httpx.Response(200, json=history[:limit])
        if request.method == "POST" and path == f"/threads/{THREAD}/runs/wait":
            return httpx.Response(run_status, json=run_body)
        return httpx.Response(404, json={"detail": "not found"})

    return handle


def _sync_resumer(
    calls: list[Call], scenario: str = "waiting", bodies: list[Any] | None = None
) -> RemoteGraphResumer:
    handler = _handler(calls, scenario, bodies)
    http = httpx.Client(base_url=BASE, transport=httpx.MockTransport(handler))
    return RemoteGraphResumer(BASE, "agent", client=SyncLangGraphClient(http))


def _run_async(
    calls: list[Call], method: str, scenario: str = "waiting", bodies: list[Any] | None = None
) -> Any:
    async def main() -> Any:
        handle = _handler(calls, scenario, bodies)

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


# -- every pair, every scenario: the same calls, bodies and answers (or errors) -------------


def _outcome(run: Callable[[], Any]) -> Any:
    try:
        return ("returned", run())
    except RemoteResumeError as err:
        return ("raised", type(err).__name__, str(err), err.status_code)


EXPECTED: dict[str, dict[str, Any]] = {
    # target, resume, proceed, finished
    "waiting": {"target": "int-1", "resume": True, "proceed": False, "finished": False},
    "consumed, not finished": {"target": None, "resume": False, "proceed": True, "finished": False},
    "consumed, then a new turn": {
        "target": None,
        "resume": False,
        "proceed": False,
        "finished": True,
    },
    "finished": {"target": None, "resume": False, "proceed": False, "finished": True},
    "unknown thread": {"target": None, "resume": False, "proceed": False, "finished": False},
    "server error": dict.fromkeys(("target", "resume", "proceed", "finished"), 500),
    "run ends in error": {"target": "int-1", "resume": "Boom", "proceed": False, "finished": False},
    "thread busy": {"target": None, "resume": False, "proceed": 409, "finished": False},
}


def _short(outcome: Any) -> Any:
    if outcome[0] == "returned":
        return outcome[1]
    _, _, message, status = outcome
    return status if status is not None else message.split(": ")[1]


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize(("sync_name", "async_name"), TWINS, ids=[t[0] for t in TWINS])
def test_twins_agree_in_every_scenario(sync_name: str, async_name: str, scenario: str) -> None:
    sync_calls: list[Call] = []
    sync_bodies: list[Any] = []
    resumer = _sync_resumer(sync_calls, scenario, sync_bodies)
    try:
        sync_outcome = _outcome(lambda: _call(resumer, sync_name))
    finally:
        resumer.close()
    async_calls: list[Call] = []
    async_bodies: list[Any] = []
    async_outcome = _outcome(lambda: _run_async(async_calls, async_name, scenario, async_bodies))
    assert async_calls == sync_calls
    assert async_bodies == sync_bodies
    assert async_outcome == sync_outcome
    assert _short(sync_outcome) == EXPECTED[scenario][sync_name]
