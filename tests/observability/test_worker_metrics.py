"""``hitl-agent worker`` serves ``GET /metrics`` on its port (the app it serves is the
dispatcher's health app, metrics included): a review waiting shows as pending."""

from __future__ import annotations

import importlib
import sys
import uuid
from pathlib import Path

import pytest
from obs_support import samples, value
from starlette.testclient import TestClient

from hitl_agent.cli._worker import open_worker
from hitl_agent.gate import Gatekeeper
from hitl_agent.testing import local_hitl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cli.test_worker_pg import GRAPH_MODULE


def test_the_worker_app_serves_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"metrics_graph_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(GRAPH_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(name)
    ledger = f"sqlite:///{tmp_path}/hitl.db"
    try:
        with (
            local_hitl() as hitl,
            open_worker(
                graph_target=f"{name}:build",
                checkpointer=f"sqlite:///{tmp_path}/checkpoints.db",
                ledger=ledger,
                loop_id=hitl.loop_id,
                client=hitl.client,
            ) as worker,
            Gatekeeper(client=hitl.client, loop_id=hitl.loop_id, ledger=ledger) as keeper,
        ):
            module.KEEPER = keeper
            worker.graph.invoke({"amount": 3}, {"configurable": {"thread_id": "w1"}})
            with TestClient(worker.dispatcher.health_app) as client:
                response = client.get("/metrics")
            assert response.status_code == 200
            assert value(samples(response.text), "hitl_reviews_pending", priority="medium") == 1
    finally:
        sys.modules.pop(name, None)
