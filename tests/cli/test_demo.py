"""The demo is the product's main job: it must run offline, exit 0 and tell the truth."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from hitl_agent.cli import main


def _demo(tmp_path: Path, *flags: str) -> str:
    args = ["demo", "--dir", str(tmp_path), "--timeout", "60", *flags]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return result.output


def _refunds(tmp_path: Path) -> list[tuple[str, int]]:
    with contextlib.closing(sqlite3.connect(tmp_path / "refunds.db")) as db:
        return [(row[0], row[1]) for row in db.execute("SELECT order_id, amount FROM refunds")]


def _review_states(tmp_path: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(tmp_path / "ledger.db")) as db:
        # Slot claims keep concurrent runs of a thread to one request per gate; they live in
        # hitl_gate_slots (old ledgers kept them here as ``slot|…`` rows): reviews only.
        query = "SELECT state FROM hitl_ledger WHERE key NOT LIKE 'slot|%'"
        return sorted(row[0] for row in db.execute(query))


@pytest.mark.parametrize("flags", [(), ("--bridge",)], ids=["wrapper", "bridge"])
def test_an_approval_runs_the_refund_once(tmp_path: Path, flags: tuple[str, ...]) -> None:
    out = _demo(tmp_path, *flags)
    assert _refunds(tmp_path) == [("1234", 250)]
    assert _review_states(tmp_path) == ["resumed"]
    assert "review requests created: 1" in out
    assert "tool result (success): Refund of $250 issued for order 1234." in out
    # Every step of the story is shown, each with its time.
    for step in (
        "local HITL server",
        "agent calls refund(order_id='1234', amount=250)",
        "graph suspended",
        "the reviewer sees:",
        "reviewer answers",
        "webhook received",
        "graph resumed and finished",
    ):
        assert re.search(rf"\[\s*\d+\.\d\d s\] {re.escape(step)}|{re.escape(step)}", out), step
    assert "```json" in out  # the args as the reviewer sees them, fenced as data


@pytest.mark.parametrize(
    "flags", [("--reject",), ("--bridge", "--reject")], ids=["wrapper", "bridge"]
)
def test_a_rejection_runs_nothing_and_says_so(tmp_path: Path, flags: tuple[str, ...]) -> None:
    out = _demo(tmp_path, *flags)
    assert _refunds(tmp_path) == []
    assert _review_states(tmp_path) == ["resumed"]
    assert "tool result (error)" in out
    assert "reject" in out.split("tool result (error)")[1].lower()
    assert "Nothing ran: only an explicit approval runs the refund." in out


def test_the_demo_wraps_the_tool_in_one_line() -> None:
    source = (Path(__file__).resolve().parents[2] / "hitl_agent" / "cli" / "_demo.py").read_text()
    assert "keeper.require_approval(_refund_tool(refunds))" in source
