"""Issue 24 "done when": a real Prometheus (Debian's ``prometheus``) scrapes the served
dispatcher (what ``hitl-agent worker`` serves) on loopback after the scripted run, and its
query API returns the run's figures. Skipped, with the reason, where it is not installed."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from hitl_harness import Env
from test_metrics import scripted_run

PROMETHEUS = shutil.which("prometheus")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _query(port: int, expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(expr)}"
    with urllib.request.urlopen(url, timeout=2) as response:  # loopback only
        return list(json.load(response)["data"]["result"])


@pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus is not installed (Debian: apt-get install prometheus)"
)
def test_a_real_prometheus_scrapes_the_worker(env: Env, tmp_path: Path) -> None:
    assert PROMETHEUS is not None
    dispatcher, _ = scripted_run(env)
    dispatcher.metrics.cache_seconds = 0  # the run took less than the cache's 10 s
    worker_port, prom_port = _free_port(), _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: hitl\n    static_configs: [{{targets: ['127.0.0.1:{worker_port}']}}]\n"
    )
    with dispatcher.running("127.0.0.1", worker_port, poll=False):
        prom = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            found: dict[str, float] = {}
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    result = _query(prom_port, "hitl_decisions_total")
                except OSError:
                    result = []
                found = {r["metric"]["outcome"]: float(r["value"][1]) for r in result}
                if found:
                    break
                time.sleep(0.2)
            assert found["approved"] == 3 and found["rejected"] == 1 and found["timed_out"] == 1
            resumes = {r["metric"]["source"]: float(r["value"][1])
                       for r in _query(prom_port, "hitl_resumes_total")}  # fmt: skip
            assert resumes["webhook"] == 4 and resumes["poll"] == 1
            up = _query(prom_port, 'up{job="hitl"}')
            assert float(up[0]["value"][1]) == 1
        finally:
            prom.terminate()
            prom.wait(timeout=10)
