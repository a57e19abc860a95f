"""M6: double texting. Two runs of one thread at once reach the same gate in two tasks.

Before the fix each run created its own request (2 requests in 50/50 trials); after both were
approved one action ran and the other approval was silently dropped. Now the gate's slot is
claimed before the POST: the second run reuses the first run's open request (same question),
so the reviewer sees one request and one action runs, whichever run's branch LangGraph keeps.
A newer run that asks a *different* question supersedes the open request: it is cancelled
(refund) and its row says why, never silently.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hitl_harness import Env, make_env, refund_graph, sqlite_saver

from hitl_agent.dispatch import CallBudget
from hitl_agent.gate import CONTEXT_KEY
from hitl_agent.langgraph import GraphResumer

TRIALS = 50


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    """The local server has no quota; 50 trials' sweeps would spend the default 90/h."""
    with contextlib.contextmanager(make_env)(tmp_path, budget=CallBudget(limit=10**6)) as made:
        yield made


def requests_of(env: Env, thread_id: str) -> list[Any]:
    prefix = f"lg|{thread_id}|"
    return [
        r
        for r in env.requests()
        if str(((r.context or {}).get(CONTEXT_KEY) or {}).get("key", "")).startswith(prefix)
    ]


def test_two_runs_of_one_thread_at_once_make_one_request_and_one_action(env: Env) -> None:
    conn, saver = sqlite_saver(env.tmp_path / "cp.db")
    effects: list[str] = []
    rng = random.Random(20240917)
    counts: Counter[str] = Counter()
    try:
        graph = refund_graph(env, saver, effects)
        dispatcher = env.keeper.dispatcher(GraphResumer(graph))
        for trial in range(TRIALS):
            thread_id = f"dt-{trial}"
            config = {"configurable": {"thread_id": thread_id}}
            barrier = threading.Barrier(2)
            errors: list[BaseException] = []
            jitter = [rng.uniform(0, 0.003) for _ in range(2)]

            def run(
                delay: float, config: Any = config, barrier: Any = barrier, errors: Any = errors
            ) -> None:
                barrier.wait()
                threading.Event().wait(delay)
                try:
                    graph.invoke({"amount": 1}, config)
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)

            runs = [threading.Thread(target=run, args=(d,)) for d in jitter]
            for t in runs:
                t.start()
            for t in runs:
                t.join(30)
            assert not errors, errors
            before = len(effects)
            created = requests_of(env, thread_id)
            counts["requests"] += len(created)
            counts["trials_with_2_requests"] += len(created) > 1
            for request in created:
                if request.status == "pending":
                    env.hitl.reviewer.respond(request.id, "approve")
            for _ in range(3):
                dispatcher.poll_once()
                if not graph.get_state(config).next:
                    break
            ran = len(effects) - before
            counts["actions"] += ran
            counts["lost"] += ran == 0
            counts["duplicated"] += ran > 1
            open_rows = [
                row
                for row in env.ledger.list_open()
                if row.thread_id == thread_id and row.request_id
            ]
            counts["rows_left_open"] += len(open_rows)
    finally:
        conn.close()
    print(f"M6 double texting, {TRIALS} trials: {dict(counts)}")
    assert counts["requests"] == TRIALS, counts
    assert counts["actions"] == TRIALS and counts["lost"] == counts["duplicated"] == 0, counts
    assert counts["rows_left_open"] == 0, counts


