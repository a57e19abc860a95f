"""C1: a resume killed after the gate's checkpoint is driven on by the next sweep, once.

Graph ``gate -> act`` (the ``review_node`` shape). The resume runs the gate's step (saved),
then the process dies inside ``act``: the interrupt is consumed, the thread sits at
``next=('act',)`` and the row stays ``resuming``. Before the fix every later sweep claimed the
row, found "not waiting" and released it: the approved action was lost. A restarted
dispatcher alone (no ``invoke(None)`` by anyone else) must finish the thread, exactly once,
and must still never drive a thread whose gate has not been passed (T15) or that started a
new turn since.

Every scenario runs through the sync and the async entry points (one resolve logic).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, TypedDict

import pytest
from hitl_harness import Env
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from hitl_agent._hooks import set_hook
from hitl_agent.decision import Decision
from hitl_agent.dispatch import Dispatcher
from hitl_agent.langgraph import GraphResumer, _resumer

LEASE = 300.0


class Kill(BaseException):
    """A SIGKILL inside the process: nothing below catches it, LangGraph saves nothing."""


class State(TypedDict, total=False):
    amount: int
    decision: dict[str, Any]
    done: bool


class Crashy:
    """``gate -> act``; ``act`` dies once when ``kill_in_act`` is set."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.effects: list[str] = []
        self.kill_in_act = False
        self.saver = InMemorySaver()

        def gate(state: State) -> dict[str, Any]:
            decision = env.keeper.review(
                f"Refund ${state['amount']}?",
                response_type="single_select",
                response_config={"options": ["Approve", "Reject"]},
                default_response="reject",
            )
            return {"decision": decision.model_dump(mode="json")}

        def act(state: State, config: RunnableConfig) -> dict[str, Any]:
            if self.kill_in_act:
                self.kill_in_act = False
                raise Kill("killed inside act")
            if Decision.model_validate(state["decision"]).approved:
                self.effects.append(f"refund {state['amount']}")
            return {"done": True}

        builder = StateGraph(State)
        builder.add_node("gate", gate)
        builder.add_node("act", act)
        builder.add_edge(START, "gate")
        builder.add_edge("gate", "act")
        builder.add_edge("act", END)
        self.graph = builder.compile(checkpointer=self.saver)

    def dispatcher(self) -> Dispatcher:
        """A freshly started worker: its own dispatcher and resolver (new owner id)."""
        return self.env.keeper.dispatcher(GraphResumer(self.graph))


