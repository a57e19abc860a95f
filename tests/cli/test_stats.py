"""``hitl-agent stats``: rates and response-time percentiles by priority and loop, and the PNG."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import httpx2
import pytest
from click.testing import CliRunner

from hitl_agent.cli import main
from hitl_agent.cli._stats import percentile

from .conftest import Cli


def _history(cli: Cli) -> None:
    """High priority in the main loop: 4 answered after 10/20/30/40 s, 1 timeout, 1 cancel.
    Low priority in a second loop: 1 cancelled, 1 still open."""
    hitl = cli.hitl
    answered = [cli.create(priority="high", timeout_seconds=3600) for _ in range(4)]
    timed_out = cli.create(priority="high", timeout_seconds=60)
    cancelled = cli.create(priority="high")
    other = hitl.client.loops.create("Second").loop.id
    for _ in range(2):
        hitl.client.requests.create(other, request_text="Low?", response_type="boolean",
                                    default_response=False, timeout_seconds=3600,
                                    priority="low")  # fmt: skip
    hitl.client.requests.cancel(hitl.client.requests.list(loop_id=other).requests[0].id)
    hitl.client.requests.cancel(cancelled)
    for request_id in answered:
        cli.clock.advance(10)
        hitl.reviewer.respond(request_id, True)
    cli.clock.advance(60)
    hitl.tick_sync()
    assert hitl.client.requests.get(timed_out).status == "timeout"


def test_stats_table_by_priority_and_by_loop(cli: Cli) -> None:
    _history(cli)
    result = cli("stats")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    high = next(line for line in lines if line.strip("│ ").startswith("high"))
    # 6 high: 0 open; 4/6 completed, 1/6 timeout, 1/6 cancelled; p50/p90/p99 of 10,20,30,40.
    cells = [cell.strip() for cell in high.strip("│").split("│")]
    assert cells == ["high", "6", "0", "67%", "17%", "17%", "25.0s", "37.0s", "39.7s"]
    low = next(line for line in lines if line.strip("│ ").startswith("low"))
    assert [c.strip() for c in low.strip("│").split("│")] == [
        "low", "2", "1", "0%", "0%", "100%", "-", "-", "-",
    ]  # fmt: skip
    assert "by loop" in result.stdout and "Second" in result.stdout
    only_high = cli("stats", "--priority", "high")
    assert "Second" not in only_high.stdout and "6 request(s)" in only_high.stdout


def test_stats_with_nothing_to_count(cli: Cli) -> None:
    result = cli("stats")
    assert result.exit_code == 0 and "no requests match" in result.output


def test_percentile_matches_numpy_linear() -> None:
    numpy = pytest.importorskip("numpy")
    rng = random.Random(7)
    for size in (1, 2, 3, 10, 101):
        values = [rng.uniform(0, 500) for _ in range(size)]
        for q in (0, 50, 90, 99, 100):
            assert percentile(values, q) == pytest.approx(float(numpy.percentile(values, q)))
    assert percentile([], 50) is None


def test_stats_plot_writes_a_png(cli: Cli, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    _history(cli)
    target = Path(os.environ.get("HITL_PLOT_OUT", tmp_path / "stats.png"))
    result = cli("stats", "--plot", str(target))
    assert result.exit_code == 0, result.output
    data = target.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    assert f"wrote {target}" in result.stderr


@pytest.mark.parametrize("how", ["import fails", "not installed"])
def test_stats_plot_without_matplotlib_fails_first_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    calls: list[str] = []

    def api(request: httpx2.Request) -> httpx2.Response:
        calls.append(str(request.url))
        return httpx2.Response(500)

    if how == "import fails":
        monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    else:  # also when an earlier test has imported it: None in sys.modules blocks the import
        monkeypatch.setitem(sys.modules, "matplotlib", None)

    result = CliRunner().invoke(
        main,
        ["stats", "--plot", str(tmp_path / "x.png")],
        obj={"http_client": httpx2.Client(transport=httpx2.MockTransport(api))},
        env={"HITL_API_KEY": "k" * 32, "HITL_BASE_URL": "http://testserver/v1"},
    )

    assert result.exit_code == 1
    assert result.stdout == ""  # no tables first: the error is the whole output
    (line,) = result.stderr.strip().splitlines()
    assert "--plot" in line and "'plot' extra" in line and "hitl-agent[plot]" in line
    assert calls == []  # nor any of the hourly quota spent
