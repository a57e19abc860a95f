"""What a loopback HTTP call costs when the listening socket lacks ``TCP_NODELAY`` (issue 12).

The tests' ``serve_asgi`` pre-bound its socket as ``socket.socket(AF_INET, SOCK_STREAM)``:
its ``proto`` is 0, so asyncio never sets ``TCP_NODELAY`` on the connections uvicorn accepts,
and a response written in two pieces (headers, then body: what Starlette and the receiver do)
waits for the client's delayed ACK. Ours: the socket as ``_loopback.listening_socket()`` and
the fixed ``serve_asgi`` make it; baseline: the old pre-bound socket. Sequential keep-alive
GETs through one ``httpx.Client``, p50 per run.
"""

from __future__ import annotations

import sys

import httpx
from _harness import Result, Target, percentile, print_table, time_calls
from _loopback import serve


async def app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
    if scope["type"] != "http":
        return
    body = b'{"error": false, "msg": "ok"}'
    await send(  # type: ignore[operator]
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})  # type: ignore[operator]


def p50_ms(nodelay: bool, calls: int) -> float:
    served = serve(app, nodelay=nodelay, lifespan="off")
    try:
        with httpx.Client(base_url=served.url) as http:
            samples = time_calls(lambda: http.get("/"), calls, warmup=3)
    finally:
        served.stop()
    return percentile(samples, 50) * 1000


def run(quick: bool) -> list[Result]:
    runs, calls = (2, 10) if quick else (3, 30)
    row = Result(
        "loopback GET, serve_asgi with TCP_NODELAY (p50)", "ms", Target("ratio<=", 0.1),
        baseline_name="the old pre-bound socket (proto 0)",
    )  # fmt: skip
    for _ in range(runs):
        row.ours_runs.append(p50_ms(True, calls))
        row.baseline_runs.append(p50_ms(False, calls))
    return [row]


if __name__ == "__main__":
    print_table(run("--quick" in sys.argv))
