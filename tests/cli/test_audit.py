"""``hitl-agent audit export`` (issue 23, item 5), on SQLite and PostgreSQL.

The rows are made through the product: ``require_approval`` tools in a ToolNode graph on the
local server, answered by its scripted reviewer and resumed by the keeper's dispatcher; the
export is read back through the CLI (click's CliRunner), as an operator runs it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "gate"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "langchain"))

from hitl_harness import CALLBACK_URL, SECRET, Env, make_env
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from tools_support import call_of, one_turn_graph

from hitl_agent.cli import main
from hitl_agent.langgraph import GraphResumer
from hitl_agent.ledger import Ledger, PostgresLedger, SqliteLedger

FORMULA = '=HYPERLINK("http://evil.test","click")'


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
        return
    from pg_support import PG_URL, require_postgres

    require_postgres()
    schema = f"audit_{uuid.uuid4().hex[:8]}"
    yield f"{PG_URL}?schema={schema}"
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _open(url: str, clock: Any) -> Ledger:
    if url.startswith("sqlite:///"):
        store: Ledger = SqliteLedger(url[len("sqlite:///") :], clock=clock)
    else:
        conninfo, _, schema = url.partition("?schema=")
        store = PostgresLedger(conninfo, schema=schema, clock=clock)
    store.setup()
    return store


@pytest.fixture
def made(ledger_url: str, tmp_path: Path) -> Iterator[tuple[Env, Ledger, str]]:
    """A keeper on the local server whose ledger is ``ledger_url``."""
    from hitl_agent.testing import FakeClock

    store = _open(ledger_url, FakeClock())
    try:
        for env in make_env(tmp_path, ledger=store):
            store.clock = env.clock  # type: ignore[attr-defined]  # one clock, as in the harness
            yield env, store, ledger_url
    finally:
        store.close()


def _export(url: str, *args: str) -> Result:
    result = CliRunner().invoke(main, ["audit", "export", *args], env={"HITL_LEDGER": url})
    assert result.exit_code == 0, result.output
    return result


def _jsonl(url: str, *args: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _export(url, *args).output.splitlines()]


def _answers(request: Any) -> Any:
    call, form = call_of(request), request.response_type
    return {
        ("pay-1", "single_select"): "approve",
        ("boom-1", "single_select"): "approve",
        ("no-1", "single_select"): "reject_with_reason",
        ("no-1", "text"): FORMULA,
        ("ed-1", "single_select"): "edit",
        ("ed-1", "editable_text"): "order_id: o-9\namount: 7",
    }[(call, form)]


def _run_threads(env: Env, store: Ledger) -> None:
    """Four gated calls, each in its own thread: approved and run, approved and raised,
    rejected with a reason, edited and run."""
    effects: list[str] = []

    @tool
    def pay(order_id: str, amount: int) -> str:
        """Pay an order."""
        effects.append(f"pay {order_id}")
        return "paid"

    @tool
    def boom(order_id: str, amount: int) -> str:
        """A tool whose action fails."""
        raise RuntimeError("the bank said no")

    gated_pay = env.keeper.require_approval(pay, allow_edit=True)
    graphs = {}
    for thread, name, call_id in [
        ("t-ok", "pay", "pay-1"),
        ("t-fail", "boom", "boom-1"),
        ("t-no", "pay", "no-1"),
        ("t-edit", "pay", "ed-1"),
    ]:
        tools = [gated_pay if name == "pay" else env.keeper.require_approval(boom)]
        call = [{"name": name, "args": {"order_id": "o-1", "amount": 250}, "id": call_id}]
        graph = one_turn_graph(tools, call, InMemorySaver())
        config = {"configurable": {"thread_id": thread}}
        graph.invoke({"messages": []}, config)
        graphs[thread] = graph
        env.clock.advance(1)

    seen: set[str] = set()
    dispatchers = [env.keeper.dispatcher(GraphResumer(g)) for g in graphs.values()]
    for _ in range(10):
        for request in env.requests():
            if request.id not in seen and request.status == "pending":
                seen.add(request.id)
                env.hitl.reviewer.respond(request.id, _answers(request))
        for dispatcher in dispatchers:
            with contextlib.suppress(Exception):  # the failing tool's resume: retried
                dispatcher.poll_once()
        env.clock.advance(120)  # past the failed resume's backoff, within every deadline
    assert effects == ["pay o-1", "pay o-9"]


def test_an_empty_ledger_exports_nothing(ledger_url: str) -> None:
    assert _export(ledger_url).output == ""
    assert _export(ledger_url, "--format", "csv").output.splitlines()[0].startswith("key,call_key")
    assert len(_export(ledger_url, "--format", "csv").output.splitlines()) == 1


def test_every_gated_call_is_exported_with_its_answer_and_execution(
    made: tuple[Env, Ledger, str],
) -> None:
    env, store, url = made
    _run_threads(env, store)
    records = _jsonl(url)
    by = {(r["thread_id"], r["stage"]): r for r in records}
    assert sorted(by) == [
        ("t-edit", 1), ("t-edit", 2), ("t-fail", 1), ("t-no", 1), ("t-no", 2), ("t-ok", 1),
    ]  # fmt: skip
    assert [r["thread_id"] for r in records if r["stage"] == 1] == [
        "t-ok", "t-fail", "t-no", "t-edit",
    ]  # oldest first  # fmt: skip

    ok = by["t-ok", 1]
    assert ok["tool"] == "pay" and len(ok["args_hash"]) == 64
    assert ok["answer"] == "approve" and ok["outcome"] == "approved" and ok["approved"] is True
    assert ok["execution"] == "succeeded" and ok["executed_at"] and ok["execution_finished_at"]
    assert ok["request_id"] and ok["created_at"].endswith("Z") and ok["decided_at"]
    assert ok["reviewer_email"] == "reviewer@localhost" and ok["reviewer_id"]
    row = store.get(ok["key"])
    assert row is not None and row.state == "resumed"

    fail = by["t-fail", 1]
    assert fail["tool"] == "boom" and fail["execution"] == "failed"
    assert "the bank said no" in fail["execution_note"]

    no, reason = by["t-no", 1], by["t-no", 2]
    assert no["answer"] == "reject_with_reason" and no["execution"] is None
    assert reason["call_key"] == no["key"] and reason["answer"] == FORMULA
    assert reason["response_type"] == "text"

    edit, edited = by["t-edit", 1], by["t-edit", 2]
    assert edit["answer"] == "edit" and edit["execution"] == "succeeded"
    assert edited["call_key"] == edit["key"]
    assert edited["answer"] == "(edited arguments: export with --with-args)"
    assert "args" not in edited
    assert len({r["request_id"] for r in records}) == len(records)  # one record per request

    # Nothing secret: no token hash, no callback URL or secret, no lease owner.
    text = _export(url).output + _export(url, "--format", "csv", "--with-args").output
    for row in store.list_rows():
        assert row.token_hash is None or row.token_hash not in text
        assert row.claimed_by is None or row.claimed_by not in text
    assert CALLBACK_URL not in text and SECRET not in text and "token" not in text


def test_filters_with_args_and_formula_safe_csv(made: tuple[Env, Ledger, str]) -> None:
    env, store, url = made
    _run_threads(env, store)
    assert {r["thread_id"] for r in _jsonl(url, "--thread", "t-no")} == {"t-no"}
    assert _jsonl(url, "--thread", "nobody") == []
    # --since: an ISO time after the second thread's review (the clock moved 1 s a thread).
    second = _jsonl(url, "--thread", "t-fail")[0]["created_at"]
    assert [r["thread_id"] for r in _jsonl(url, "--since", second)][:1] == ["t-fail"]
    assert _jsonl(url, "--since", "2999-01-01T00:00:00Z") == []

    with_args = {(r["thread_id"], r["stage"]): r for r in _jsonl(url, "--with-args")}
    assert with_args["t-edit", 2]["args"] == "order_id: o-9\namount: 7"
    assert with_args["t-edit", 2]["answer"] == "order_id: o-9\namount: 7"
    assert with_args["t-ok", 1]["args"] is None  # the agent's own args: only their hash

    table = list(csv.DictReader(io.StringIO(_export(url, "--format", "csv").output)))
    assert len(table) == 6
    reason = next(r for r in table if r["thread_id"] == "t-no" and r["stage"] == "2")
    assert reason["answer"] == "'" + FORMULA  # a spreadsheet shows it as text
    ok = next(r for r in table if r["thread_id"] == "t-ok")
    assert ok["approved"] == "true" and ok["execution"] == "succeeded"
    assert ok["delivery"] == ""


def test_a_parked_resume_is_exported_with_its_fault(made: tuple[Env, Ledger, str]) -> None:
    env, store, url = made
    _run_threads(env, store)
    ok = _jsonl(url, "--thread", "t-ok")[0]
    store.record_delivery_fault(
        ok["request_id"], attempts=10, now=time.time(), retry_at=None, parked=True,
        reason="parked after 10 failed resumes", last_error="OSError: disk full",
    )  # fmt: skip
    again = _jsonl(url, "--thread", "t-ok")[0]
    assert again["delivery"] == "parked" and again["delivery_attempts"] == 10
    assert again["delivery_error"] == "OSError: disk full"


def test_a_bad_since_names_the_accepted_forms(ledger_url: str) -> None:
    result = CliRunner().invoke(main, ["audit", "export", "--ledger", ledger_url, "--since", "x"])
    assert result.exit_code == 2
    assert "ISO 8601" in result.output and "7d" in result.output
    assert _export(ledger_url, "--since", "7d").output == ""
