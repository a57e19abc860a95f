"""A decided row whose thread finished without it is closed, not re-checked forever.

The crash matrix (T1) found these rows: a crash between a resume and its ledger write leaves
the thread finished and the row ``decided`` (after the lease), and every later sweep asked the
graph again.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest
from hitl_harness import make_env, refund_graph, sqlite_saver
from langgraph.checkpoint.memory import InMemorySaver

from hitl_agent import ConfigError
from hitl_agent._hooks import set_hook
from hitl_agent.langgraph import GraphResumer, RemoteGraphResumer
from hitl_agent.ledger import ReviewRecord


class _Crash(Exception):
    pass


def _crash_at(point: str) -> None:
    def hook(name: str) -> None:
        if name == point:
            set_hook(None)  # once
            raise _Crash(name)

    set_hook(hook)


def test_row_of_a_thread_that_finished_after_the_decision_is_closed(tmp_path: Path) -> None:
    effects: list[str] = []
    with contextlib.contextmanager(make_env)(tmp_path, clock=time.time) as env:
        conn, saver = sqlite_saver(tmp_path / "cp.db")
        try:
            graph = refund_graph(env, saver, effects)
            config = {"configurable": {"thread_id": "t"}}
            graph.invoke({"amount": 1}, config)
            request_id = env.only_request_id()
            env.hitl.reviewer.respond(request_id, "approve")
            dispatcher = env.keeper.dispatcher(GraphResumer(graph))

            _crash_at("resolver.after_resume")  # the resume ran; its ledger write did not
            try:
                assert dispatcher.poll_once() == []
            finally:
                set_hook(None)
            assert effects == ["refund 1"]
            assert not graph.get_state(config).next
            row = env.ledger.get_by_request_id(request_id)
            assert row is not None and row.state == "decided"

            assert dispatcher.poll_once() == []  # nothing to deliver: the row is closed

            row = env.ledger.get_by_request_id(request_id)
            assert row is not None and row.state == "resumed"
            assert dispatcher.resolver.stats["finished_elsewhere"] == 1
            assert effects == ["refund 1"]
        finally:
            conn.close()


def test_finished_needs_a_finished_thread_newer_than_the_decision(tmp_path: Path) -> None:
    effects: list[str] = []
    with contextlib.contextmanager(make_env)(tmp_path, clock=time.time) as env:
        graph = refund_graph(env, InMemorySaver(), effects)
        resumer = GraphResumer(graph)

        def row(thread_id: str, decided_at: float | None) -> ReviewRecord:
            return ReviewRecord(
                key="k", state="decided", thread_id=thread_id, checkpoint_ns="gate:x",
                decided_at=decided_at,
            )  # fmt: skip

        graph.invoke({"amount": 2}, {"configurable": {"thread_id": "waiting"}})
        assert resumer.finished(row("waiting", 0.0)) is False  # interrupted: still running
        assert resumer.finished(row("unknown", 0.0)) is False  # may not be durable yet (T15)

        env.hitl.reviewer.respond(env.only_request_id(), "reject")
        env.keeper.dispatcher(resumer).poll_once()
        assert not graph.get_state({"configurable": {"thread_id": "waiting"}}).next
        assert resumer.finished(row("waiting", time.time() - 60)) is True
        # A finished checkpoint older than the decision may be a previous turn while a new
        # one runs unsaved (async or exit durability): not finished.
        assert resumer.finished(row("waiting", time.time() + 60)) is False
        assert resumer.finished(row("waiting", None)) is False


def test_resumes_refuse_exit_durability() -> None:
    graph = object()  # the check happens before the graph is used
    with pytest.raises(ConfigError) as caught:
        GraphResumer(graph, durability="exit")  # type: ignore[arg-type]
    assert caught.value.field == "durability"
    assert "sync" in caught.value.fix
    with pytest.raises(ConfigError):
        RemoteGraphResumer("http://127.0.0.1:1", "agent", durability="exit")  # type: ignore[arg-type]
    assert GraphResumer(graph, durability="async").durability == "async"
