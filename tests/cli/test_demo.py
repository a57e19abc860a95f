"""The demo is the product's main job: it must run offline and tell the truth."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from hitl_agent.cli import main


def test_demo_runs_the_approved_refund_once_and_never_the_rejected_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["demo", "--dir", str(tmp_path), "--timeout", "60"])

    assert result.exit_code == 0, result.output
    with contextlib.closing(sqlite3.connect(tmp_path / "refunds.db")) as db:
        refunds = db.execute("SELECT order_id, amount FROM refunds").fetchall()
    assert refunds == [("1234", 250)]
    with contextlib.closing(sqlite3.connect(tmp_path / "ledger.db")) as db:
        # Slot claims (``slot|…`` keys, closed at once) keep concurrent runs of a thread to
        # one request per gate; only the reviews' own rows are counted.
        query = "SELECT state FROM hitl_ledger WHERE key NOT LIKE 'slot|%'"
        states = sorted(row[0] for row in db.execute(query))
    assert states == ["resumed", "resumed"]
    assert "review requests created: 2" in result.output
    assert "Refund NOT issued" in result.output
