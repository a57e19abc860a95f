"""A real LangGraph API server (``langgraph dev``, in-memory runtime) and a real local HITL
server, both on loopback, for the remote resumer's tests.

* The HITL server (``hitl_agent.server.create_app``) runs in this process under uvicorn, on a
  thread, bound to a free port.
* ``langgraph dev --no-browser --no-reload`` runs as a subprocess (its own libraries warn and
  log freely, which must not meet pytest's ``filterwarnings = error``), serving the graphs of
  ``app/graph.py`` with a generated ``langgraph.json``. It reaches the HITL server and the
  shared SQLite ledger through ``HITL_REMOTE_*`` environment variables.

Everything that could phone home is switched off in the subprocess's environment: CLI
analytics, LangSmith tracing, the PyPI version check, the license/metadata beacon (no license
key is passed) and OTLP export. When the server cannot start the tests skip with its log tail,
unless ``HITL_REQUIRE_REMOTE=1``, where they fail. ``HITL_LANGGRAPH_CLI`` names a
``langgraph`` executable to use instead of the one beside this interpreter (a separate
virtualenv: ``langgraph-api`` pins ``jsonschema-rs<0.45``, ``schemathesis`` needs ``>=0.60``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from hitl_agent import HITLClient
from hitl_agent.gate import Gatekeeper
from hitl_agent.server import create_app
from hitl_agent.testing import ScriptedReviewer

APP = Path(__file__).resolve().parent / "app"
ROOT = APP.parents[2]
STARTUP_SECONDS = 45.0

# Variables that would make the server or the CLI talk to the internet, or authenticate.
_DROP = (
    "LANGGRAPH_CLOUD_LICENSE_KEY",
    "LANGSMITH_CONTROL_PLANE_API_KEY",
    "LANGSMITH_API_KEY",
    "LANGCHAIN_API_KEY",
    "LANGGRAPH_API_KEY",
    "LANGSMITH_ENDPOINT",
    "LANGCHAIN_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)
_OFFLINE = {
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "LANGSMITH_TRACING": "false",
    "LANGSMITH_TRACING_V2": "false",
    "LANGCHAIN_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "OTEL_ENABLED": "false",
    "OTEL_SDK_DISABLED": "true",
}


def _unavailable(reason: str) -> None:
    if os.environ.get("HITL_REQUIRE_REMOTE") == "1":
        pytest.fail(f"LangGraph API server required (HITL_REQUIRE_REMOTE=1): {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class HitlAPI:
    """The local HITL server on loopback."""

    base_url: str
    api_key: str
    loop_id: str
    reviewer: ScriptedReviewer


@dataclass
class Remote:
    """Both servers plus the paths the graph writes to."""

    hitl: HitlAPI
    url: str
    ledger_url: str
    effects: Path
    log: Path

    def effects_of(self, thread_id: str) -> list[str]:
        """What the graph did on ``thread_id``, in order (``gate``, ``refund 250``, ...)."""
        if not self.effects.exists():
            return []
        prefix = f"{thread_id} "
        lines = self.effects.read_text(encoding="utf-8").splitlines()
        return [line.removeprefix(prefix) for line in lines if line.startswith(prefix)]

    def keeper(self) -> Gatekeeper:
        """A keeper over the same HITL API and ledger as the graph's (the dispatcher side)."""
        client = HITLClient(self.hitl.api_key, base_url=self.hitl.base_url)
        return Gatekeeper(client=client, loop_id=self.hitl.loop_id, ledger=self.ledger_url)


