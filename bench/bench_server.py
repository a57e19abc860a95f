"""Local server latency: create and list (page of 50, filtered by status) at 1,000 and 100,000
stored requests, through the HTTP API (starlette TestClient, in process).

Seeding goes straight through the storage layer (it is not what is measured). The comparable
figure is the ratio of the 100,000 row to the 1,000 row: it shows whether the indexes keep the
list query flat as the table grows.

    .venv/bin/python bench/bench_server.py            # about a minute
    .venv/bin/python bench/bench_server.py --quick    # 1,000 vs 10,000
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from hitl_agent.server import create_app
from hitl_agent.server._storage import PRIORITY_RANK
from hitl_agent.server._util import dumps, new_id

SAMPLES = 300
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


def seed(app: Any, key_id: str, user_id: str, loop_id: str, count: int) -> None:
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


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p95 in milliseconds."""
    ordered = sorted(samples)
    return (
        statistics.median(ordered) * 1000,
        ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000,
    )


def measure(stored: int, directory: Path) -> dict[str, tuple[float, float]]:
    """Seed ``stored`` requests and time creates and list pages through the API."""
    app = create_app(directory / f"bench-{stored}.db", scheduler_interval=None)
    server = app.state.hitl
    try:
        creds = server.bootstrap()
        with server.storage.read() as conn:
            row = conn.execute("SELECT id, user_id FROM api_keys").fetchone()
        seed(app, row["id"], row["user_id"], creds.loop_id, stored)
        headers = {"Authorization": f"Bearer {creds.api_key}"}
        with TestClient(app) as http:
            path = f"/v1/api/loops/{creds.loop_id}/requests"
            for _ in range(100):  # warm up both paths before timing
                http.post(path, json=BODY, headers=headers)
                http.get("/v1/api/requests", params={"status": "pending"}, headers=headers)
            creates, lists = [], []
            for _ in range(SAMPLES):
                start = time.perf_counter()
                response = http.post(path, json=BODY, headers=headers)
                creates.append(time.perf_counter() - start)
                assert response.status_code == 201
            for _ in range(SAMPLES):
                offset = random.randrange(0, 500)
                start = time.perf_counter()
                response = http.get(
                    "/v1/api/requests",
                    params={"status": "pending", "limit": 50, "offset": offset},
                    headers=headers,
                )
                lists.append(time.perf_counter() - start)
                assert response.status_code == 200 and response.json()["data"]["count"] == 50
        return {"create": percentiles(creates), "list": percentiles(lists)}
    finally:
        server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 instead of 100,000 rows")
    args = parser.parse_args(argv)
    random.seed(7)
    sizes = (1_000, 10_000 if args.quick else 100_000)
    with tempfile.TemporaryDirectory() as tmp:
        measure(2_000, Path(tmp))  # a throwaway run: imports, caches, allocator
        results = {size: measure(size, Path(tmp)) for size in sizes}
    small, large = sizes
    print(f"local server latency through the HTTP API (TestClient), {SAMPLES} samples each")
    print(f"{'operation':<32}{small:>10,} stored{large:>12,} stored{'ratio p50':>11}")
    for name, label in (("create", "create (POST)"), ("list", "list 50, status=pending")):
        (s50, s95), (l50, l95) = results[small][name], results[large][name]
        print(f"{label + ' p50 ms':<32}{s50:>17.2f}{l50:>19.2f}{l50 / s50:>11.2f}")
        print(f"{label + ' p95 ms':<32}{s95:>17.2f}{l95:>19.2f}{l95 / s95:>11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
