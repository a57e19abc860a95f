"""``dispatcher.running()``: the receiver and the poller in a background thread of the agent's
own process, resuming a graph from a real callback sent by the local server over loopback."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import TypedDict

import pytest
import uvicorn
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph

from hitl_agent import Gatekeeper, HITLClient
from hitl_agent.langgraph import GraphResumer
from hitl_agent.server import create_app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class State(TypedDict, total=False):
    approved: bool


def test_running_resumes_from_a_real_callback_and_stops_on_exit(tmp_path: Path) -> None:
    app = create_app(tmp_path / "server.db", scheduler_interval=0.05, callback_base_delay=0.05)
    boot = app.state.hitl.bootstrap()
    hitl_port, receiver_port = _free_port(), _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=hitl_port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    client = HITLClient(boot.api_key, base_url=f"http://127.0.0.1:{hitl_port}/v1")
    keeper = Gatekeeper(
        client=client,
        loop_id=boot.loop_id,
        ledger=f"sqlite:///{tmp_path}/hitl.db",
        callback_url=f"http://127.0.0.1:{receiver_port}/hitl",
    )

    def gate(state: State) -> State:
        return {"approved": keeper.review("Ship?", default_response=False).approved}

    builder = StateGraph(State)
    builder.add_node("gate", gate)
    builder.add_edge(START, "gate")
    builder.add_edge("gate", END)
    conn = sqlite3.connect(tmp_path / "checkpoints.db", check_same_thread=False)
    graph = builder.compile(checkpointer=SqliteSaver(conn))
    dispatcher = keeper.dispatcher(GraphResumer(graph))
    config = {"configurable": {"thread_id": "t1"}}
    try:
        with dispatcher.running(port=receiver_port, poll=False) as running:
            assert running is dispatcher
            result = graph.invoke({}, config)
            request_id = result["__interrupt__"][0].value["hitl_agent"]["request_id"]
            import httpx

            from hitl_agent.testing import ScriptedReviewer

            with httpx.Client() as http:
                reviewer = ScriptedReviewer(
                    http, boot.reviewer_token, f"http://127.0.0.1:{hitl_port}/v1"
                )
                reviewer.respond(request_id, True)
            deadline = time.monotonic() + 20
            while graph.get_state(config).next and time.monotonic() < deadline:
                time.sleep(0.02)
            assert graph.get_state(config).values == {"approved": True}
            assert dispatcher.receiver.accepted >= 1  # the callback did it: polling was off
        with socket.socket() as probe:  # the receiver is gone after the block
            assert probe.connect_ex(("127.0.0.1", receiver_port)) != 0
        # The port is free again: a second block starts.
        with dispatcher.running(port=receiver_port, poll=False):
            pass
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            with (
                pytest.raises(RuntimeError, match="did not start"),
                dispatcher.running(port=taken.getsockname()[1], startup_timeout=5),
            ):
                pass
    finally:
        keeper.close()
        client.close()
        conn.close()
        server.should_exit = True
        thread.join(timeout=10)
        app.state.hitl.close()
