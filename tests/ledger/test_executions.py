"""Execution records and delivery faults, on SQLite and PostgreSQL (issue 19, F1)."""

from __future__ import annotations

import threading

from hitl_agent.ledger import Ledger


def test_the_first_attempt_owns_an_execution_and_later_ones_see_its_outcome(
    ledger: Ledger,
) -> None:
    record, mine = ledger.start_execution("k", "a1", now=10.0, request_id="r1", tool="charge")
    assert mine and record.state == "started" and record.owner == "a1"
    again, mine_again = ledger.start_execution("k", "a1", now=11.0)  # a lost reply, retried
    assert mine_again and again.started_at == 10.0
    other, theirs = ledger.start_execution("k", "a2", now=12.0)
    assert not theirs and other.owner == "a1"

    assert not ledger.finish_execution("k", "a2", state="succeeded", now=13.0)  # not its own
    assert ledger.finish_execution("k", "a1", state="succeeded", now=14.0, result={"x": [1]})
    stored = ledger.get_execution("k")
    assert stored is not None
    assert (stored.state, stored.result, stored.finished_at) == ("succeeded", {"x": [1]}, 14.0)
    assert ledger.list_executions() == []  # nothing to look at
    assert [r.key for r in ledger.list_executions(states=("succeeded",))] == ["k"]


def test_an_unfinished_execution_is_flagged_in_doubt_then_settled(ledger: Ledger) -> None:
    ledger.start_execution("k", "a1", now=1.0, request_id="r1")
    assert ledger.flag_in_doubt("k", note="found unfinished")
    assert not ledger.flag_in_doubt("k", note="twice")
    (listed,) = ledger.list_executions(request_id="r1")
    assert listed.state == "in_doubt"
    # The stalled owner's outcome still lands (it knows what happened).
    assert ledger.finish_execution("k", "a1", state="failed", now=2.0, note="E")
    assert ledger.settle_execution("k", state="succeeded", now=3.0, note="checked: it ran")
    assert ledger.get_execution("k").state == "succeeded"  # type: ignore[union-attr]
    assert not ledger.settle_execution("k", state="failed", now=4.0, note="late")
    assert ledger.forget_execution("k")
    assert ledger.get_execution("k") is None


def test_concurrent_attempts_elect_one_owner(ledger: Ledger) -> None:
    owners: list[str] = []
    barrier = threading.Barrier(8)

    def attempt(i: int) -> None:
        barrier.wait()
        _, mine = ledger.start_execution("race", f"a{i}", now=1.0)
        if mine:
            owners.append(f"a{i}")

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(owners) == 1


def test_delivery_faults_are_replaced_listed_and_cleared(ledger: Ledger) -> None:
    ledger.record_delivery_fault(
        "r1", attempts=1, now=5.0, retry_at=35.0, parked=False, reason="retrying", last_error="E"
    )
    ledger.record_delivery_fault(
        "r2", attempts=8, now=6.0, retry_at=None, parked=True, reason="gave up", last_error="E"
    )
    ledger.record_delivery_fault(
        "r1", attempts=2, now=7.0, retry_at=95.0, parked=False, reason="retrying", last_error="F"
    )
    fault = ledger.get_delivery_fault("r1")
    assert fault is not None and (fault.attempts, fault.retry_at, fault.last_error) == (
        2,
        95.0,
        "F",
    )
    assert [f.request_id for f in ledger.list_delivery_faults(parked=True)] == ["r2"]
    assert [f.request_id for f in ledger.list_delivery_faults()] == ["r2", "r1"]
    assert ledger.clear_delivery_fault("r1") and not ledger.clear_delivery_fault("r1")
    assert ledger.get_delivery_fault("r1") is None
