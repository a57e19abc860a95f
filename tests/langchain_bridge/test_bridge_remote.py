"""The bridge against a real LangGraph Server (``langgraph dev``, in-memory runtime): threads
found by ``bridge.sweep()`` (the SDK's thread search on ``interrupted``) and resumed through
the SDK with LangChain's decisions. Reuses the remote-resumer tests' servers; skips with the
reason when ``langgraph dev`` (with ``langchain`` installed beside it) cannot start."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_sync_client

from hitl_agent.gate import Gatekeeper

pytestmark = pytest.mark.timeout(120)

_SUPPORT_PATH = Path(__file__).resolve().parent.parent / "langgraph_remote" / "conftest.py"
_spec = importlib.util.spec_from_file_location("lg_remote_support", _SUPPORT_PATH)
assert _spec is not None and _spec.loader is not None
support: Any = sys.modules.get("lg_remote_support") or importlib.util.module_from_spec(_spec)
if "lg_remote_support" not in sys.modules:
    sys.modules["lg_remote_support"] = support  # dataclasses look their module up here
    _spec.loader.exec_module(support)

hitl_api = support.hitl_api  # the local HITL server on loopback (a module fixture)
APP = Path(__file__).resolve().parent / "remote_app"


@pytest.fixture(scope="module")
def server(hitl_api: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``langgraph dev`` serving ``batched`` and ``per_call`` from remote_app/agents.py."""
    cli = support._cli()
    root = tmp_path_factory.mktemp("lgbridge")
    config = root / "langgraph.json"
    graphs = {name: f"{APP}/agents.py:{name}" for name in ("batched", "per_call")}
    config.write_text(json.dumps({"dependencies": [str(APP)], "graphs": graphs}))
    ledger_url = f"sqlite:///{root / 'ledger.db'}"
    effects = root / "effects.txt"
    log = root / "langgraph.log"
    port = support._free_port()
    url = f"http://127.0.0.1:{port}"
    env = support._server_env(hitl_api, ledger_url, effects)
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(cli), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1",
             "--port", str(port), "--config", str(config)],
            cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    try:
        with httpx.Client(timeout=2) as http:
            while True:
                if proc.poll() is not None:
                    support._unavailable(
                        f"langgraph dev exited with {proc.returncode}:\n{support._log_tail(log)}"
                    )
                try:
                    if http.get(f"{url}/ok").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() - started > support.STARTUP_SECONDS:
                    support._unavailable(f"langgraph dev did not start:\n{support._log_tail(log)}")
                time.sleep(0.1)
        yield support.Remote(
            hitl=hitl_api, url=url, ledger_url=ledger_url, effects=effects, log=log
        )
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # our own session, started above
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


@pytest.fixture
def sdk(server: Any) -> Iterator[Any]:
    client = get_sync_client(url=server.url, api_key=None)
    yield client
    client.close()


@pytest.fixture
def keeper(server: Any) -> Iterator[Gatekeeper]:
    with server.keeper() as gatekeeper:
        yield gatekeeper


def _start(sdk: Any, assistant: str) -> str:
    thread_id = str(sdk.threads.create()["thread_id"])
    result = sdk.runs.wait(
        thread_id, assistant, input={"messages": [{"role": "user", "content": "go"}]}
    )
    assert result["__interrupt__"], result
    return thread_id


def _answer(server: Any, row: Any, choice: str) -> None:
    server.hitl.reviewer.respond(row.request_id, choice)


def _follow(server: Any, keeper: Gatekeeper, row: Any, text: str) -> None:
    """Answer the follow-up the first tap opened (its key: the first's plus ``|1``)."""
    second = keeper.ledger.get(row.key + "|1")
    assert second is not None and second.request_id is not None
    server.hitl.reviewer.respond(second.request_id, text)


def _tool(server: Any, row: Any) -> str:
    return str(server.hitl.reviewer.get(row.request_id)["context"]["langchain_bridge"]["tool"])


def test_batched_thread_found_by_sweep_and_resumed_through_the_sdk(
    server: Any, sdk: Any, keeper: Gatekeeper
) -> None:
    thread_id = _start(sdk, "batched")
    bridge = keeper.bridge(langgraph_url=server.url, assistant_id="batched", client=sdk)
    rows = [r for r in bridge.sweep() if r.thread_id == thread_id]
    assert sorted(_tool(server, r) for r in rows) == ["execute_sql", "write_file"]
    again = [r for r in bridge.sweep() if r.thread_id == thread_id]
    assert {r.request_id for r in again} == {r.request_id for r in rows}
    by_tool = {_tool(server, r): r for r in rows}

    dispatcher = keeper.dispatcher(bridge.resumer)
    _answer(server, by_tool["execute_sql"], "reject")
    assert dispatcher.poll_once() == []  # write_file is not decided: nothing is sent
    _answer(server, by_tool["write_file"], "edit")
    assert dispatcher.poll_once() == []  # the edit's follow-up opens: nothing is sent
    _follow(
        server, keeper, by_tool["write_file"], json.dumps({"filename": "a", "content": "edited"})
    )
    assert len(dispatcher.poll_once()) == 3  # both first rows and the follow-up, once

    assert server.effects_of(thread_id) == ["write_file a edited", "read_data q"] or sorted(
        server.effects_of(thread_id)
    ) == ["read_data q", "write_file a edited"]
    state = sdk.threads.get_state(thread_id)
    assert not state["next"]
    assert state["values"]["messages"][-1]["content"] == "All done."
    assert all(keeper.ledger.get(r.key).state == "resumed" for r in rows)  # type: ignore[union-attr]


