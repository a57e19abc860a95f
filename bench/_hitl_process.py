"""The local HITL server in a process of its own, on a loopback port (run by ``_loopback``).

In the field HITL.sh runs on another machine; served from a thread of the benchmark's own
process it would take the GIL from the code under test on every truth GET and every
callback it sends, a cost no deployment pays. Prints ``ready <port>`` once it listens.

    python bench/_hitl_process.py DB [--sends]

It stops when its stdin closes: a benchmark that dies leaves no server behind.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import uvicorn
from _loopback import listening_socket

from hitl_agent.server import create_app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("--sends", action="store_true", help="run the callback scheduler")
    args = parser.parse_args()
    # sends: the scheduler runs (woken by each answer) and POSTs callbacks; else it never
    # sends one and the benchmark sends them itself.
    app = create_app(args.db, scheduler_interval=30.0 if args.sends else None)
    sock = listening_socket()
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, timeout_keep_alive=60, backlog=2048
    )
    server = uvicorn.Server(config)
    original = server.startup

    async def startup(sockets: list | None = None) -> None:  # type: ignore[type-arg]
        await original(sockets=sockets)
        print(f"ready {sock.getsockname()[1]}", flush=True)

    server.startup = startup  # type: ignore[method-assign]

    def parent_gone() -> None:
        sys.stdin.read()  # returns at EOF: the parent exited or closed the pipe
        server.should_exit = True

    threading.Thread(target=parent_gone, daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        app.state.hitl.close()


if __name__ == "__main__":
    main()
