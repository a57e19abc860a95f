"""The old gate's bookkeeping rows (a run reusing another run's request, a slot claim) shared a
task with real reviews and passed through ``decided`` while they were walked to ``resumed``. A
resolver that met one there once crashed an async ToolNode resume with a ValidationError on
``{"kind": "alias"}``. The gate now keeps them in tables of their own, and ``setup()`` moves
such a row out of an old ledger, even one caught mid-walk: the resolver never sees it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from hitl_agent import Decision, HITLClient
from hitl_agent.dispatch import CallBudget
from hitl_agent.dispatch._resolver import Resolver
from hitl_agent.ledger import ReviewRecord, SqliteLedger, sqlite
from hitl_agent.protocol import ALIAS_MARKER, is_marker


class Recording:
    def __init__(self) -> None:
        self.delivered: list[list[str]] = []

    def resume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool:
        self.delivered.append([d.request_id for d in decisions])
        return True

    async def aresume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool:
        return self.resume(record, decisions)

    def finished(self, record: ReviewRecord) -> bool:
        return False

    async def afinished(self, record: ReviewRecord) -> bool:
        return False


def test_a_marker_row_mid_walk_is_never_delivered(tmp_path: Path) -> None:
    # An old ledger: the schema before the gate's own tables (ledger/_markers.py).
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sqlite, "MIGRATIONS", sqlite.MIGRATIONS[:7])
        ledger = SqliteLedger(tmp_path / "hitl.db")
        ledger.setup()
    now = 1_000.0
    ledger.record_intent("k1", now=now, thread_id="t", checkpoint_ns="tools:1")
    ledger.mark_created("k1", "r1", now=now)
    real = Decision(request_id="r1", status="completed", outcome="approved", approved=True)
    ledger.record_decision("r1", real.model_dump(mode="json"), now=now)
    # An alias row of the same task, caught between record_decision and complete.
    ledger.record_intent("k2", now=now, thread_id="t", checkpoint_ns="tools:1")
    marker = f"{ALIAS_MARKER}k2"
    ledger.mark_created("k2", marker, now=now)
    ledger.record_decision(marker, {"kind": "alias", "owner": "k1"}, now=now)
    assert is_marker(marker) and not is_marker("r1") and not is_marker(None)
    ledger.close()
    ledger = SqliteLedger(tmp_path / "hitl.db")  # this version: setup() migrates
    ledger.setup()

    resumer = Recording()
    with HITLClient(api_key="k" * 32, base_url="http://127.0.0.1:9/v1") as client:
        resolver = Resolver(
            ledger=ledger,
            client=client,
            resumer=resumer,
            budget=CallBudget(clock=lambda: now),
            clock=lambda: now,
            owner="o",
        )
        assert resolver.deliver(marker) == []
        delivered = resolver.deliver("r1")
    assert [d.request_id for d in delivered] == ["r1"]
    assert resumer.delivered == [["r1"]]
    ledger.close()
