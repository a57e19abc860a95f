"""Issue 24 item 4: the Grafana dashboard and the alert rules shipped in
examples/observability load, use only metrics the dispatcher exports, and are valid PromQL
(promtool when installed: ``check rules`` on the alerts and on every panel query, and ``test
rules`` firing each alert on the series that should page)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hitl_agent.dispatch import CallBudget
from hitl_agent.ledger import SqliteLedger
from hitl_agent.observability import LedgerMetrics

HERE = Path(__file__).resolve().parents[2] / "examples" / "observability"
DASHBOARD = HERE / "hitl-grafana-dashboard.json"
ALERTS = HERE / "hitl-alerts.yml"
PROMTOOL = shutil.which("promtool")
_SUFFIXES = ("_bucket", "_count", "_sum")


def _exported(tmp_path: Path) -> set[str]:
    """Every sample name /metrics serves (budget and quota included)."""

    class Client:
        rate_limit = type("R", (), {"remaining": 90})()

    with SqliteLedger(tmp_path / "l.db") as ledger:
        ledger.setup()
        text = LedgerMetrics(ledger, budget=CallBudget(), client=Client()).render()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bhitl_[a-z_]+\b", expr))


def _panel_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_the_dashboard_loads_and_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 30
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels) >= 8
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(box["x"], box["x"] + box["w"])
                for y in range(box["y"], box["y"] + box["h"])}  # fmt: skip
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine
        assert panel["targets"] and all(t["expr"] and t["refId"] for t in panel["targets"])
        assert panel["datasource"]["uid"] == "${datasource}"


def test_the_dashboard_and_alerts_use_only_exported_metrics(tmp_path: Path) -> None:
    exported = _exported(tmp_path)
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"][0]["rules"]
    for expr in _panel_exprs() + [rule["expr"] for rule in rules]:
        for name in _metric_names(expr):
            assert name in exported or any(name + s in exported for s in _SUFFIXES), (name, expr)


def test_the_three_alerts_are_well_formed() -> None:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    rules = {rule["alert"]: rule for group in groups for rule in group["rules"]}
    assert sorted(rules) == [
        "HITLQuotaNearZero",
        "HITLReviewWaitP90AboveHalfDeadline",
        "HITLRowsStuck",
    ]
    for rule in rules.values():
        assert rule["expr"] and re.fullmatch(r"\d+[smh]", rule["for"])
        assert rule["labels"]["severity"] in ("page", "warning")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    assert "hitl_rows_stuck" in rules["HITLRowsStuck"]["expr"]
    assert "hitl_quota_remaining" in rules["HITLQuotaNearZero"]["expr"]
    assert "histogram_quantile(0.9" in rules["HITLReviewWaitP90AboveHalfDeadline"]["expr"]


def _promtool(*args: str, cwd: Path) -> None:
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian: prometheus)")
def test_promtool_checks_the_alerts_and_fires_each_on_its_series() -> None:
    _promtool("check", "rules", ALERTS.name, cwd=HERE)
    _promtool("test", "rules", "alerts_test.yml", cwd=HERE)


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian: prometheus)")
def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    records: list[dict[str, Any]] = [
        {"record": f"hitl:panel_query_{i}", "expr": expr} for i, expr in enumerate(_panel_exprs())
    ]
    (tmp_path / "panels.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "panels", "rules": records}]})
    )
    _promtool("check", "rules", "panels.yml", cwd=tmp_path)
