"""``hitl-agent serve`` in a real subprocess: bootstrap, serve, stop on a signal, restart."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

STARTUP_TIMEOUT = 20.0
_BANNER_LINE = r"\s+(API base URL|Console|Loop id|API key|Reviewer token)\s+(\S+)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """A running ``hitl-agent serve`` and what it printed."""

    def __init__(self, db: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        # stderr goes to a file so uvicorn's log can never fill a pipe and block the server.
        self.err_path = db.with_suffix(f".{self.port}.stderr")
        self.err_file = self.err_path.open("w")
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-c", "from hitl_agent.cli import main; main()", "serve"),
                *("--port", str(self.port), "--db", str(db), "--log-level", "warning", *extra),
            ],
            stdout=subprocess.PIPE,
            stderr=self.err_file,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.banner: dict[str, str] = {}
        try:
            assert self.proc.stdout is not None
            # The banner is printed (and flushed) before uvicorn starts.
            for line in self.proc.stdout:
                match = re.match(_BANNER_LINE, line)
                if match:
                    self.banner[match.group(1)] = match.group(2)
                if line.startswith("Use it:"):
                    break
            assert "API key" in self.banner, f"no banner; stderr: {self.stderr()}"
            self.wait_ready()
        except BaseException:
            self.stop(signal.SIGKILL)
            raise

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"serve exited early with {self.proc.returncode}: {self.stderr()}")
            try:
                response = httpx.get(
                    self.banner["API base URL"] + "/test",
                    headers={"Authorization": f"Bearer {self.banner['API key']}"},
                    timeout=1.0,
                )
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            assert response.status_code == 200, response.text
            return
        pytest.fail(f"serve did not answer within {STARTUP_TIMEOUT}s")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            assert self.proc.stdout is not None
            self.proc.stdout.close()
            self.err_file.close()

    def stderr(self) -> str:
        return self.err_path.read_text()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "hitl-local.db"


def test_serve_prints_credentials_stops_on_sigterm_and_restarts_with_them(db: Path) -> None:
    first = Served(db)
    try:
        banner = first.banner
        assert banner["API base URL"] == f"http://127.0.0.1:{first.port}/v1"
        assert banner["Console"] == f"http://127.0.0.1:{first.port}/console/"
        console = httpx.get(banner["Console"], timeout=5)
        assert console.status_code == 200 and "HITL reviewer console" in console.text
        queue = httpx.get(
            banner["API base URL"] + "/reviewer/queue",
            headers={"Authorization": f"Bearer {banner['Reviewer token']}"},
            timeout=5,
        )
        assert queue.status_code == 200, queue.text
    finally:
        code = first.stop(signal.SIGTERM)
    assert code == 0, first.stderr()
    assert "stopped" in first.stderr()

    second = Served(db)
    try:
        assert second.banner["API key"] == banner["API key"]
        assert second.banner["Loop id"] == banner["Loop id"]
        assert second.banner["Reviewer token"] == banner["Reviewer token"]
    finally:
        assert second.stop(signal.SIGINT) == 0


def test_serve_takes_credentials_from_the_environment(db: Path) -> None:
    key, token = "hitl_local_" + "k" * 24, "hitl_rev_" + "r" * 24
    served = Served(db, env={"HITL_LOCAL_API_KEY": key, "HITL_LOCAL_REVIEWER_TOKEN": token})
    try:
        assert served.banner["API key"] == key
        assert served.banner["Reviewer token"] == token
    finally:
        assert served.stop() == 0


def test_serve_rejects_a_short_key_before_starting(db: Path) -> None:
    from click.testing import CliRunner

    from hitl_agent.cli._serve import serve

    result = CliRunner().invoke(serve, ["--db", str(db), "--api-key", "short"])
    assert result.exit_code == 2
    assert "--api-key" in result.output and "at least 16 characters" in result.output
    assert not db.exists()


def test_serve_closes_the_database_and_exits_0_after_a_signal(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In-process twin of the subprocess test: uvicorn re-raises the signal it captured once it
    # has shut down; serve must swallow it, restore the handlers and close the database.

    import uvicorn
    from click.testing import CliRunner

    import hitl_agent.server
    from hitl_agent.cli._serve import serve

    apps = []
    real_create_app = hitl_agent.server.create_app

    def spy_create_app(*args: object, **kwargs: object) -> object:
        app = real_create_app(*args, **kwargs)  # type: ignore[arg-type]
        apps.append(app)
        return app

    def fake_run(self: uvicorn.Server, sockets: list[socket.socket] | None = None) -> None:
        signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(hitl_agent.server, "create_app", spy_create_app)
    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    before = signal.getsignal(signal.SIGTERM)

    result = CliRunner().invoke(serve, ["--db", str(db), "--port", str(free_port())])

    assert result.exit_code == 0, result.output
    assert signal.getsignal(signal.SIGTERM) is before
    [app] = apps
    with pytest.raises(RuntimeError, match="database is closed"):
        app.state.hitl.authenticate_key("anything")


def test_serve_prints_an_export_line_with_the_loop_id(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The README's quickstart reads HITL_LOOP_ID from the environment the banner sets up.
    import uvicorn
    from click.testing import CliRunner

    from hitl_agent.cli._serve import serve

    served: list[Any] = []

    def fake_run(self: uvicorn.Server, sockets: list[socket.socket] | None = None) -> None:
        served.append([sock.getsockname() for sock in sockets or []])

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    port = free_port()

    result = CliRunner().invoke(serve, ["--db", str(db), "--port", str(port)])

    assert result.exit_code == 0, result.output
    banner = dict(re.findall(_BANNER_LINE, result.output))
    (use_it,) = [line for line in result.output.splitlines() if line.startswith("Use it:")]
    assert use_it.startswith("Use it: export ")
    exported = dict(word.split("=", 1) for word in use_it.removeprefix("Use it: export ").split())
    assert exported == {
        "HITL_BASE_URL": f"http://127.0.0.1:{port}/v1",
        "HITL_API_KEY": banner["API key"],
        "HITL_LOOP_ID": banner["Loop id"],
    }
    # uvicorn serves on the socket serve bound before it printed anything.
    assert served == [[("127.0.0.1", port)]]


def test_serve_on_a_busy_port_fails_before_making_a_key_or_a_database(db: Path) -> None:
    from click.testing import CliRunner

    from hitl_agent.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = CliRunner().invoke(main, ["serve", "--db", str(db), "--port", str(port)])

    assert result.exit_code == 1
    assert result.stdout == ""  # no banner, so no key that works nowhere
    (line,) = result.stderr.strip().splitlines()
    assert f"cannot listen on 127.0.0.1:{port}" in line and "already in use" in line
    assert "--port" in line
    assert not db.exists()