def test_per_call_thread_each_call_resumed_by_its_interrupt_id(
    server: Any, sdk: Any, keeper: Gatekeeper
) -> None:
    thread_id = _start(sdk, "per_call")
    assert server.effects_of(thread_id) == ["read_data q"]  # ungated: ran at once
    bridge = keeper.bridge(langgraph_url=server.url, assistant_id="per_call", client=sdk)
    rows = [r for r in bridge.sweep() if r.thread_id == thread_id]
    by_tool = {_tool(server, r): r for r in rows}
    assert set(by_tool) == {"write_file", "execute_sql"}
    # The per_call response_schema reached the form: execute_sql offers no edit.
    sql_request = server.hitl.reviewer.get(by_tool["execute_sql"].request_id)
    assert sql_request["response_type"] == "single_select"

    dispatcher = keeper.dispatcher(bridge.resumer)
    _answer(server, by_tool["execute_sql"], "approve")
    assert len(dispatcher.poll_once()) == 1
    assert server.effects_of(thread_id) == ["read_data q", "execute_sql DELETE t"]
    assert sdk.threads.get_state(thread_id)["next"]  # write_file still waits
    _answer(server, by_tool["write_file"], "respond")
    assert dispatcher.poll_once() == []
    _follow(server, keeper, by_tool["write_file"], "done by hand")
    assert len(dispatcher.poll_once()) == 2
    state = sdk.threads.get_state(thread_id)
    assert not state["next"]
    tool_results = {
        m["tool_call_id"]: m["content"] for m in state["values"]["messages"] if m["type"] == "tool"
    }
    assert tool_results["c0"] == "done by hand"
    assert server.effects_of(thread_id) == ["read_data q", "execute_sql DELETE t"]


def test_asweep_and_the_async_dispatcher_on_the_server(
    server: Any, sdk: Any, keeper: Gatekeeper
) -> None:
    import asyncio

    thread_id = _start(sdk, "batched")
    bridge = keeper.bridge(langgraph_url=server.url, assistant_id="batched")

    async def main() -> int:
        rows = [r for r in await bridge.asweep() if r.thread_id == thread_id]
        assert len(rows) == 2
        for row in rows:
            await asyncio.to_thread(_answer, server, row, "approve")
        delivered = await keeper.dispatcher(bridge.resumer).apoll_once()
        await bridge.remote.aclose()
        return len(delivered)

    assert asyncio.run(main()) == 2
    assert sorted(server.effects_of(thread_id)) == [
        "execute_sql DELETE t",
        "read_data q",
        "write_file a x",
    ]
    assert not sdk.threads.get_state(thread_id)["next"]


def test_per_call_edit_the_server_refuses_becomes_a_reject(
    server: Any, sdk: Any, keeper: Gatekeeper
) -> None:
    """The tools are not visible from here, so args are checked by the server's per_call
    schema; its refusal saves nothing, and the bridge answers again with a reject."""
    thread_id = _start(sdk, "per_call")
    bridge = keeper.bridge(langgraph_url=server.url, assistant_id="per_call", client=sdk)
    by_tool = {_tool(server, r): r for r in bridge.submit(thread_id)}
    dispatcher = keeper.dispatcher(bridge.resumer)
    bad = json.dumps({"filename": "a"})  # content is required by write_file
    _answer(server, by_tool["write_file"], "edit")
    _answer(server, by_tool["execute_sql"], "reject")
    assert len(dispatcher.poll_once()) == 1  # the reject; the edit's follow-up opens
    _follow(server, keeper, by_tool["write_file"], bad)
    assert len(dispatcher.poll_once()) == 2
    state = sdk.threads.get_state(thread_id)
    assert not state["next"]
    results = {m["tool_call_id"]: m for m in state["values"]["messages"] if m["type"] == "tool"}
    assert results["c0"]["status"] == "error"
    assert "the server refused it" in results["c0"]["content"]
    assert "ValidationError" in results["c0"]["content"]
    assert server.effects_of(thread_id) == ["read_data q"]
