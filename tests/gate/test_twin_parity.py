"""The gate's sync and async twins stay twins (issue 18): the same scenario through both gives
the same ledger rows, the same log lines and the same exceptions.

* ``ensure_request`` / ``aensure_request`` (with an ``AsyncHITLClient``, so the async path
  really runs, not the sync one in a thread): a fresh create, a create whose response was
  lost after the server acted (reconciled by the next call), one that never reached the server
  (created by the next call), a refused one, and a key reused for another question. Before
  the fix ``_areconcile`` found the request without the ``reconciled`` line ``_reconcile``
  logs.
* ``Gatekeeper.review`` / ``areview`` inside a graph node: the decision, the row and the
  ledger reads of the first run and of the replay. Before the fix ``areview`` read the row a
  second time (by request id) on every run, where ``review`` reuses the one
  ``ensure_request`` read; and a decision recorded after that read is still found by both.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, cast

import httpx
import httpx2
import pytest
from hitl_harness import SECRET, Env, count_ledger_reads
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.types import Command

from hitl_agent import AsyncHITLClient, HITLClient
from hitl_agent._hooks import set_hook
from hitl_agent.decision import Decision
from hitl_agent.gate import CreateTarget, ReviewSpec, aensure_request, ensure_request
from hitl_agent.langgraph import GraphResumer
from hitl_agent.ledger import SqliteLedger
from hitl_agent.protocol import DECISIONS_KEY
from hitl_agent.testing import FakeClock, alocal_hitl, local_hitl

QUESTION = "Refund $40 to order 1234?"

# -- ensure_request / aensure_request ------------------------------------------------------


class _Faults:
    """Wraps the local server's HTTP client: ``lose`` drops the next create's response after
    the server acted on it, ``drop`` fails the next create before it reaches the server (a
    read error: the client cannot tell), ``refuse`` answers it 400 without the server."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.next: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _before(self, request: Any) -> Any:
        stack = httpx2 if isinstance(request, httpx2.Request) else httpx
        fault = self.next if request.method == "POST" else None
        if fault == "drop":
            self.next = None
            raise stack.ReadError("connection reset", request=request)
        if fault == "refuse":
            self.next = None
            body = {"error": True, "msg": "No active members found"}
            return stack.Response(400, json=body, request=request)
        return None

    def _after(self, request: Any) -> None:
        if self.next == "lose" and request.method == "POST":
            self.next = None
            stack = httpx2 if isinstance(request, httpx2.Request) else httpx
            raise stack.ReadError("connection reset after the server answered", request=request)

    def send(self, request: Any, **kwargs: Any) -> Any:
        refused = self._before(request)
        if refused is not None:
            return refused
        response = self.inner.send(request, **kwargs)
        self._after(request)
        return response


class _AsyncFaults(_Faults):
    async def send(self, request: Any, **kwargs: Any) -> Any:
        refused = self._before(request)
        if refused is not None:
            return refused
        response = await self.inner.send(request, **kwargs)
        self._after(request)
        return response


@dataclass(frozen=True)
class Step:
    """One call: the key, the question, and the fault its create meets (None: none)."""

    key: str
    question: str = QUESTION
    fault: str | None = None


SCENARIOS: dict[str, list[Step]] = {
    "fresh create": [Step("k1")],
    "response lost, the next call reconciles": [Step("k1", fault="lose"), Step("k1")],
    "never arrived, the next call creates": [Step("k1", fault="drop"), Step("k1")],
    "refused": [Step("k1", fault="refuse"), Step("k1")],
    "same key, another question": [Step("k1"), Step("k1", question="Refund $99?")],
    "two keys": [Step("k1"), Step("k2", fault="lose"), Step("k2"), Step("k1")],
}


@dataclass
class Outcome:
    """What a scenario left: one entry per step, the rows, the gate's log lines."""

    steps: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    logs: list[tuple[str, str, str]] = field(default_factory=list)


class _Names:
    """Replaces run-specific ids (request ids, the loop id) by stable names."""

    def __init__(self, loop_id: str) -> None:
        self.names: dict[str, str] = {loop_id: "<loop>"}

    def learn(self, request_ids: list[str]) -> None:
        for request_id in reversed(request_ids):  # listed newest first
            self.names.setdefault(request_id, f"<request {len(self.names)}>")

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            for raw, name in self.names.items():
                value = value.replace(raw, name)
            return value
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        return value


def _target(ledger: SqliteLedger, loop_id: str, clock: FakeClock) -> CreateTarget:
    return CreateTarget(
        ledger=ledger,
        loop_id=loop_id,
        callback_url="http://app.test/hitl",
        callback_secret=SECRET,
        clock=clock,
    )


