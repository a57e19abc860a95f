"""``hitl-agent ledger``: every row that cannot progress is listed, and can be settled
(issue 20 L4, issue 19 F1), on SQLite and PostgreSQL, from --ledger or HITL_LEDGER."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from hitl_agent.cli import main
from hitl_agent.ledger import Ledger, open_ledger


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hitl.db'}"
        return
    from pg_support import PG_URL, require_postgres

    require_postgres()
    schema = f"cli_{uuid.uuid4().hex[:8]}"
    yield f"{PG_URL}?schema={schema}"
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _stuck_ledger(store: Ledger, now: float) -> None:
    old = now - 7200
    # an approved action that started and never recorded an outcome, flagged in doubt
    store.start_execution("lg|t1|tools|tool:c1|0", "a1", now=old, request_id="r1", thread_id="t1",
                          tool="charge")  # fmt: skip
    store.flag_in_doubt("lg|t1|tools|tool:c1|0", note="found unfinished")
    # a resume parked after ten failures
    store.record_delivery_fault(
        "r2", attempts=10, now=old, retry_at=None, parked=True,
        reason="parked after 10 failed resumes", last_error="OSError: x",
    )  # fmt: skip
    # a decision nobody resumed (its thread was deleted, or no worker runs the graph)
    store.record_intent("k3", now=old, thread_id="t3", checkpoint_ns="n")
    store.mark_created("k3", "r3", now=old)
    store.record_decision("r3", {"status": "completed", "approved": True}, now=old)
    # a create never confirmed
    store.record_intent("k4", now=old, thread_id="t4")
    # a fresh pending row is not a problem
    store.record_intent("k5", now=now)
    store.mark_created("k5", "r5", now=now)


def test_problems_lists_every_stuck_kind_and_settle_and_retry_clear_them(ledger_url: str) -> None:
    now = time.time()
    with open_ledger(ledger_url) as store:
        _stuck_ledger(store, now)
    runner = CliRunner()
    result = runner.invoke(main, ["ledger", "problems", "--format", "json"],
                           env={"HITL_LEDGER": ledger_url})  # fmt: skip
    assert result.exit_code == 0, result.output
    found = {(p["problem"], p["request_id"] or p["key"]) for p in json.loads(result.output)}
    assert found == {
        ("execution in_doubt", "r1"),
        ("resume parked", "r2"),
        ("decided, not resumed", "r3"),
        ("create unconfirmed", "k4"),
    }

    settled = runner.invoke(
        main, ["ledger", "settle", "lg|t1|tools|tool:c1|0", "--ran", "--ledger", ledger_url]
    )
    assert settled.exit_code == 0, settled.output
    retried = runner.invoke(main, ["ledger", "retry", "r2", "--ledger", ledger_url])
    assert retried.exit_code == 0, retried.output
    with open_ledger(ledger_url) as store:
        record = store.get_execution("lg|t1|tools|tool:c1|0")
        assert record is not None and record.state == "succeeded"
        assert record.note is not None and "operator" in record.note
        assert store.get_delivery_fault("r2") is None

    again = runner.invoke(main, ["ledger", "problems", "--ledger", ledger_url, "--format", "json"])
    left = {p["problem"] for p in json.loads(again.output)}
    assert left == {"decided, not resumed", "create unconfirmed"}


def test_an_empty_ledger_has_no_problems_and_bad_input_is_named(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    runner = CliRunner()
    result = runner.invoke(main, ["ledger", "problems", "--ledger", url])
    assert result.exit_code == 0 and "no problems" in result.output
    missing = runner.invoke(main, ["ledger", "settle", "nope", "--ran", "--ledger", url])
    assert missing.exit_code == 1 and "no execution record with key 'nope'" in missing.output
    unsaid = runner.invoke(main, ["ledger", "settle", "nope", "--ledger", url])
    assert unsaid.exit_code == 2 and "--ran or --not-run" in unsaid.output
    unknown = runner.invoke(main, ["ledger", "retry", "r9", "--ledger", url])
    assert unknown.exit_code == 1 and "no failed resume recorded" in unknown.output
    bad = runner.invoke(main, ["ledger", "problems", "--ledger", "mysql://x"])
    assert bad.exit_code == 1 and "cannot open the ledger" in bad.output
