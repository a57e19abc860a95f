"""Issue 20 F4: callbacks only (``serve(poll=False)``, ``hitl-agent worker --no-poll``) no
longer strands decisions; issue 24 item 3: ``/healthz`` and ``/readyz``.

A worker killed after accepting a callback leaves its row ``decided`` (killed before the
claim) or ``resuming`` (killed mid-resume, the lease running out later). Before the fix the
ledger-only recovery step ran only inside poll sweeps, so a worker without polling never
delivered either row, restarted or not. Now it runs on its own schedule in every served mode,
the first time at start-up, and makes no API call.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from hitl_harness import Env, refund_graph
from langgraph.checkpoint.memory import InMemorySaver
from starlette.testclient import TestClient

from hitl_agent import ConfigError
from hitl_agent.dispatch import Dispatcher
from hitl_agent.langgraph import GraphResumer

LEASE = 300.0


def _park_and_decide(env: Env, dispatcher: Dispatcher, graph: Any, thread_id: str) -> str:
    """Park a thread on its review, approve it and record the decision (what the dead
    worker's accepted callback did before it died)."""
    graph.invoke({"amount": len(thread_id)}, {"configurable": {"thread_id": thread_id}})
    row = next(r for r in env.ledger.list_open() if r.thread_id == thread_id)
    assert row.request_id is not None
    env.hitl.reviewer.respond(row.request_id, "approve")
    assert dispatcher.resolver.record(row, env.hitl.client.requests.get(row.request_id))
    return row.request_id


def _no_api(env: Env, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []

    def refuse(name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            raise AssertionError(f"the recovery step called the API ({name})")

        return call

    for name in ("list", "get", "iter"):
        monkeypatch.setattr(env.hitl.client.requests, name, refuse(name))
    return calls


def _stranded(env: Env) -> tuple[Dispatcher, list[str], dict[str, str]]:
    effects: list[str] = []
    graph = refund_graph(env, InMemorySaver(), effects)
    dispatcher = env.keeper.dispatcher(GraphResumer(graph))
    decided = _park_and_decide(env, dispatcher, graph, "decided")
    resuming = _park_and_decide(env, dispatcher, graph, "resuming-x")
    # The dead worker's claim on the second row; its lease runs out.
    assert env.ledger.claim(resuming, "dead-worker", now=env.clock(), lease_seconds=LEASE)
    env.clock.advance(LEASE + 1)
    states = {rid: env.ledger.get_by_request_id(rid).state for rid in (decided, resuming)}  # type: ignore[union-attr]
    assert states == {decided: "decided", resuming: "resuming"}
    return dispatcher, effects, {"decided": decided, "resuming": resuming}


def test_a_served_worker_without_polling_recovers_at_start_up(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    dispatcher, effects, ids = _stranded(env)
    calls = _no_api(env, monkeypatch)
    dispatcher.poll_on_startup = False  # what serve(poll=False) / worker --no-poll set
    with TestClient(dispatcher.health_app) as client:
        deadline = time.monotonic() + 10
        while len(effects) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sorted(effects) == ["refund 10", "refund 7"]
        assert client.get("/readyz").status_code == 200
        assert client.get("/healthz").json() == {"alive": True}
    assert calls == []
    for rid in ids.values():
        assert env.ledger.get_by_request_id(rid).state == "resumed"  # type: ignore[union-attr]
    assert dispatcher._poll_task is None and dispatcher._recovery_task is None


def test_recover_once_delivers_decided_and_expired_claims_without_the_api(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    dispatcher, effects, ids = _stranded(env)
    calls = _no_api(env, monkeypatch)
    delivered = dispatcher.recover_once()
    assert sorted(d.request_id for d in delivered) == sorted(ids.values())
    assert sorted(effects) == ["refund 10", "refund 7"]
    assert dispatcher.recover_once() == []  # once
    assert calls == []


def test_a_live_claim_is_left_to_its_owner(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    effects: list[str] = []
    graph = refund_graph(env, InMemorySaver(), effects)
    dispatcher = env.keeper.dispatcher(GraphResumer(graph))
    rid = _park_and_decide(env, dispatcher, graph, "busy")
    assert env.ledger.claim(rid, "live-worker", now=env.clock(), lease_seconds=LEASE)
    env.clock.advance(LEASE - 1)
    assert dispatcher.recover_once() == []
    assert effects == []


def test_readyz_reports_a_stalled_recovery_and_healthz_stays_up(env: Env) -> None:
    dispatcher = env.keeper.dispatcher(GraphResumer(refund_graph(env, InMemorySaver(), [])))
    with TestClient(dispatcher.health_app) as client:  # not served: no background task
        first = client.get("/readyz")
        assert first.status_code == 503
        assert first.json()["failed"] == ["recovery"]
        dispatcher.recover_once()
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        checks = {"ledger": "ok", "hitl": "ok", "recovery": "ok"}
        assert ready.json() == {"ready": True, "checks": checks}
        env.clock.advance(dispatcher.readiness.stale_after + 1)
        stale = client.get("/readyz")
        assert stale.status_code == 503
        assert stale.json()["checks"]["recovery"].startswith("last ran")
        assert client.get("/healthz").status_code == 200
        assert client.post("/readyz").status_code == 405
        # Everything else is still the receiver's.
        assert client.post("/hitl/not-a-token", json={}).status_code == 400  # no request_id


def test_readyz_names_a_failing_store_and_logs_it_once(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    dispatcher = env.keeper.dispatcher(GraphResumer(refund_graph(env, InMemorySaver(), [])))
    down = {"on": True}

    def probe() -> None:
        if down["on"]:
            raise OSError("connection to postgresql://u:hunter2-secret@db:5432/x refused")

    dispatcher.readiness.add("checkpointer", probe)
    with caplog.at_level("INFO", logger="hitl_agent"), TestClient(dispatcher.health_app) as client:
        for _ in range(20):
            assert dispatcher.recover_once() == []
        response = client.get("/readyz")
        down["on"] = False
        dispatcher.recover_once()
        back = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["checkpointer"]
    assert "hunter2" not in response.text and "u:***@db" in response.text
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "checkpointer" in errors[0].getMessage()
    assert "hunter2" not in caplog.text
    assert [r.getMessage() for r in caplog.records if r.levelname == "INFO"] == [
        "checkpointer answers again: recovery catches up now"
    ]
    assert back.status_code == 200


def test_recovery_interval_must_be_positive(env: Env) -> None:
    with pytest.raises(ConfigError, match="recovery_interval"):
        Dispatcher(
            ledger=env.ledger,
            client=env.hitl.client,
            resumer=GraphResumer(refund_graph(env, InMemorySaver(), [])),
            loop_id=env.hitl.loop_id,
            recovery_interval=0,
        )


def test_running_serves_the_health_routes_on_its_port(env: Env) -> None:
    """``running()`` (and ``serve()``, ``hitl-agent worker``) put the routes on the port,
    and start the recovery loop without polling."""
    import socket

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dispatcher = env.keeper.dispatcher(GraphResumer(refund_graph(env, InMemorySaver(), [])))
    with dispatcher.running(port=port, poll=False):
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz", timeout=5).json() == {"alive": True}
        deadline = time.monotonic() + 10
        ready = httpx.get(f"{base}/readyz", timeout=5)
        while ready.status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.02)  # the recovery loop's first step runs at start-up
            ready = httpx.get(f"{base}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        assert dispatcher._recovery_task is not None and dispatcher._poll_task is None


def test_readyz_says_when_hitl_sh_has_not_answered_for_a_minute(env: Env) -> None:
    """Issue 24 item 3: HITL.sh's reachability, read from the sweeps' own calls (no probe
    that would spend quota)."""
    import httpx2
    from hitl_harness import switched_client

    def refused(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    graph = refund_graph(env, InMemorySaver(), [])
    graph.invoke({"amount": 5}, {"configurable": {"thread_id": "reach"}})  # one pending review
    with switched_client(env) as (switch, client):
        dispatcher = Dispatcher(
            ledger=env.ledger,
            client=client,
            resumer=GraphResumer(graph),
            loop_id=env.hitl.loop_id,
            clock=env.clock,
        )
        dispatcher.recover_once()
        with TestClient(dispatcher.health_app) as http:
            switch.fault = refused
            dispatcher.poll_once()
            assert http.get("/readyz").status_code == 200  # one failed sweep is not an outage
            env.clock.advance(61)
            dispatcher.poll_once()
            dispatcher.recover_once()
            down = http.get("/readyz")
            assert down.status_code == 503, down.text
            assert down.json()["failed"] == ["hitl"]
            assert "no answer from HITL.sh for 61 s (APIConnectionError)" in down.text
            switch.fault = None
            dispatcher.poll_once()
            assert http.get("/readyz").status_code == 200