def _step_result(row: Any = None, error: BaseException | None = None) -> str:
    if error is not None:
        return f"raised {type(error).__name__}: {error}"
    return f"row {row.key} {row.state} {row.request_id}"


def _finish(
    outcome: Outcome,
    ledger: SqliteLedger,
    steps: list[Step],
    names: _Names,
    records: list[logging.LogRecord],
) -> Outcome:
    for key in dict.fromkeys(step.key for step in steps):
        row = ledger.get(key)
        outcome.rows.append(dataclasses.asdict(row) if row is not None else {"key": key})
    outcome.steps = names(outcome.steps)
    outcome.rows = names(outcome.rows)
    outcome.logs = [
        (r.name, r.levelname, names(r.getMessage()))
        for r in records
        if r.name.startswith("hitl_agent")
    ]
    return outcome


def _run_sync(tmp_path: Path, steps: list[Step], caplog: pytest.LogCaptureFixture) -> Outcome:
    caplog.clear()
    clock = FakeClock()
    outcome = Outcome()
    with local_hitl(clock=clock) as hitl:
        ledger = SqliteLedger(tmp_path / "sync.db")
        ledger.setup()
        faults = _Faults(hitl.http)
        client = HITLClient(
            hitl.api_key, base_url=hitl.base_url, http_client=cast(httpx2.Client, faults)
        )
        target = _target(ledger, hitl.loop_id, clock)
        try:
            for step in steps:
                faults.next = step.fault
                try:
                    row = ensure_request(target, client, step.key, ReviewSpec.build(step.question))
                    outcome.steps.append(_step_result(row))
                except Exception as exc:
                    outcome.steps.append(_step_result(error=exc))
                clock.advance(30)
            records = list(caplog.records)  # before the listing below logs its own call
            names = _Names(hitl.loop_id)
            names.learn([r.id for r in hitl.client.requests.iter(loop_id=hitl.loop_id)])
            return _finish(outcome, ledger, steps, names, records)
        finally:
            ledger.close()


def _run_async(tmp_path: Path, steps: list[Step], caplog: pytest.LogCaptureFixture) -> Outcome:
    caplog.clear()

    async def main() -> Outcome:
        clock = FakeClock()
        outcome = Outcome()
        async with alocal_hitl(clock=clock) as hitl:
            ledger = SqliteLedger(tmp_path / "async.db")
            ledger.setup()
            faults = _AsyncFaults(hitl.http)
            client = AsyncHITLClient(
                hitl.api_key, base_url=hitl.base_url, http_client=cast(httpx2.AsyncClient, faults)
            )
            target = _target(ledger, hitl.loop_id, clock)
            try:
                for step in steps:
                    faults.next = step.fault
                    spec = ReviewSpec.build(step.question)
                    try:
                        row = await aensure_request(target, client, step.key, spec)
                        outcome.steps.append(_step_result(row))
                    except Exception as exc:
                        outcome.steps.append(_step_result(error=exc))
                    clock.advance(30)
                records = list(caplog.records)
                names = _Names(hitl.loop_id)
                names.learn([r.id async for r in hitl.client.requests.iter(loop_id=hitl.loop_id)])
                return _finish(outcome, ledger, steps, names, records)
            finally:
                ledger.close()

    return asyncio.run(main())


@pytest.fixture
def gate_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG, logger="hitl_agent"):
        yield caplog


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_ensure_request_twins_leave_the_same_rows_logs_and_errors(
    tmp_path: Path, gate_logs: pytest.LogCaptureFixture, scenario: str
) -> None:
    steps = SCENARIOS[scenario]
    sync = _run_sync(tmp_path, steps, gate_logs)
    async_ = _run_async(tmp_path, steps, gate_logs)
    assert async_.steps == sync.steps
    assert async_.rows == sync.rows
    assert async_.logs == sync.logs


def test_both_reconciles_log_the_request_they_found(
    tmp_path: Path, gate_logs: pytest.LogCaptureFixture
) -> None:
    """The regression of issue 18 in one line: ``_areconcile`` logged nothing."""
    steps = SCENARIOS["response lost, the next call reconciles"]
    for run in (_run_sync, _run_async):
        outcome = run(tmp_path, steps, gate_logs)
        assert ("hitl_agent.gate", "INFO", "reconciled key=k1 request_id=<request 1>") in (
            outcome.logs
        ), run.__name__
        assert outcome.steps[-1] == "row k1 pending <request 1>"


