"""An approval policy through ``hitl-agent worker`` as shipped (issue 23): the worker's own
wiring resumes each stage, including an escalation stage asked in another loop, which it
fetches by id (its listings cover its own loop only)."""

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
from hitl_agent.policies import Escalate
from hitl_agent.testing import FakeClock, ScriptedReviewer, local_hitl

from .test_worker_pg import GRAPH_MODULE

POLICY_MODULE = GRAPH_MODULE.replace(
    'default_response="reject",\n    )',
    'default_response="reject",\n        **POLICY,\n    )',
).replace("EFFECTS: list[int] = []", "EFFECTS: list[int] = []\nPOLICY: dict = {}")


@pytest.fixture
def graph_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    assert "**POLICY" in POLICY_MODULE  # the shared module's gate still has that shape
    name = f"policy_graph_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(POLICY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module(name)
    sys.modules.pop(name, None)


def test_the_worker_resumes_every_stage_and_the_escalated_one_in_another_loop(
    graph_module: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = f"sqlite:///{tmp_path}/hitl.db"
    checkpointer = f"sqlite:///{tmp_path}/checkpoints.db"
    clock = FakeClock()
    with local_hitl(clock=clock) as hitl:
        import hitl_agent._client as client_module

        monkeypatch.setattr(client_module, "HITLClient", lambda *a, **k: hitl.client)
        owner = hitl.server.authenticate_key(hitl.api_key)
        assert owner is not None
        managers = hitl.server.create_loop(owner.user_id, "Managers")
        hitl.server.add_reviewer("boss@example.com", "boss-token-0123456", [managers])
        boss = ScriptedReviewer(hitl.http, "boss-token-0123456", hitl.base_url)

        def pending() -> Any:
            (open_,) = [r for r in hitl.client.requests.iter() if r.status == "pending"]
            return open_

        def worker_once() -> str:
            args = ["worker", "--graph", f"{graph_module.__name__}:build"]
            args += ["--checkpointer", checkpointer, "--ledger", ledger]
            args += ["--loop-id", hitl.loop_id, "--once"]
            result = CliRunner().invoke(main, args)
            assert result.exit_code == 0, result.output
            return result.output

        with Gatekeeper(
            client=hitl.client, loop_id=hitl.loop_id, ledger=ledger, clock=clock
        ) as keeper:
            graph_module.KEEPER = keeper
            graph_module.POLICY = {
                "quorum": 2,
                "escalate": [Escalate(after=60, loop_id=managers, name="Managers")],
            }
            with open_worker(
                graph_target=f"{graph_module.__name__}:build",
                checkpointer=checkpointer,
                ledger=ledger,
                loop_id=hitl.loop_id,
                client=hitl.client,
            ) as agent:
                agent.graph.invoke({"amount": 42}, {"configurable": {"thread_id": "refund"}})
            hitl.reviewer.respond(pending().id, "approve")  # approval 1 of 2
            assert "resumed 1 review(s)" in worker_once()
            second = pending()
            assert "Approval 2 of 2" in second.request_text and second.loop_id == hitl.loop_id
            clock.advance(61)
            hitl.tick_sync()  # nobody gave the second approval in time
            assert "resumed 1 review(s)" in worker_once()
            third = pending()
            assert third.loop_id == managers and "Escalated" in third.request_text
            boss.respond(third.id, "approve")
            assert "resumed 1 review(s)" in worker_once()
            assert graph_module.EFFECTS == [42]
            assert len(list(hitl.client.requests.iter())) == 3