@pytest.fixture(scope="module")
def hitl_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HitlAPI]:
    app = create_app(tmp_path_factory.mktemp("hitl") / "hitl.db", scheduler_interval=None)
    state = app.state.hitl
    credentials = state.bootstrap()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", ws="none", lifespan="on", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}/v1"
    http = httpx.Client(timeout=10)
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "the local HITL server did not start in 10 s"
            time.sleep(0.02)
        yield HitlAPI(
            base_url=base_url,
            api_key=credentials.api_key,
            loop_id=credentials.loop_id,
            reviewer=ScriptedReviewer(http, credentials.reviewer_token, base_url),
        )
    finally:
        server.should_exit = True
        thread.join(10)
        http.close()
        sock.close()
        state.close()


def _server_env(hitl: HitlAPI, ledger_url: str, effects: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROP}
    env.update(_OFFLINE)
    env.update(
        HITL_REMOTE_BASE_URL=hitl.base_url,
        HITL_REMOTE_API_KEY=hitl.api_key,
        HITL_REMOTE_LOOP_ID=hitl.loop_id,
        HITL_REMOTE_LEDGER=ledger_url,
        HITL_REMOTE_EFFECTS=str(effects),
        PYTHONUNBUFFERED="1",
        # hitl_agent from this checkout, also when the CLI lives in another virtualenv.
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    )
    return env


def _log_tail(log: Path, chars: int = 2000) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return re.sub(r"\x1b\[[0-9;]*m", "", text)[-chars:]


def _cli() -> Path:
    """The ``langgraph`` CLI: ``$HITL_LANGGRAPH_CLI`` (e.g. from a separate virtualenv), else
    the one beside this interpreter."""
    explicit = os.environ.get("HITL_LANGGRAPH_CLI")
    if explicit:
        if not Path(explicit).is_file():
            _unavailable(f"HITL_LANGGRAPH_CLI={explicit} does not exist")
        return Path(explicit)
    cli = Path(sys.executable).parent / "langgraph"
    if not cli.exists():
        _unavailable(
            f"{cli} not found: pip install 'langgraph-cli[inmem]>=0.4.40,<0.5' "
            "(or point HITL_LANGGRAPH_CLI at a langgraph CLI that has it)"
        )
    for module in ("langgraph_api", "langgraph_runtime_inmem"):
        # Looked up, not imported: the server's libraries only ever run in the subprocess.
        if importlib.util.find_spec(module) is None:
            _unavailable(f"{module} is not installed: pip install 'langgraph-cli[inmem]'")
    return cli


@pytest.fixture(scope="module")
def remote(hitl_api: HitlAPI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    """``langgraph dev`` on a free loopback port, serving ``refund`` and ``nested``."""
    cli = _cli()

    root = tmp_path_factory.mktemp("lgserver")
    config = root / "langgraph.json"
    config.write_text(
        json.dumps(
            {
                "dependencies": [str(APP.parent)],
                "graphs": {"refund": f"{APP}/graph.py:graph", "nested": f"{APP}/graph.py:nested"},
            }
        ),
        encoding="utf-8",
    )
    ledger_url = f"sqlite:///{root / 'ledger.db'}"
    effects = root / "effects.txt"
    log = root / "langgraph.log"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(cli), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1",
             "--port", str(port), "--config", str(config)],
            cwd=root,  # the dev server keeps its .langgraph_api/ files here
            env=_server_env(hitl_api, ledger_url, effects),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    try:
        with httpx.Client(timeout=2) as http:
            while True:
                if proc.poll() is not None:
                    _unavailable(
                        f"langgraph dev exited with {proc.returncode} during startup:\n"
                        f"{_log_tail(log)}"
                    )
                try:
                    if http.get(f"{url}/ok").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() - started > STARTUP_SECONDS:
                    _unavailable(
                        f"langgraph dev did not answer /ok within {STARTUP_SECONDS:.0f} s:\n"
                        f"{_log_tail(log)}"
                    )
                time.sleep(0.1)
        sys.stderr.write(f"\nlanggraph dev up in {time.monotonic() - started:.2f} s at {url}\n")
        yield Remote(hitl=hitl_api, url=url, ledger_url=ledger_url, effects=effects, log=log)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # our own session, started above
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
