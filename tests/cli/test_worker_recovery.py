"""``hitl-agent worker --once --no-poll``: the recovery step alone, through the command
(issue 20 F4). A decision recorded by a worker that died before resuming is delivered from the
ledger, with no API listing; before, ``--no-poll`` was ignored by ``--once``, which listed."""

from __future__ import annotations

import importlib
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hitl_agent.cli import main
from hitl_agent.cli._worker import open_worker
from hitl_agent.gate import Gatekeeper
from hitl_agent.testing import local_hitl

from .test_worker_pg import GRAPH_MODULE


@pytest.fixture
def graph_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    name = f"recovery_graph_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(GRAPH_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module(name)
    sys.modules.pop(name, None)


def test_once_no_poll_delivers_a_stranded_decision_without_listing(
    graph_module: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = f"sqlite:///{tmp_path}/hitl.db"
    checkpointer = f"sqlite:///{tmp_path}/checkpoints.db"
    with local_hitl() as hitl:
        with (
            open_worker(
                graph_target=f"{graph_module.__name__}:build",
                checkpointer=checkpointer,
                ledger=ledger,
                loop_id=hitl.loop_id,
                client=hitl.client,
            ) as dead,
            Gatekeeper(client=hitl.client, loop_id=hitl.loop_id, ledger=ledger) as keeper,
        ):
            graph_module.KEEPER = keeper
            config = {"configurable": {"thread_id": "stranded"}}
            (interrupt,) = dead.graph.invoke({"amount": 42}, config)["__interrupt__"]
            request_id = interrupt.value["hitl_agent"]["request_id"]
            hitl.reviewer.respond(request_id, "approve")
            # Another review still waits: a sweep would list the loop for it.
            dead.graph.invoke({"amount": 1}, {"configurable": {"thread_id": "waiting"}})
            # The dead worker's accepted callback recorded the decision, then it died.
            row = keeper.ledger.get_by_request_id(request_id)
            assert row is not None
            assert dead.dispatcher.resolver.record(row, hitl.client.requests.get(request_id))

        import hitl_agent._client as client_module

        listed: list[Any] = []
        monkeypatch.setattr(hitl.client.requests, "list", lambda *a, **k: listed.append(k))
        monkeypatch.setattr(client_module, "HITLClient", lambda *a, **k: hitl.client)
        with Gatekeeper(client=hitl.client, loop_id=hitl.loop_id, ledger=ledger) as keeper:
            graph_module.KEEPER = keeper
            args = ["worker", "--graph", f"{graph_module.__name__}:build"]
            args += ["--checkpointer", checkpointer, "--ledger", ledger]
            args += ["--loop-id", hitl.loop_id, "--once", "--no-poll"]
            result = CliRunner().invoke(main, args)
            assert result.exit_code == 0, result.output
            assert "resumed 1 review(s)" in result.output
            assert graph_module.EFFECTS == [42]
            assert listed == []
            state = keeper.ledger.get_by_request_id(request_id)
            assert state is not None and state.state == "resumed"


def test_help_says_no_poll_still_recovers() -> None:
    result = CliRunner().invoke(main, ["worker", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "never list requests at the API" in text
    assert "Recovery from the ledger" in text
    assert "/readyz" in text
