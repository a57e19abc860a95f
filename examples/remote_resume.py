"""Remote resume: the graph runs on a LangGraph Server, the dispatcher runs here.

The graph (``examples/remote_app/graph.py``: ``refund`` calls ``keeper.review(...)``, then pays)
is deployed on a LangGraph API server, here ``langgraph dev`` started as a subprocess. Its
keeper is configured from environment variables: the HITL API, the loop, and a ledger this
process shares. This process never imports the graph: it starts a thread through
``langgraph_sdk``, the run stops at the review, and when the reviewer has answered::

    dispatcher = keeper.dispatcher(RemoteGraphResumer(url, "refund"))
    dispatcher.poll_once()  # finds the decision, resumes exactly that thread on the server

It shows, printing each step: the run parked on its interrupt (one request created); a sweep
before the answer resumes nothing; the reviewer approves; the next sweep resumes the remote
thread, which finishes with the refund paid **once** (the replayed node finds its decision in
the ledger and creates no second request); a later sweep is a no-op. The server is stopped at
the end, also on errors.

Run it offline (the embedded HITL server on 127.0.0.1; the script plays the reviewer)::

    make langgraph-server   # once: the LangGraph server in .venv-langgraph-server/
    python examples/remote_resume.py

or against the real HITL.sh, answering on the phone app::

    HITL_LIVE=1 HITL_API_KEY=... HITL_LOOP_ID=... python examples/remote_resume.py

``HITL_LIVE=1`` is the switch: an exported ``HITL_API_KEY`` alone (as after
``hitl-agent serve``) still runs offline. ``HITL_BASE_URL`` sends the live run elsewhere,
e.g. to a ``hitl-agent serve`` whose console you answer in.

The ``langgraph`` CLI lives in its own virtualenv (``langgraph-api`` pins libraries the dev
tools need newer): this script uses ``$HITL_LANGGRAPH_CLI``, else a ``langgraph`` beside this
interpreter, else ``.venv-langgraph-server/bin/langgraph`` in the checkout. Nothing in the
server's environment can phone home: analytics, tracing, version checks and the license
beacon are switched off.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from langgraph_sdk import get_sync_client

from hitl_agent import Gatekeeper, HITLClient
from hitl_agent.langgraph import PAYLOAD_KEY
from hitl_agent.langgraph.remote import RemoteGraphResumer
from hitl_agent.server import create_app
from hitl_agent.testing import ScriptedReviewer

APP = Path(__file__).resolve().parent / "remote_app"
ROOT = APP.parents[1]  # the checkout: the server imports hitl_agent from here
ASSISTANT = "refund"
STARTUP_SECONDS = 60.0

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


class ServerUnavailable(SystemExit):
    """The LangGraph server cannot run here: the message says how to get it."""


@dataclass
class Hitl:
    base_url: str
    api_key: str
    loop_id: str
    reviewer: ScriptedReviewer | None  # None on the real HITL.sh: a human answers


@dataclass
class Result:
    thread_id: str
    request_id: str
    before_answer: Sequence[str]  # outcomes delivered by the sweep before the reviewer answered
    delivered: Sequence[str]  # ... by the sweep after
    after: Sequence[str]  # ... by a later sweep
    result: str  # the thread's final "result" value on the server
    runs: Sequence[str]  # the thread's runs on the server
    refunds: list[str]  # the lines the graph's refund node wrote
    requests_created: int | None  # the loop's total, as the API counts it
    server_url: str  # where the LangGraph server was (stopped by the time main() returns)


def find_cli() -> Path:
    """The ``langgraph`` CLI, or :class:`ServerUnavailable` saying how to install it."""
    explicit = os.environ.get("HITL_LANGGRAPH_CLI")
    if explicit:
        if not Path(explicit).is_file():
            raise ServerUnavailable(
                f"HITL_LANGGRAPH_CLI={explicit} does not exist (`make langgraph-server` makes "
                f"{ROOT / '.venv-langgraph-server/bin/langgraph'})"
            )
        return Path(explicit)
    beside = Path(sys.executable).parent / "langgraph"
    # Looked up, not imported: the server's libraries only ever run in the subprocess.
    if beside.is_file() and importlib.util.find_spec("langgraph_api") is not None:
        return beside
    in_checkout = ROOT / ".venv-langgraph-server" / "bin" / "langgraph"
    if in_checkout.is_file():
        return in_checkout
    raise ServerUnavailable(
        "the langgraph CLI (with langgraph-api) was not found: run `make langgraph-server` in "
        f"{ROOT}, or set HITL_LANGGRAPH_CLI to a `langgraph` from `pip install "
        "'langgraph-cli[inmem]'`"
    )


@contextlib.contextmanager
def hitl_api(tmp: Path) -> Iterator[Hitl]:
    """The real HITL.sh when HITL_LIVE=1 asks for it, else the embedded server on loopback (the
    graph's server process must reach it over HTTP, so no in-process transport here)."""
    if os.environ.get("HITL_LIVE") == "1":
        loop_id, api_key = os.environ.get("HITL_LOOP_ID"), os.environ.get("HITL_API_KEY")
        if not loop_id or not api_key:
            raise SystemExit(
                "HITL_LIVE=1: set HITL_API_KEY, and HITL_LOOP_ID to the loop to ask in"
            )
        base_url = os.environ.get("HITL_BASE_URL", "https://api.hitl.sh/v1")
        yield Hitl(base_url, api_key, loop_id, None)
        return
    app = create_app(tmp / "hitl.db", scheduler_interval=None)
    credentials = app.state.hitl.bootstrap()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound up front: no free-port race
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        with httpx.Client(timeout=10) as http:
            deadline = time.monotonic() + 15
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError("the local HITL server did not start")
                time.sleep(0.02)
            reviewer = ScriptedReviewer(http, credentials.reviewer_token, base_url)
            yield Hitl(base_url, credentials.api_key, credentials.loop_id, reviewer)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        app.state.hitl.close()


@contextlib.contextmanager
def langgraph_server(tmp: Path, env: dict[str, str]) -> Iterator[str]:
    """``langgraph dev`` serving ``remote_app/graph.py:graph`` on loopback; yields its URL.
    Stopped (its whole process group) when the block ends, however it ends."""
    cli = find_cli()
    config = tmp / "langgraph.json"
    spec = {"dependencies": [str(APP)], "graphs": {ASSISTANT: f"{APP}/graph.py:graph"}}
    config.write_text(json.dumps(spec), encoding="utf-8")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url, log = f"http://127.0.0.1:{port}", tmp / "langgraph.log"
    argv = [str(cli), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--config", str(config)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=tmp,  # the dev server keeps its .langgraph_api/ files here
            env=env,
            stdout=out,  # the server logs freely: kept in a file, shown on failure
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so it can be stopped whole
        )

    def tail() -> str:
        text = log.read_text(encoding="utf-8", errors="replace")
        return re.sub(r"\x1b\[[0-9;]*m", "", text)[-2000:]  # without colour codes

    try:
        started = time.monotonic()
        with httpx.Client(timeout=2) as http:
            while True:
                if proc.poll() is not None:
                    raise ServerUnavailable(f"langgraph dev exited ({proc.returncode}):\n{tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if http.get(f"{url}/ok").status_code == 200:
                        break
                if time.monotonic() - started > STARTUP_SECONDS:
                    raise ServerUnavailable(f"langgraph dev did not start in time:\n{tail()}")
                time.sleep(0.1)
        print(f"langgraph dev up at {url} in {time.monotonic() - started:.1f} s")
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        print("langgraph dev stopped")


def server_env(hitl: Hitl, ledger: str, refunds: Path) -> dict[str, str]:
    """What the graph's process gets: this environment made offline, plus its keeper's config."""
    env = {k: v for k, v in os.environ.items() if k not in _DROP}
    env.update(_OFFLINE)
    env.update(
        HITL_API_KEY=hitl.api_key,
        HITL_BASE_URL=hitl.base_url,
        HITL_LOOP_ID=hitl.loop_id,
        HITL_LEDGER=ledger,
        REFUNDS_LOG=str(refunds),
        # hitl_agent from this checkout, also when the CLI lives in another virtualenv.
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    )
    return env


def main() -> Result:
    find_cli()  # before anything starts: a missing CLI is a message, not a traceback
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hitl-remote-")))
        hitl = stack.enter_context(hitl_api(tmp))
        ledger, refunds = f"sqlite:///{tmp / 'ledger.db'}", tmp / "refunds.log"
        url = stack.enter_context(langgraph_server(tmp, server_env(hitl, ledger, refunds)))
        sdk = stack.enter_context(contextlib.closing(get_sync_client(url=url, api_key=None)))
        client = stack.enter_context(HITLClient(hitl.api_key, base_url=hitl.base_url))
        # This process's keeper: the same HITL API, loop and ledger as the graph's.
        keeper = stack.enter_context(Gatekeeper(client=client, loop_id=hitl.loop_id, ledger=ledger))

        thread_id = str(sdk.threads.create()["thread_id"])
        out = sdk.runs.wait(thread_id, ASSISTANT, input={"order_id": "1234", "amount": 250})
        assert isinstance(out, dict)
        (interrupt,) = out["__interrupt__"]
        request_id = interrupt["value"][PAYLOAD_KEY]["request_id"]
        print(f"1. thread {thread_id} ran on the server up to its review: request {request_id}")

        dispatcher = keeper.dispatcher(RemoteGraphResumer(url, ASSISTANT, client=sdk))
        before = [d.outcome for d in dispatcher.poll_once()]
        print(f"2. poll_once() before any answer: {len(before)} decision(s) delivered")

        if hitl.reviewer is not None:
            hitl.reviewer.respond(request_id, "approve")
            print("3. the reviewer answers 'approve'")
            delivered = [d.outcome for d in dispatcher.poll_once()]
        else:
            print("3. answer the request in the HITL.sh app (polling every 20 s)")
            while not (delivered := [d.outcome for d in dispatcher.poll_once()]):
                time.sleep(20)
        print(f"4. poll_once(): {delivered} delivered, thread resumed on the server")

        values = sdk.threads.get_state(thread_id)["values"]
        assert isinstance(values, dict)
        runs = [run["status"] for run in sdk.runs.list(thread_id)]
        paid = refunds.read_text(encoding="utf-8").splitlines() if refunds.exists() else []
        print(f"5. thread result: {values.get('result')!r}; runs: {runs}; refunds paid: {paid}")
        after = [d.outcome for d in dispatcher.poll_once()]
        print(f"6. a later poll_once(): {len(after)} decision(s) delivered")
        created = client.requests.list(loop_id=hitl.loop_id).total
        print(f"   requests created: {created}")
    return Result(
        thread_id, request_id, before, delivered, after, str(values.get("result")), runs, paid,
        created, url,
    )  # fmt: skip


if __name__ == "__main__":
    main()
