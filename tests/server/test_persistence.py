"""Restart on the same file: nothing is lost and the scheduler picks up where it left off."""

from __future__ import annotations

import json
from pathlib import Path

from hitl_agent.server import create_app

from .conftest import MakeEnv, request_body


def test_restart_keeps_requests_and_delivers_the_pending_callback(
    make_env: MakeEnv, tmp_path: Path
) -> None:
    db = tmp_path / "restart.db"
    first = make_env(db=db)
    answered = first.create(callback_url="https://receiver.test/a")
    waiting = first.create(callback_url="https://receiver.test/b", timeout_seconds=120)
    first.rev("POST", f"/requests/{answered}/respond", json={"response_data": "approve"})
    assert first.receiver.calls == []  # the process "dies" before the outbox is drained
    first.close()

    second = make_env(db=db, clock=first.clock)
    assert second.creds.loop_id == first.creds.loop_id
    assert second.creds.reviewer_id == first.creds.reviewer_id
    assert second.get(answered)["response_data"] == "approve"
    second.tick()
    assert [json.loads(c.content)["request_id"] for c in second.receiver.calls] == [answered]
    second.clock.advance(120)
    second.tick()
    assert second.get(waiting)["status"] == "timeout"
    assert json.loads(second.receiver.calls[-1].content)["event"] == "request.timeout"
    assert second.outbox()[0]["state"] == "delivered"


def test_a_half_sent_callback_is_sent_again_after_its_lease(
    make_env: MakeEnv, tmp_path: Path
) -> None:
    db = tmp_path / "lease.db"
    first = make_env(db=db)
    request_id = first.create(callback_url="https://receiver.test/a")
    first.rev("POST", f"/requests/{request_id}/respond", json={"response_data": "approve"})
    with first.server.storage.transaction() as conn:  # as if a POST was in flight at the crash
        conn.execute("UPDATE outbox SET lease_until = ?", (first.clock() + 60,))
    first.close()
    second = make_env(db=db, clock=first.clock)
    second.tick()
    assert second.receiver.calls == []
    second.clock.advance(60)
    second.tick()
    assert len(second.receiver.calls) == 1


def test_bootstrap_is_idempotent_without_arguments(tmp_path: Path) -> None:
    db = tmp_path / "boot.db"
    apps = [create_app(db, scheduler_interval=None) for _ in range(2)]
    try:
        first = apps[0].state.hitl.bootstrap()
        apps[0].state.hitl.close()
        second = apps[1].state.hitl.bootstrap()
        assert (second.api_key, second.reviewer_token) == (first.api_key, first.reviewer_token)
        assert (second.loop_id, second.reviewer_id) == (first.loop_id, first.reviewer_id)
        with apps[1].state.hitl.storage.read() as conn:
            assert conn.execute("SELECT COUNT(*) FROM loops").fetchone()[0] == 1
            assert conn.execute("SELECT COUNT(*) FROM api_keys").fetchone()[0] == 1
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
    finally:
        for app in apps:
            app.state.hitl.close()


def test_commits_are_checkpointed_off_the_request_path(tmp_path: Path) -> None:
    """The checkpoint thread copies the WAL back into the database file within moments of
    the commits (the writer itself would only at ~80 MiB of WAL): the main file alone,
    without its ``-wal``, holds the rows. Closing the server stops the thread."""
    import contextlib
    import shutil
    import sqlite3
    import threading
    import time

    db = tmp_path / "local.db"
    app = create_app(db, scheduler_interval=None)
    server = app.state.hitl
    creds = server.bootstrap()
    caller = server.authenticate_key(creds.api_key)
    from hitl_agent.server import _requests

    for _ in range(40):
        server.run(_requests.create_request, caller, creds.loop_id, request_body())
    copied = 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        shutil.copy(db, tmp_path / "alone.db")  # the main file only: no -wal beside it
        with contextlib.closing(sqlite3.connect(tmp_path / "alone.db")) as conn:
            try:
                copied = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
            except sqlite3.OperationalError:  # not even the schema copied back yet
                copied = 0
        if copied == 40:
            break
        time.sleep(0.05)
    assert copied == 40
    server.close()
    assert not [t for t in threading.enumerate() if t.name == "hitl-local-checkpoint"]