@pytest.fixture(params=["sync", "async"])
def twin(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def sweep(dispatcher: Dispatcher, twin: str) -> list[Decision]:
    if twin == "sync":
        return dispatcher.poll_once()
    return asyncio.run(dispatcher.apoll_once())


def resolve(dispatcher: Dispatcher, twin: str, request_id: str) -> list[Decision]:
    if twin == "sync":
        return dispatcher.resolve(request_id)
    return asyncio.run(dispatcher.aresolve(request_id))


CONFIG: RunnableConfig = {"configurable": {"thread_id": "c1"}}


@pytest.fixture
def crashy(env: Env) -> Iterator[Crashy]:
    yield Crashy(env)


def _killed_resume(crashy: Crashy, twin: str) -> str:
    """Park, approve, and kill the resume inside ``act``; returns the request id."""
    env = crashy.env
    crashy.graph.invoke({"amount": 7}, CONFIG)
    request_id = env.only_request_id()
    env.hitl.reviewer.respond(request_id, "approve")
    crashy.kill_in_act = True
    with pytest.raises(Kill):
        sweep(crashy.dispatcher(), twin)
    snap = crashy.graph.get_state(CONFIG)
    assert snap.next == ("act",) and not snap.interrupts  # consumed, not finished
    row = env.ledger.get_by_request_id(request_id)
    assert row is not None and row.state == "resuming"  # the dead worker's claim
    return request_id


def test_a_resume_killed_in_the_next_node_is_finished_by_a_restarted_worker(
    crashy: Crashy, twin: str
) -> None:
    env = crashy.env
    request_id = _killed_resume(crashy, twin)
    assert crashy.effects == []

    restarted = crashy.dispatcher()
    assert sweep(restarted, twin) == []  # the dead worker's lease is still live
    assert crashy.graph.get_state(CONFIG).next == ("act",)

    env.clock.advance(LEASE + 1)
    delivered = sweep(restarted, twin)
    assert [d.request_id for d in delivered] == [request_id]
    assert crashy.effects == ["refund 7"]
    snap = crashy.graph.get_state(CONFIG)
    assert not snap.next and snap.values["done"] is True
    row = env.ledger.get_by_request_id(request_id)
    assert row is not None and row.state == "resumed"
    assert restarted.resolver.stats["proceeded"] == 1

    # Exactly once: later sweeps and duplicate callbacks change nothing.
    env.clock.advance(LEASE + 1)
    assert sweep(restarted, twin) == []
    assert resolve(crashy.dispatcher(), twin, request_id) == []
    assert crashy.effects == ["refund 7"]


def test_a_decision_recorded_before_its_interrupt_is_durable_is_not_driven_on(
    crashy: Crashy, twin: str
) -> None:
    """T15: the gate task is still current (no interrupt saved yet): never ``invoke(None)``."""
    env = crashy.env

    def die_before_interrupt(name: str) -> None:
        if name == "gate.before_interrupt":
            set_hook(None)
            raise Kill(name)

    set_hook(die_before_interrupt)
    try:
        with pytest.raises(Kill):
            crashy.graph.invoke({"amount": 3}, CONFIG)
    finally:
        set_hook(None)
    request_id = env.only_request_id()
    env.hitl.reviewer.respond(request_id, "approve")
    before = crashy.graph.get_state(CONFIG)
    assert before.next == ("gate",) and not before.interrupts

    dispatcher = crashy.dispatcher()
    for _ in range(3):
        assert sweep(dispatcher, twin) == []
        env.clock.advance(LEASE + 1)
    assert crashy.effects == []
    after = crashy.graph.get_state(CONFIG)
    assert after.config == before.config  # nothing ran: the same checkpoint
    row = env.ledger.get_by_request_id(request_id)
    assert row is not None and row.state == "decided"
    assert dispatcher.resolver.stats["proceeded"] == 0

    # The agent restarts its run, parks at the interrupt, and the next sweep resumes it.
    crashy.graph.invoke(None, CONFIG)
    assert crashy.graph.get_state(CONFIG).interrupts
    assert [d.request_id for d in sweep(dispatcher, twin)] == [request_id]
    assert crashy.effects == ["refund 3"]


def test_a_command_resume_run_writes_no_input_checkpoint(crashy: Crashy, twin: str) -> None:
    """What ``proceed`` relies on, asserted on the installed LangGraph: between the gate's
    checkpoint and the current one a resume run writes only ``loop`` checkpoints, and the
    gate's task is no longer current."""
    _killed_resume(crashy, twin)
    snap = crashy.graph.get_state(CONFIG)
    history = list(crashy.graph.get_state_history(CONFIG))
    sources = [(h.metadata or {}).get("source") for h in history]
    names = [[task.name for task in h.tasks] for h in history]
    assert sources == ["loop", "loop", "input"]
    assert names == [["act"], ["gate"], ["__start__"]]
    row = crashy.env.ledger.list_open()[0]
    gate_task = history[1].tasks[0]
    assert row.checkpoint_ns == f"gate:{gate_task.id}"
    assert all(task.id != gate_task.id for task in snap.tasks)
    assert _resumer.consumed_gate(snap, history, row) == "run"


def test_a_new_turn_since_the_gate_is_never_driven_on(
    crashy: Crashy, twin: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A message sent to the thread after the crash starts a new turn (an ``input``
    checkpoint): the old decision must not drive the new run on; its row is closed, and
    the dropped approval is logged."""
    request_id = _killed_resume(crashy, twin)
    row = crashy.env.ledger.get_by_request_id(request_id)
    assert row is not None
    # The new turn discards the pending ``act`` and parks at a new gate task.
    crashy.graph.invoke({"amount": 8}, CONFIG)
    snap = crashy.graph.get_state(CONFIG, subgraphs=True)
    history = list(crashy.graph.get_state_history(CONFIG))
    assert (history[1].metadata or {}).get("source") == "input"
    assert _resumer.consumed_gate(snap, history, row) == "abandoned"
    # Also at the moment the new turn's input is all that is saved.
    at_input = crashy.graph.get_state(history[1].config)
    assert _resumer.consumed_gate(at_input, history[1:], row) == "abandoned"
    # A thread that never had the row's task.
    other = crashy.graph.get_state({"configurable": {"thread_id": "never"}})
    assert _resumer.consumed_gate(other, [], row) == "no"

    crashy.env.clock.advance(LEASE + 1)
    dispatcher = crashy.dispatcher()
    with caplog.at_level("WARNING", logger="hitl_agent.dispatch"):
        sweep(dispatcher, twin)
    assert crashy.effects == []
    assert dispatcher.resolver.stats["proceeded"] == 0
    closed = crashy.env.ledger.get_by_request_id(request_id)
    assert closed is not None and closed.state == "resumed"
    assert dispatcher.resolver.stats["finished_elsewhere"] == 1
    assert request_id in caplog.text and "not delivered" in caplog.text


# -- the remote resumer: the same rule over the LangGraph Server API ---------------------


def _thread_state(snapshot: Any) -> dict[str, Any]:
    """A StateSnapshot as the LangGraph Server's ThreadState JSON (the fields it serves)."""

    def checkpoint(config: Any) -> dict[str, Any] | None:
        if not config:
            return None
        return {"checkpoint_id": config["configurable"]["checkpoint_id"], "checkpoint_ns": ""}

    return {
        "values": snapshot.values,
        "next": list(snapshot.next),
        "checkpoint": checkpoint(snapshot.config),
        "parent_checkpoint": checkpoint(snapshot.parent_config),
        "metadata": dict(snapshot.metadata or {}),
        "created_at": snapshot.created_at,
        "tasks": [
            {
                "id": task.id,
                "name": task.name,
                "path": list(task.path),
                "error": None,
                "interrupts": [{"id": i.id, "value": i.value} for i in task.interrupts],
                "state": None,
                "result": task.result,
            }
            for task in snapshot.tasks
        ],
    }


class FakeServer:
    """``/threads/{id}/state``, ``/history`` and ``/runs/wait`` served from a local graph."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.runs: list[dict[str, Any]] = []

    def __call__(self, request: Any) -> Any:
        import json

        import httpx

        parts = request.url.path.strip("/").split("/")
        config: RunnableConfig = {"configurable": {"thread_id": parts[1]}}
        if parts[2] == "state":
            return httpx.Response(200, json=_thread_state(self.graph.get_state(config)))
        if parts[2] == "history":
            limit = json.loads(request.content)["limit"]
            history = list(self.graph.get_state_history(config, limit=limit))
            return httpx.Response(200, json=[_thread_state(s) for s in history])
        if parts[2:] == ["runs", "wait"]:
            body = json.loads(request.content)
            self.runs.append(body)
            assert body.get("input") is None and "command" not in body
            values = self.graph.invoke(None, config)
            return httpx.Response(200, json=values)
        return httpx.Response(404, json={"detail": "not found"})


def _remote(graph: Any) -> tuple[Any, FakeServer]:
    import httpx
    from langgraph_sdk.client import SyncLangGraphClient

    from hitl_agent.langgraph import RemoteGraphResumer

    server = FakeServer(graph)
    http = httpx.Client(transport=httpx.MockTransport(server), base_url="http://lg.test")
    resumer = RemoteGraphResumer(
        "http://lg.test", "agent", client=SyncLangGraphClient(http), api_key="unused"
    )
    return resumer, server


def test_the_remote_resumer_drives_on_a_consumed_thread_with_one_inputless_run(
    crashy: Crashy,
) -> None:
    request_id = _killed_resume(crashy, "sync")
    row = crashy.env.ledger.get_by_request_id(request_id)
    assert row is not None
    resumer, server = _remote(crashy.graph)
    assert resumer.resume(row, []) is False  # nothing waits any more
    assert resumer.proceed(row) is True
    assert crashy.effects == ["refund 7"]
    assert [(r["multitask_strategy"], r["if_not_exists"]) for r in server.runs] == [
        ("reject", "reject")
    ]
    # Finished now: another proceed creates no run.
    assert resumer.proceed(row) is False
    assert len(server.runs) == 1


def test_the_remote_resumer_refuses_a_gate_that_has_not_been_passed(crashy: Crashy) -> None:
    def die_before_interrupt(name: str) -> None:
        if name == "gate.before_interrupt":
            set_hook(None)
            raise Kill(name)

    set_hook(die_before_interrupt)
    try:
        with pytest.raises(Kill):
            crashy.graph.invoke({"amount": 3}, CONFIG)
    finally:
        set_hook(None)
    row = crashy.env.ledger.list_open()[0]
    resumer, server = _remote(crashy.graph)
    assert resumer.proceed(row) is False
    assert server.runs == [] and crashy.effects == []
