"""sweep: find interrupted threads in the agent's checkpointer (SQLite, PostgreSQL) and send
them, once, however often and on however many replicas it runs."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from bridge_agents import calls, documented_agent, script
from hitl_harness import Env
from langchain_core.messages import AIMessage, HumanMessage
from pg_support import PG_URL, require_postgres

USER = {"messages": [HumanMessage("Go.")]}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def saver(request: pytest.FixtureRequest, env: Env) -> Iterator[Any]:
    if request.param == "sqlite":
        from langgraph.checkpoint.sqlite import SqliteSaver

        conn = sqlite3.connect(env.tmp_path / "checkpoints.db", check_same_thread=False)
        yield SqliteSaver(conn)
        conn.close()
        return
    require_postgres()
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row

    schema = f"bridge_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    conn = psycopg.connect(
        f"{PG_URL}?options=-csearch_path%3D{schema}",
        autocommit=True,
        prepare_threshold=0,
        row_factory=dict_row,
    )
    try:
        pg = PostgresSaver(conn)  # type: ignore[arg-type]
        pg.setup()
        yield pg
    finally:
        conn.close()
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def _agent(saver: Any, effects: list[str], *turns: Any) -> Any:
    return documented_agent(script(*turns), effects, saver)


def test_sweep_sends_every_interrupted_thread_once(env: Env, saver: Any) -> None:
    effects: list[str] = []
    two = calls(
        ("write_file", {"filename": "a", "content": "1"}),
        ("execute_sql", {"query": "UPDATE t"}),
    )
    # Three threads: two waiting on a review (one with two actions), one finished.
    _agent(saver, effects, two).invoke(USER, {"configurable": {"thread_id": "s1"}})
    one = calls(("execute_sql", {"query": "DELETE x"}))
    _agent(saver, effects, one).invoke(USER, {"configurable": {"thread_id": "s2"}})
    _agent(saver, effects).invoke(USER, {"configurable": {"thread_id": "s3"}})

    # Another process, started later: a fresh agent object over the same checkpointer.
    agent = _agent(saver, effects, *[AIMessage("All done.")] * 3)
    bridge = env.keeper.bridge(agent)
    rows = bridge.sweep()
    assert sorted(r.thread_id or "" for r in rows) == ["s1", "s1", "s2"]
    assert len(env.requests()) == 3

    # Repeated, and by three replicas at once: still one request per action.
    replicas = [env.keeper.bridge(_agent(saver, effects)) for _ in range(3)]
    errors: list[BaseException] = []

    def run(b: Any) -> None:
        try:
            b.sweep()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(b,)) for b in replicas]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    assert len(bridge.sweep()) == 3
    assert len(env.requests()) == 3

    dispatcher = env.keeper.dispatcher(bridge.resumer)
    for row in rows:
        assert row.request_id is not None
        env.hitl.reviewer.respond(row.request_id, "approve")  # one tap, whatever the tool
    delivered = dispatcher.poll_once()
    assert len(delivered) == 3
    assert sorted(effects) == ["execute_sql DELETE x", "execute_sql UPDATE t", "write_file a 1"]
    for thread in ("s1", "s2", "s3"):
        assert not agent.get_state({"configurable": {"thread_id": thread}}).next
    assert bridge.sweep() == []


def test_a_create_in_flight_on_another_replica_is_left_to_it(env: Env, tmp_path: Any) -> None:
    """A young intent row written by another replica is not created again; once it is old
    (that replica crashed), the next sweep reconciles and creates exactly one request."""
    from langgraph.checkpoint.memory import InMemorySaver

    effects: list[str] = []
    agent = _agent(InMemorySaver(), effects, calls(("execute_sql", {"query": "DELETE x"})))
    cfg: dict[str, Any] = {"configurable": {"thread_id": "in-flight"}}
    agent.invoke(USER, cfg)
    bridge = env.keeper.bridge(agent)
    (item,) = bridge.pending(cfg)
    spec = bridge.spec(item.action)
    env.ledger.record_intent(  # what another replica's create path writes first
        item.key,
        now=env.clock(),
        thread_id=item.thread_id,
        checkpoint_ns=item.checkpoint_ns,
        loop_id=env.hitl.loop_id,
        args_hash=spec.spec_hash(),
        payload={},
    )
    (row,) = bridge.submit(cfg)
    assert row.state == "intent" and env.requests() == []
    env.clock.advance(61)
    (row,) = bridge.submit(cfg)
    assert row.state == "pending" and len(env.requests()) == 1
    assert len(bridge.submit(cfg)) == 1 and len(env.requests()) == 1


def test_replicas_racing_on_brand_new_interrupts_create_one_request_each(env: Env) -> None:
    """Replicas released by a barrier onto the same brand-new interrupts: the decision to
    leave an intent to its writer is taken after the ledger's compare-and-set, so no two can
    both create (before, 4 replicas over 5 actions made 6–9 requests in about half the runs)."""
    from langgraph.checkpoint.memory import InMemorySaver

    saver = InMemorySaver()
    effects: list[str] = []
    rounds, actions, replicas = 6, 5, 4
    errors: list[BaseException] = []
    for round_ in range(rounds):
        for i in range(actions):
            one = calls(("execute_sql", {"query": f"DELETE r{round_}a{i}"}))
            thread = {"configurable": {"thread_id": f"race-{round_}-{i}"}}
            _agent(saver, effects, one).invoke(USER, thread)
        bridges = [env.keeper.bridge(_agent(saver, effects)) for _ in range(replicas)]
        barrier = threading.Barrier(replicas)

        def run(b: Any, gate: threading.Barrier = barrier) -> None:
            try:
                gate.wait()
                b.sweep()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        workers = [threading.Thread(target=run, args=(b,)) for b in bridges]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert errors == []
        assert len(env.requests()) == actions * (round_ + 1), f"round {round_}"
    # Every action has its request, none twice.
    texts = [r.request_text or "" for r in env.requests()]
    assert len(texts) == rounds * actions
