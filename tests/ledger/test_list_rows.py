"""``list_rows`` and ``get_executions``: the audit export's reads, on SQLite and PostgreSQL
(issue 23, item 5)."""

from __future__ import annotations

from hitl_agent.ledger import Ledger, ReviewRecord


def _keys(rows: list[ReviewRecord]) -> list[str]:
    return [row.key for row in rows]


def _fill(ledger: Ledger) -> None:
    # Created out of key order, with ties on created_at, in every state and two threads.
    ledger.record_intent("c", now=20.0, thread_id="t1")
    ledger.record_intent("b", now=20.0, thread_id="t2")
    ledger.record_intent("a", now=30.0, thread_id="t1")
    ledger.mark_created("a", "ra", now=31.0)
    ledger.record_decision("ra", {"approved": True}, now=32.0)
    ledger.record_intent("d", now=10.0)


def test_list_rows_reads_every_row_in_creation_order_with_filters(ledger: Ledger) -> None:
    assert ledger.list_rows() == []  # an empty ledger
    _fill(ledger)
    assert _keys(ledger.list_rows()) == ["d", "b", "c", "a"]  # ties by key
    assert _keys(ledger.list_rows(since=20.0)) == ["b", "c", "a"]
    assert _keys(ledger.list_rows(thread_id="t1")) == ["c", "a"]
    assert _keys(ledger.list_rows(thread_id="t1", since=25.0)) == ["a"]
    assert ledger.list_rows(thread_id="nobody") == []
    decided = ledger.list_rows(since=30.0)[0]
    assert decided.state == "decided" and decided.decision == {"approved": True}


def test_list_rows_pages_by_a_value_cursor(ledger: Ledger) -> None:
    _fill(ledger)
    pages: list[list[str]] = []
    after: tuple[float, str] | None = None
    while True:
        page = ledger.list_rows(limit=1, after=after)
        if not page:
            break
        pages.append(_keys(page))
        after = (page[-1].created_at, page[-1].key)
    assert pages == [["d"], ["b"], ["c"], ["a"]]
    # The cursor's row may be gone (a discarded intent): the read goes on after it.
    assert ledger.discard_intent("b")
    assert _keys(ledger.list_rows(after=(20.0, "b"))) == ["c", "a"]
    assert _keys(ledger.list_rows(limit=0)) == []


def test_get_executions_reads_many_records_at_once(ledger: Ledger) -> None:
    assert ledger.get_executions([]) == {}
    ledger.start_execution("k1", "o", now=1.0, request_id="r1", tool="charge")
    ledger.start_execution("k2", "o", now=2.0)
    ledger.finish_execution("k2", "o", state="failed", now=3.0, note="E")
    keys = ["k1", "missing", "k2", "k1"] + [f"x{i}" for i in range(1200)]  # > one chunk
    found = ledger.get_executions(keys)
    assert sorted(found) == ["k1", "k2"]
    assert found["k1"].tool == "charge" and found["k2"].state == "failed"