def test_a_newer_run_with_another_question_cancels_the_open_request(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """The user sends a new message while the first review waits: the old request is
    cancelled on the server, its row is decided ``cancelled`` with the reason, and a warning
    names it. The new question is asked once and its approval runs once."""
    conn, saver = sqlite_saver(env.tmp_path / "cp.db")
    effects: list[str] = []
    try:
        graph = refund_graph(env, saver, effects)
        config = {"configurable": {"thread_id": "resend"}}
        graph.invoke({"amount": 1}, config)
        (first,) = requests_of(env, "resend")
        with caplog.at_level("WARNING", logger="hitl_agent.gate"):
            graph.invoke({"amount": 2}, config)  # a new message: a new turn, same gate
        by_id = {r.id: r for r in requests_of(env, "resend")}
        assert len(by_id) == 2
        assert by_id[first.id].status == "cancelled"
        row = env.ledger.get_by_request_id(first.id)
        assert row is not None and row.decision is not None
        assert row.decision["outcome"] == "cancelled"
        assert "Superseded" in row.decision["reason"]
        assert first.id in caplog.text and "superseded" in caplog.text
        (second,) = [r for r in by_id.values() if r.id != first.id]
        assert second.status == "pending"

        env.hitl.reviewer.respond(second.id, "approve")
        dispatcher = env.keeper.dispatcher(GraphResumer(graph))
        dispatcher.poll_once()
        assert effects == ["refund 2"]
        dispatcher.poll_once()  # the superseded row is closed, not retried forever
        assert [r.request_id for r in env.ledger.list_open()] == []
    finally:
        conn.close()


def test_a_stuck_or_refused_winner_does_not_hold_the_other_run(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The slot's winner died mid-create (intent forever) or its create was refused (its row
    discarded): the other run stops waiting and asks on its own, once."""
    from hitl_agent.gate import _create

    monkeypatch.setattr(_create, "_SLOT_WAIT", 0.1)
    target = env.keeper._target
    ledger = env.ledger

    def intent(task: str) -> Any:
        ns = f"gate:{task}"
        row, inserted = ledger.record_intent(
            f"lg|t|{ns}|node|0", now=env.clock(), thread_id="t", checkpoint_ns=ns, args_hash="h"
        )
        assert inserted
        return row

    def no_cancel(request_id: str) -> Any:
        raise AssertionError("the same question never cancels")

    winner = intent("aaa")
    assert _create.join_slot(target, no_cancel, winner) is None  # it owns the slot
    other = intent("bbb")
    started = time.monotonic()
    assert _create.join_slot(target, no_cancel, other) is None  # stuck winner: ask alone
    assert time.monotonic() - started < 5
    assert ledger.get(other.key) == other  # still its own intent, not an alias

    # A refused winner's row is gone: the next run takes the next turn of the slot.
    assert ledger.discard_intent(winner.key)
    third = intent("ccc")
    assert _create.join_slot(target, no_cancel, third) is None
    claims = ledger.list_slot_claims("t", "hitl-slot:gate|node|0")
    assert sorted(c.key.rsplit("|", 1)[1] for c in claims) == ["0", "1"]
    # Slot claims have their own table: the poller (list_open) never sees them.
    assert not [row for row in ledger.list_open() if row.key in {c.key for c in claims}]
    assert ledger.list_task("t", "hitl-slot:gate|node|0") == []


def test_a_crash_while_aliasing_is_healed_by_the_replay(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The losing run dies between discarding its intent and recording its alias: its replay
    records its intent again, joins the slot again and reuses the same open request."""
    from hitl_agent.gate import ReviewSpec, _create

    target, ledger = env.keeper._target, env.ledger
    spec = ReviewSpec.build("Refund $1?")

    def gate(task: str) -> str:
        return f"lg|t|gate:{task}|node|0"

    winner = _create.ensure_request(
        target, env.keeper.client, gate("aaa"), spec, thread_id="t", checkpoint_ns="gate:aaa"
    )
    assert winner.request_id is not None

    def dies(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("killed")

    with monkeypatch.context() as patch:
        patch.setattr(ledger, "record_alias", dies)
        with pytest.raises(RuntimeError, match="killed"):
            _create.ensure_request(
                target,
                env.keeper.client,
                gate("bbb"),
                spec,
                thread_id="t",
                checkpoint_ns="gate:bbb",
            )
    assert ledger.get(gate("bbb")) is None and ledger.get_alias(gate("bbb")) is None
    replayed = _create.ensure_request(
        target, env.keeper.client, gate("bbb"), spec, thread_id="t", checkpoint_ns="gate:bbb"
    )
    assert (replayed.key, replayed.request_id) == (winner.key, winner.request_id)
    assert ledger.get_alias(gate("bbb")) == winner.key and ledger.get(gate("bbb")) is None
    assert len(requests_of(env, "t")) == 1
    assert [c.owner for c in ledger.list_slot_claims("t", "hitl-slot:gate|node|0")] == [winner.key]
