"""The matrices' loopback servers answer without Nagle's delay (issue 12).

``serve_asgi`` once pre-bound a ``proto == 0`` socket, so asyncio never set ``TCP_NODELAY``
on accepted connections and each two-piece response waited ≈ 40 ms for a delayed ACK.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx
from rel_support import serve_asgi, stop_asgi


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b'{"ok": true}'
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def test_accepted_connections_have_tcp_nodelay() -> None:
    server, thread, port = serve_asgi(_app)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            samples = []
            for _ in range(6):  # keep-alive: the same accepted socket each time
                start = time.perf_counter()
                assert http.get("/").status_code == 200
                samples.append(time.perf_counter() - start)
            connections = list(server.server_state.connections)
            assert connections, "the keep-alive connection is gone"
            for protocol in connections:
                sock = protocol.transport.get_extra_info("socket")
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        # Without TCP_NODELAY every call after the first costs ≈ 40 ms (delayed ACK).
        assert sorted(samples[1:])[2] < 0.030, samples
    finally:
        stop_asgi(server, thread)
