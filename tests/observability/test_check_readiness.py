"""Issue 24 item 3: ``hitl-agent check --ledger/--checkpointer`` reports the stores as the
worker's ``/readyz`` does, and exits 1 when one does not answer."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from hitl_agent.cli import main
from hitl_agent.testing import local_hitl


def _check(*args: str) -> Result:
    with local_hitl() as hitl:
        env = {"HITL_API_KEY": hitl.api_key, "HITL_BASE_URL": hitl.base_url, "HITL_LEDGER": ""}
        return CliRunner().invoke(main, ["check", *args], obj={"http_client": hitl.http}, env=env)


def test_check_reports_the_stores_ready(tmp_path: Path) -> None:
    result = _check(
        "--ledger", f"sqlite:///{tmp_path}/hitl.db", "--checkpointer", f"sqlite:///{tmp_path}/cp.db"
    )
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[1].strip(): line.split("│")[2].strip()
             for line in result.output.splitlines() if line.count("│") >= 3}  # fmt: skip
    assert lines["ledger"] == "ok" and lines["checkpointer"] == "ok" and lines["HITL API"] == "ok"


def test_check_exits_1_naming_a_store_that_does_not_answer(tmp_path: Path) -> None:
    result = _check("--ledger", f"sqlite:///{tmp_path}/missing/dir/hitl.db")
    assert result.exit_code == 1, result.output
    assert "not ready: the ledger did not answer" in result.output
    assert "cannot open" in result.output
    assert "HITL API" in result.output  # the API part still ran and was shown


def test_check_without_stores_is_unchanged() -> None:
    result = _check()
    assert result.exit_code == 0, result.output
    assert "ledger" not in result.output and "HITL API " in result.output