# -- Gatekeeper.review / areview in a graph node ---------------------------------------------


class _S(TypedDict, total=False):
    outcome: str


def _graph(env: Env, asynchronous: bool, in_node: list[bool]) -> Any:
    def ask() -> None:
        in_node.append(True)

    def record(decision: Decision) -> dict[str, Any]:
        in_node.clear()
        return {"outcome": decision.outcome}

    def node(state: _S) -> dict[str, Any]:
        ask()
        try:
            return record(env.keeper.review(QUESTION))
        finally:
            in_node.clear()

    async def anode(state: _S) -> dict[str, Any]:
        ask()
        try:
            return record(await env.keeper.areview(QUESTION))
        finally:
            in_node.clear()

    builder = StateGraph(_S)
    builder.add_node("gate", anode if asynchronous else node)
    builder.add_edge(START, "gate")
    return builder.compile(checkpointer=InMemorySaver())


def _invoke(graph: Any, value: Any, config: dict[str, Any], asynchronous: bool) -> Any:
    if asynchronous:
        return asyncio.run(graph.ainvoke(value, config))
    return graph.invoke(value, config)


def _row_shape(env: Env, request_id: str) -> tuple[str, str | None]:
    row = env.ledger.get_by_request_id(request_id)
    assert row is not None
    return row.state, (row.decision or {}).get("outcome")


def _review_through_dispatcher(
    env: Env, monkeypatch: pytest.MonkeyPatch, asynchronous: bool, answer: bool
) -> dict[str, Any]:
    in_node: list[bool] = []
    reads = count_ledger_reads(env, monkeypatch, in_node)
    graph = _graph(env, asynchronous, in_node)
    config = {"configurable": {"thread_id": f"parity-{asynchronous}-{answer}"}}
    before = {r.id for r in env.requests()}
    _invoke(graph, {}, config, asynchronous)
    (request_id,) = {r.id for r in env.requests()} - before
    first = list(reads)
    reads.clear()
    env.hitl.reviewer.respond(request_id, answer)
    dispatcher = env.keeper.dispatcher(GraphResumer(graph))
    if asynchronous:
        asyncio.run(dispatcher.apoll_once())
    else:
        dispatcher.poll_once()
    monkeypatch.undo()
    return {
        "first run reads": first,
        "replay reads": list(reads),
        "outcome": graph.get_state(config).values.get("outcome"),
        "row": _row_shape(env, request_id),
    }


@pytest.mark.parametrize("answer", [True, False])
def test_review_and_areview_read_and_decide_alike(
    env: Env, monkeypatch: pytest.MonkeyPatch, answer: bool
) -> None:
    sync = _review_through_dispatcher(env, monkeypatch, False, answer)
    async_ = _review_through_dispatcher(env, monkeypatch, True, answer)
    assert async_ == sync
    # The replay reads its row once (test_replay_cost): the decision comes from that row.
    assert sync["replay reads"] == ["get"]
    assert sync["outcome"] == ("approved" if answer else "rejected")


def _decide_meanwhile(env: Env, request_id: str) -> Callable[[str], None]:
    """A hook that records an approval right after the gate read its row (still pending)."""

    def hook(name: str) -> None:
        if name == "gate.before_interrupt":
            set_hook(None)
            decision = Decision(
                request_id=request_id,
                status="completed",
                outcome="approved",
                response_type="boolean",
                value=True,
            )
            assert env.ledger.record_decision(
                request_id, decision.model_dump(mode="json"), now=env.clock()
            )

    return hook


@pytest.mark.parametrize("asynchronous", [False, True], ids=["review", "areview"])
def test_a_decision_recorded_after_the_row_was_read_is_not_missed(
    env: Env, asynchronous: bool
) -> None:
    """The row ``ensure_request`` read has no decision; one is recorded before the interrupt
    returns (a resume by hand here). The gate reads the row again instead of failing closed."""
    graph = _graph(env, asynchronous, [])
    config = {"configurable": {"thread_id": f"meanwhile-{asynchronous}"}}
    _invoke(graph, {}, config, asynchronous)
    request_id = env.only_request_id()
    bundle = {
        DECISIONS_KEY: [
            Decision(
                request_id=request_id, status="completed", outcome="approved", value=True
            ).model_dump(mode="json")
        ]
    }
    set_hook(_decide_meanwhile(env, request_id))
    try:
        result = _invoke(graph, Command(resume=bundle), config, asynchronous)
    finally:
        set_hook(None)
    assert result == {"outcome": "approved"}
