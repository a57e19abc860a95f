"""ASGI apps on real loopback ports for the benchmarks (uvicorn in a daemon thread).

The listening socket is created with ``IPPROTO_TCP`` as its protocol: asyncio only sets
``TCP_NODELAY`` on accepted sockets whose ``proto`` is TCP, and a socket made with
``socket.socket(AF_INET, SOCK_STREAM)`` has ``proto == 0``. Without it, Nagle's algorithm
and the client's delayed ACK add ≈ 40 ms to every response written in two pieces
(``bench_loopback`` measures exactly that).
"""

from __future__ import annotations

import select
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Served",
    "ServedProcess",
    "listening_socket",
    "serve",
    "serve_hitl_process",
    "spawn",
]


def listening_socket(*, nodelay: bool = True) -> socket.socket:
    """A socket bound to 127.0.0.1:<free port>; ``nodelay=False`` reproduces the old bug."""
    proto = socket.IPPROTO_TCP if nodelay else 0
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if nodelay:  # Linux copies it to accepted sockets too
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class Served:
    server: Any
    thread: threading.Thread
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def serve(
    app: Any,
    *,
    nodelay: bool = True,
    sock: socket.socket | None = None,
    lifespan: str = "on",
    **config: Any,
) -> Served:
    """Run ``app`` with uvicorn on a loopback port (``sock``, or a new one) until
    :meth:`Served.stop`."""
    import uvicorn

    sock = sock or listening_socket(nodelay=nodelay)
    port = sock.getsockname()[1]
    uv_config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan=lifespan,
        access_log=False,
        timeout_keep_alive=60,
        backlog=2048,
        **config,
    )
    server = uvicorn.Server(uv_config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the uvicorn server did not start")
        time.sleep(0.005)
    return Served(server, thread, port)


@dataclass
class ServedProcess:
    """A benchmark helper script running in a child process (see :func:`spawn`)."""

    process: subprocess.Popen[str]
    port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def expect(self, word: str, timeout: float = 120.0) -> str:
        """The child's next stdout line, which must start with ``word``."""
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline().strip() if ready else ""
        if not line.startswith(word):
            self.stop()
            raise RuntimeError(f"{self.process.args!r}: expected {word!r}, got {line!r}")
        return line

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def spawn(script: str, *args: str) -> ServedProcess:
    """Run ``bench/<script>`` with this interpreter, stdin and stdout as pipes."""
    path = Path(__file__).resolve().parent / script
    process = subprocess.Popen(
        [sys.executable, str(path), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    return ServedProcess(process)


def serve_hitl_process(db: str, *flags: str) -> ServedProcess:
    """The local HITL server on ``db`` in a child process (``bench/_hitl_process.py``)."""
    child = spawn("_hitl_process.py", db, *flags)
    child.port = int(child.expect("ready").split()[1])
    return child
