"""``hitl-agent bridge``: flag errors, and sweep + poll (--once) on an agent in a module."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

pytest.importorskip("langchain.agents.middleware")

from hitl_agent import HITLClient
from hitl_agent.cli import main
from hitl_agent.testing import local_hitl

AGENT_MODULE = '''
from typing import Any
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool

EFFECTS = []


class Model(GenericFakeChatModel):
    """Calls write_file after the user's message, then says it is done."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        if isinstance(messages[-1], HumanMessage):
            call = {"name": "write_file", "args": {"filename": "a", "content": "x"}, "id": "c1"}
            message = AIMessage(content="", tool_calls=[call])
        else:
            message = AIMessage(content="All done.")
        return ChatResult(generations=[ChatGeneration(message=message)])


@tool
def write_file(filename: str, content: str) -> str:
    """Write a file."""
    EFFECTS.append(f"write_file {filename} {content}")
    return "ok"


agent = create_agent(
    Model(messages=iter([])),
    tools=[write_file],
    middleware=[
        HumanInTheLoopMiddleware({"write_file": {"allowed_decisions": ["approve", "reject"]}})
    ],
)
'''


@pytest.fixture
def agent_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    (tmp_path / "bridge_cli_agent.py").write_text(AGENT_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    return importlib.import_module("bridge_cli_agent")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--graph", "x:y", "--checkpointer", "memory"], "--loop-id"),
        (["--loop-id", "l"], "either --graph"),
        (["--graph", "x:y", "--langgraph-url", "http://h", "--loop-id", "l"], "either --graph"),
        (["--langgraph-url", "http://h", "--loop-id", "l"], "--assistant-id"),
        (["--graph", "m:agent", "--loop-id", "l"], "--checkpointer"),
    ],
)
def test_usage_errors(args: list[str], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HITL_API_KEY", "k")
    result = CliRunner().invoke(main, ["bridge", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_once_sweeps_then_resumes_the_agent(
    agent_module: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langgraph.checkpoint.sqlite import SqliteSaver

    db = tmp_path / "checkpoints.db"
    conn = sqlite3.connect(db, check_same_thread=False)
    app_agent = agent_module.agent.copy(update={"checkpointer": SqliteSaver(conn)})
    cfg = {"configurable": {"thread_id": "cli"}}
    app_agent.invoke({"messages": [{"role": "user", "content": "go"}]}, cfg)
    assert app_agent.get_state(cfg).next

    with local_hitl() as hitl:
        import hitl_agent._client as client_module

        monkeypatch.setattr(
            client_module,
            "HITLClient",
            lambda *a, **k: HITLClient(hitl.api_key, base_url=hitl.base_url, http_client=hitl.http),
        )
        argv = [
            "bridge",
            "--graph",
            "bridge_cli_agent:agent",
            "--checkpointer",
            f"sqlite:///{db}",
            "--ledger",
            f"sqlite:///{tmp_path / 'hitl.db'}",
            "--loop-id",
            hitl.loop_id,
            "--once",
        ]
        first = CliRunner().invoke(main, argv)
        assert first.exit_code == 0, first.output
        assert "1 action(s) pending review, resumed 0" in first.output
        (request,) = hitl.client.requests.iter(loop_id=hitl.loop_id)
        assert request.response_type == "single_select"
        hitl.reviewer.respond(request.id, "approve")
        second = CliRunner().invoke(main, argv)
        assert second.exit_code == 0, second.output
        assert "resumed 1 review(s)" in second.output

    assert agent_module.EFFECTS == ["write_file a x"]
    final = app_agent.get_state(cfg)
    assert not final.next and final.values["messages"][-1].content == "All done."
    conn.close()


def test_the_service_sweeps_on_its_interval_and_survives_a_failing_sweep() -> None:
    import asyncio

    from hitl_agent.cli._bridge import _sweep_forever

    class Bridge:
        calls = 0

        async def asweep(self) -> list[Any]:
            Bridge.calls += 1
            if Bridge.calls == 1:
                raise RuntimeError("checkpointer unreachable")
            return []

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(_sweep_forever(Bridge(), 0.01), 0.2)

    asyncio.run(main())
    assert Bridge.calls >= 3


SERVICE_MODULE = AGENT_MODULE.replace(
    'EFFECTS.append(f"write_file {filename} {content}")',
    'open(os.environ["BRIDGE_EFFECTS"], "a").write(f"write_file {filename} {content}\\n")',
).replace("from typing import Any", "import os\nfrom typing import Any")


def test_the_service_sweeps_and_resumes_on_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``hitl-agent bridge`` as a process: it finds the interrupted thread, creates the
    request, and resumes the agent once the reviewer answers, with no help from the test."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import threading
    import time

    import httpx
    import uvicorn
    from langgraph.checkpoint.sqlite import SqliteSaver

    from hitl_agent.server import create_app
    from hitl_agent.testing import ScriptedReviewer

    (tmp_path / "bridge_service_agent.py").write_text(SERVICE_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    effects = tmp_path / "effects.txt"
    monkeypatch.setenv("BRIDGE_EFFECTS", str(effects))
    import importlib

    module = importlib.import_module("bridge_service_agent")
    db = tmp_path / "checkpoints.db"
    conn = sqlite3.connect(db, check_same_thread=False)
    agent = module.agent.copy(update={"checkpointer": SqliteSaver(conn)})
    cfg = {"configurable": {"thread_id": "svc"}}
    agent.invoke({"messages": [{"role": "user", "content": "go"}]}, cfg)

    app = create_app(tmp_path / "hitl.db", scheduler_interval=None)
    credentials = app.state.hitl.bootstrap()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env = {
        **os.environ,
        "HITL_API_KEY": credentials.api_key,
        "HITL_BASE_URL": base_url,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
    }
    argv = [
        sys.executable, "-m", "hitl_agent", "bridge",
        "--graph", "bridge_service_agent:agent", "--checkpointer", f"sqlite:///{db}",
        "--ledger", f"sqlite:///{tmp_path / 'ledger.db'}", "--loop-id", credentials.loop_id,
        "--port", str(port), "--sweep-interval", "0.2", "--poll-interval", "0.2",
    ]  # fmt: skip
    log = (tmp_path / "bridge.log").open("wb")
    proc = subprocess.Popen(
        argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    http = httpx.Client(timeout=5)
    try:
        reviewer = ScriptedReviewer(http, credentials.reviewer_token, base_url)
        deadline = time.monotonic() + 30
        while not reviewer.queue():
            assert proc.poll() is None, (tmp_path / "bridge.log").read_text()
            assert time.monotonic() < deadline, "the service created no request"
            time.sleep(0.1)
        (request,) = reviewer.queue()
        reviewer.respond(request["id"], "approve")
        while not effects.exists():
            assert time.monotonic() < deadline, (tmp_path / "bridge.log").read_text()
            time.sleep(0.1)
        while agent.get_state(cfg).next:
            assert time.monotonic() < deadline, "the thread was not finished"
            time.sleep(0.1)
        assert agent.get_state(cfg).values["messages"][-1].content == "All done."
        # The service answers the probes an orchestrator sends (issue 24, health).
        assert http.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        ready = http.get(f"http://127.0.0.1:{port}/readyz")
        assert ready.status_code == 200, ready.text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # our own session, started above
        proc.wait(15)
        log.close()
        http.close()
        server.should_exit = True
        thread.join(10)
        app.state.hitl.close()
        conn.close()
    assert effects.read_text().splitlines() == ["write_file a x"]
