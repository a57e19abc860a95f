"""The local server: create / list / get latency at 100,000 stored requests, and requests/s
under a bounded load against a plain Starlette app on the same uvicorn (issue 12, item 6).

* **Latency**: through the HTTP API in process (starlette ``TestClient``), ``SAMPLES`` calls
  of each operation per run, p50 and p99. Seeding goes straight through the storage layer (it
  is not what is measured). The baseline of each row is the same operation at 1,000 stored
  requests, measured in the same run: the ratio shows whether the indexes keep it flat.
* **Load**: ``wrk`` (Debian package ``wrk``; rows are skipped with the reason when it is
  missing), 10 connections, 2 threads, against the local server on uvicorn and against a plain
  Starlette app on the same uvicorn config answering the same routes with a stored JSON
  document (GET) or a parsed body (POST) and no storage, no auth.

    .venv/bin/python bench/bench_server.py [--quick]      # quick: 1,000 vs 10,000 stored
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import INFO, Result, Target, percentile, print_table, skipped
from _loopback import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from hitl_agent.server import create_app
from hitl_agent.server._storage import PRIORITY_RANK
from hitl_agent.server._util import dumps, new_id

BODY = {
    "processing_type": "time-sensitive",
    "type": "markdown",
    "priority": "medium",
    "request_text": "Approve the refund of $42 to customer 1234?",
    "response_type": "single_select",
    "response_config": {"options": ["Approve", "Reject"]},
    "default_response": "reject",
    "timeout_seconds": 3600,
    "platform": "api",
}
CONNECTIONS = 10


def seed(app: Any, key_id: str, user_id: str, loop_id: str, count: int) -> list[str]:
    """Insert ``count`` requests, a third pending, the rest completed or timed out."""
    now = time.time() - count
    statuses = ("pending", "completed", "timeout")
    priorities = tuple(PRIORITY_RANK)
    rows = []
    for index in range(count):
        priority = priorities[index % 4]
        body = dumps({**BODY, "priority": priority})
        created = now + index
        rows.append(
            (new_id(created), loop_id, key_id, user_id, statuses[index % 3], priority,
             PRIORITY_RANK[priority], body, "[]", created + 86400, created, created)
        )  # fmt: skip
    with app.state.hitl.storage.transaction() as conn:
        conn.executemany(
            "INSERT INTO requests (id, loop_id, api_key_id, creator_id, status, priority, "
            "priority_rank, body, broadcasted_to, timeout_at, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return [row[0] for row in rows]


class Seeded:
    """A local server app with ``stored`` requests and its credentials."""

    def __init__(self, stored: int, directory: Path) -> None:
        self.app = create_app(directory / f"bench-{stored}.db", scheduler_interval=None)
        server = self.app.state.hitl
        self.creds = server.bootstrap()
        with server.storage.read() as conn:
            row = conn.execute("SELECT id, user_id FROM api_keys").fetchone()
        self.ids = seed(self.app, row["id"], row["user_id"], self.creds.loop_id, stored)
        self.headers = {"Authorization": f"Bearer {self.creds.api_key}"}
        self.create_path = f"/v1/api/loops/{self.creds.loop_id}/requests"

    def close(self) -> None:
        self.app.state.hitl.close()


def latencies(seeded: Seeded, samples: int) -> dict[str, list[float]]:
    """ms per call of create, list (50, status=pending, random offset) and get."""
    out: dict[str, list[float]] = {"create": [], "list": [], "get": []}
    clock = time.perf_counter
    offsets = max(1, min(500, len(seeded.ids) // 3 - 50))  # a third of the seeded rows pend
    with TestClient(seeded.app) as http:
        for _ in range(20):  # warm both paths
            http.post(seeded.create_path, json=BODY, headers=seeded.headers)
            http.get("/v1/api/requests", params={"status": "pending"}, headers=seeded.headers)
        for _ in range(samples):
            start = clock()
            response = http.post(seeded.create_path, json=BODY, headers=seeded.headers)
            out["create"].append((clock() - start) * 1000)
            assert response.status_code == 201
            params = {"status": "pending", "limit": 50, "offset": random.randrange(offsets)}
            start = clock()
            response = http.get("/v1/api/requests", params=params, headers=seeded.headers)
            out["list"].append((clock() - start) * 1000)
            assert response.status_code == 200 and response.json()["data"]["count"] == 50
            request_id = random.choice(seeded.ids)
            start = clock()
            response = http.get(f"/v1/api/requests/{request_id}", headers=seeded.headers)
            out["get"].append((clock() - start) * 1000)
            assert response.status_code == 200
    return out


def latency_rows(quick: bool) -> list[Result]:
    small, large = 1_000, (10_000 if quick else 100_000)
    runs, samples = (2, 40) if quick else (3, 200)
    targets = {
        ("create", 50): Target("ours<=", 2.0),
        ("list", 99): Target("ours<=", 10.0),
    }
    rows: dict[tuple[str, int], Result] = {}
    for op in ("create", "list", "get"):
        for q in (50, 99):
            rows[(op, q)] = Result(
                f"local server {op} p{q}, {large:,} stored", "ms",
                targets.get((op, q), INFO), baseline_name=f"same at {small:,} stored",
            )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        apps = {size: Seeded(size, Path(tmp)) for size in (small, large)}
        try:
            for _ in range(runs):
                measured = {size: latencies(apps[size], samples) for size in (small, large)}
                for (op, q), row in rows.items():
                    row.ours_runs.append(percentile(measured[large][op], q))
                    row.baseline_runs.append(percentile(measured[small][op], q))
        finally:
            for seeded in apps.values():
                seeded.close()
    return list(rows.values())


# -- load with wrk ------------------------------------------------------------------------


def plain_app(document: dict[str, Any]) -> Starlette:
    """The baseline: the same routes on Starlette, answering from memory."""
    text = json.dumps({"error": False, "msg": "ok", "data": document})

    async def get_request(request: Request) -> JSONResponse:
        return JSONResponse(json.loads(text))

    async def create_request(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse(
            {"error": False, "msg": "created", "data": {"request_id": new_id(time.time()), **body}},
            status_code=201,
        )

    return Starlette(
        routes=[
            Route("/v1/api/requests/{request_id}", get_request, methods=["GET"]),
            Route("/v1/api/loops/{loop_id}/requests", create_request, methods=["POST"]),
        ]
    )


_RPS = re.compile(r"Requests/sec:\s+([0-9.]+)")
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")


def wrk(url: str, seconds: int, script: Path | None, headers: dict[str, str]) -> float:
    """requests/s of ``wrk`` at ``CONNECTIONS`` connections; raises on errors."""
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if script is not None:
        command += ["-s", str(script)]
    done = subprocess.run([*command, url], capture_output=True, text=True, timeout=seconds + 30)
    if done.returncode != 0:  # the command line carries the API key: not in the message
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()[:200]}")
    out = done.stdout
    if _NON2XX.search(out):
        raise RuntimeError(f"wrk saw non-2xx answers from {url}:\n{out}")
    found = _RPS.search(out)
    if found is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{out}")
    return float(found.group(1))


def load_rows(quick: bool) -> list[Result]:
    names = ("GET /requests/{id}", "POST /loops/{id}/requests")
    targets = (Target("ratio>=", 0.8), Target("ratio>=", 0.6))
    label = f"local server requests/s, {CONNECTIONS} connections"
    if shutil.which("wrk") is None:
        reason = "wrk is not installed (apt-get install wrk, or make bench installs it)"
        pairs = zip(names, targets, strict=True)
        return [skipped(f"{label}, {n}", "1/s", t, reason) for n, t in pairs]
    runs, seconds = (1, 1) if quick else (3, 3)
    rows = [
        Result(f"{label}, {n}", "1/s", t, baseline_name="plain Starlette, same uvicorn")
        for n, t in zip(names, targets, strict=True)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        seeded = Seeded(1_000, Path(tmp))
        ours = serve(seeded.app)
        with TestClient(seeded.app) as http:
            document = http.get(f"/v1/api/requests/{seeded.ids[0]}", headers=seeded.headers).json()[
                "data"
            ]
        plain = serve(plain_app(document), lifespan="off")
        script = Path(tmp) / "post.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(json.dumps(BODY))}\n"
            'wrk.headers["Content-Type"] = "application/json"\n',
            encoding="utf-8",
        )
        try:
            for _ in range(runs):
                get_path = f"/v1/api/requests/{seeded.ids[0]}"
                for row, path, lua in (
                    (rows[0], get_path, None),
                    (rows[1], seeded.create_path, script),
                ):
                    row.ours_runs.append(wrk(ours.url + path, seconds, lua, seeded.headers))
                    row.baseline_runs.append(wrk(plain.url + path, seconds, lua, seeded.headers))
        finally:
            ours.stop()
            plain.stop()
            seeded.close()
    return rows


def run(quick: bool) -> list[Result]:
    random.seed(7)
    return latency_rows(quick) + load_rows(quick)


if __name__ == "__main__":
    print_table(run("--quick" in sys.argv))
