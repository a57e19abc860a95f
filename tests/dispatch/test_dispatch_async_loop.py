"""W5: the async paths never block the event loop, even when every ledger call is slow.

A ticker task measures how long the loop goes without running it while an async graph
reviews with ``areview``, a dispatcher resolves through ``aresolve`` (fetch, record, claim,
``aresume`` into the node replaying ``areview``, complete) and a blocking ``areview`` collects
an already recorded decision. Every ledger call sleeps 0.2 s: one of them on the loop shows
up as a gap of at least that much. Before the fix ``areview`` read the ledger on the loop
(``_trusted`` on resume, ``_register`` in blocking mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import pytest
from hitl_harness import Env, make_env
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph

from hitl_agent.gate import ReviewTimeoutError
from hitl_agent.langgraph import GraphResumer
from hitl_agent.ledger import SqliteLedger

DELAY = 0.2


class SlowLedger(SqliteLedger):
    """Every read and transition takes ``DELAY`` seconds while ``slow`` is set."""

    slow = False

    def __getattribute__(self, name: str) -> Any:
        attr = super().__getattribute__(name)
        if name in _SLOW and type(self).slow:

            def slowed(*args: Any, **kwargs: Any) -> Any:
                time.sleep(DELAY)
                return attr(*args, **kwargs)

            return slowed
        return attr


_SLOW = {
    "get",
    "get_by_request_id",
    "list_open",
    "list_task",
    "record_intent",
    "mark_created",
    "record_decision",
    "claim",
    "renew",
    "release",
    "complete",
}


@pytest.fixture
def slow_env(tmp_path: Path) -> Iterator[Env]:
    ledger = SlowLedger(tmp_path / "slow.db")
    ledger.setup()
    try:
        with contextlib.contextmanager(make_env)(tmp_path, ledger=ledger) as env:
            env.extra["ledger"] = ledger
            yield env
    finally:
        SlowLedger.slow = False
        ledger.close()


class S(TypedDict, total=False):
    outcome: str


def test_async_review_and_resolve_never_block_the_loop(slow_env: Env) -> None:
    env = slow_env
    keeper = env.keeper
    effects: list[str] = []

    async def node(state: S) -> dict[str, Any]:
        decision = await keeper.areview("Async deploy?")
        if decision.approved:
            effects.append("deploy")
        return {"outcome": decision.outcome}

    builder = StateGraph(S)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    graph = builder.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "w5"}}
    gaps: list[float] = []

    async def ticker(stop: asyncio.Event) -> None:
        while not stop.is_set():
            start = time.monotonic()
            await asyncio.sleep(0.01)
            gaps.append(time.monotonic() - start)

    async def main() -> None:
        stop = asyncio.Event()
        tick = asyncio.create_task(ticker(stop))
        SlowLedger.slow = True
        try:
            await graph.ainvoke({}, config)
            ids = await asyncio.to_thread(lambda: [r.id for r in env.requests()])
            await asyncio.to_thread(env.hitl.reviewer.respond, ids[0], True)
            dispatcher = keeper.dispatcher(GraphResumer(graph))
            delivered = await dispatcher.aresolve(ids[0])
            assert [d.outcome for d in delivered] == ["approved"]

            # Blocking mode: the first wait times out, the answer is recorded by a sweep,
            # a second wait with the same key collects it (the claim and delivery included).
            with pytest.raises(ReviewTimeoutError):
                await keeper.areview("Blocking deploy?", key="w5-block", wait_timeout=0.05)
            row = await asyncio.to_thread(keeper.ledger.get, "w5-block")
            assert row is not None and row.request_id is not None
            await asyncio.to_thread(env.hitl.reviewer.respond, row.request_id, True)
            blocking = keeper.dispatcher()
            await blocking.aresolve(row.request_id)
            second = await keeper.areview("Blocking deploy?", key="w5-block", wait_timeout=30)
            assert second.approved
        finally:
            SlowLedger.slow = False
            stop.set()
            await tick

    asyncio.run(main())
    assert effects == ["deploy"]
    assert gaps, "the ticker never ran"
    print(f"W5: longest event-loop gap {max(gaps):.3f} s over {len(gaps)} ticks")
    assert max(gaps) < DELAY * 0.75, f"the loop was blocked for {max(gaps):.2f} s"
