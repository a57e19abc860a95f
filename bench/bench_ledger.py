"""Ledger latency per operation and size per pending row: SQLite vs PostgreSQL.

Fills each backend with ``--rows`` pending gates (DESIGN §6: 10,000 concurrently pending),
then times every operation one call at a time and prints median and p95 in microseconds,
plus the bytes each pending row costs on disk (table + indexes). Nothing is held in memory
per pending gate: the ledger is the only cost.

    .venv/bin/python bench/bench_ledger.py                # sqlite, and postgres if reachable
    .venv/bin/python bench/bench_ledger.py --rows 2000 --postgres postgresql://...

``run(quick)`` gives the runner's rows (bench/run.py): PostgreSQL against SQLite per operation.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

from _harness import INFO, Result

from hitl_agent.ledger import Ledger, SqliteLedger

PAYLOAD: dict[str, Any] = {
    "tool": "send_email",
    "args": {"to": "customer@example.com", "subject": "Your refund", "amount": 129.5},
    "spec": {"type": "single_select", "options": ["approve", "reject"], "timeout": 3600},
}


def _timed(fn: Callable[[int], object], indexes: range) -> list[float]:
    samples = []
    for i in indexes:
        start = time.perf_counter_ns()
        fn(i)
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


def _fmt(name: str, samples: list[float]) -> str:
    p95 = statistics.quantiles(samples, n=20)[-1] if len(samples) > 1 else samples[0]
    median = statistics.median(samples)
    return f"  {name:<26} n={len(samples):>6}  median {median:>9.1f} µs  p95 {p95:>9.1f} µs"


def measure(ledger: Ledger, rows: int) -> dict[str, list[float]]:
    """µs per call of each operation, after filling ``ledger`` with ``rows`` pending gates."""
    sample = range(min(rows, 1000))
    out: dict[str, list[float]] = {}
    out["record_intent"] = _timed(
        lambda i: ledger.record_intent(
            f"thread-{i}::review:0",
            now=time.time(),
            thread_id=f"thread-{i}",
            checkpoint_ns="review:0",
            args_hash="a" * 64,
            token_hash="b" * 64,
            payload=PAYLOAD,
        ),
        range(rows),
    )
    out["mark_created"] = _timed(
        lambda i: ledger.mark_created(f"thread-{i}::review:0", f"req-{i}", now=time.time()),
        range(rows),
    )
    out["record_intent (existing)"] = _timed(
        lambda i: ledger.record_intent(f"thread-{i}::review:0", now=0.0), sample
    )
    out["get"] = _timed(lambda i: ledger.get(f"thread-{i}::review:0"), sample)
    out["get_by_request_id"] = _timed(lambda i: ledger.get_by_request_id(f"req-{i}"), sample)
    out["list_open(limit=100)"] = _timed(lambda i: ledger.list_open(limit=100), range(100))
    out["list_open(limit=1000)"] = _timed(lambda i: ledger.list_open(limit=1000), range(20))
    out["record_decision"] = _timed(
        lambda i: ledger.record_decision(f"req-{i}", {"approved": True}, now=time.time()), sample
    )
    out["record_decision (dup)"] = _timed(
        lambda i: ledger.record_decision(f"req-{i}", {"approved": False}, now=time.time()), sample
    )
    out["claim"] = _timed(
        lambda i: ledger.claim(f"req-{i}", "w", now=time.time(), lease_seconds=60), sample
    )
    out["claim (lost)"] = _timed(
        lambda i: ledger.claim(f"req-{i}", "x", now=time.time(), lease_seconds=60), sample
    )
    out["complete"] = _timed(lambda i: ledger.complete(f"req-{i}", "w", now=time.time()), sample)
    return out


def report(name: str, ledger: Ledger, rows: int, size: Callable[[], int]) -> None:
    print(f"\n{name}: {rows} pending rows")
    samples = measure(ledger, rows)
    for op, values in samples.items():
        print(_fmt(op, values))
        if op == "mark_created":
            total = size()
            per_row = total / rows
            print(f"  on disk: {total / 1024:.0f} KiB total, {per_row:.0f} bytes per pending row")


def bench_sqlite(rows: int, synchronous: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ledger.db")
        ledger = SqliteLedger(path, synchronous=synchronous)
        ledger.setup()

        def size() -> int:
            conn = sqlite3.connect(path)
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                return sum(
                    n
                    for (n,) in conn.execute(
                        "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'hitl_ledger%' "
                        "OR name LIKE 'sqlite_autoindex_hitl_ledger%'"
                    )
                )
            except sqlite3.OperationalError:  # no dbstat compiled in: the whole file
                return os.path.getsize(path)
            finally:
                conn.close()

        try:
            report(f"sqlite (synchronous={synchronous})", ledger, rows, size)
        finally:
            ledger.close()


def bench_postgres(rows: int, conninfo: str) -> None:
    import psycopg
    from psycopg import sql

    from hitl_agent.ledger import PostgresLedger

    schema = f"hitl_bench_{uuid.uuid4().hex[:8]}"
    ledger = PostgresLedger(conninfo, schema=schema)
    try:
        ledger.setup()

        def size() -> int:
            # Includes the dead tuples mark_created leaves behind until autovacuum runs.
            with psycopg.connect(conninfo) as conn:
                row = conn.execute(
                    "SELECT pg_total_relation_size(%s::regclass)", (f"{schema}.hitl_ledger",)
                ).fetchone()
            return int(row[0]) if row else 0

        report("postgres", ledger, rows, size)
    finally:
        ledger.close()
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "HITL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    bench_sqlite(args.rows, "FULL")
    bench_sqlite(args.rows, "NORMAL")
    if not args.no_postgres:
        try:
            bench_postgres(args.rows, args.postgres)
        except ImportError as exc:
            print(f"\npostgres: skipped ({exc})")
        except Exception as exc:
            print(f"\npostgres: skipped, not reachable ({type(exc).__name__}: {exc})")


if __name__ == "__main__":
    main()


_RUN_OPS = ("record_intent", "mark_created", "get_by_request_id", "record_decision", "claim",
            "complete", "list_open(limit=100)")  # fmt: skip


def run(quick: bool) -> list[Result]:
    """The runner's rows: PostgreSQL per operation against the default SQLite ledger, median
    µs; each row's three runs are three consecutive thirds of the samples."""
    rows = 300 if quick else 2_000
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_ledger = SqliteLedger(os.path.join(tmp, "ledger.db"))
        sqlite_ledger.setup()
        try:
            sqlite_samples = measure(sqlite_ledger, rows)
        finally:
            sqlite_ledger.close()
    conninfo = os.environ.get("HITL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        pg_samples = _postgres_samples(rows, conninfo)
        reason = ""
    except Exception as exc:  # ImportError or not reachable: the SQLite figures still count
        pg_samples, reason = {}, f"postgres skipped: {type(exc).__name__}"
    out = []
    for op in _RUN_OPS:
        row = Result(
            f"ledger {op}, {rows:,} pending (postgres vs sqlite)", "µs", INFO,
            baseline_name="SqliteLedger (default synchronous)", note=reason,
        )  # fmt: skip
        for third in range(3):
            base = _third(sqlite_samples[op], third)
            row.baseline_runs.append(statistics.median(base))
            if pg_samples:
                row.ours_runs.append(statistics.median(_third(pg_samples[op], third)))
        if not pg_samples:  # show SQLite as ours when there is no PostgreSQL
            row.ours_runs, row.baseline_runs = row.baseline_runs, []
        out.append(row)
    return out


def _third(values: list[float], index: int) -> list[float]:
    size = max(1, len(values) // 3)
    return values[index * size : (index + 1) * size] or values


def _postgres_samples(rows: int, conninfo: str) -> dict[str, list[float]]:
    import psycopg
    from psycopg import sql

    from hitl_agent.ledger import PostgresLedger

    schema = f"hitl_bench_{uuid.uuid4().hex[:8]}"
    ledger = PostgresLedger(conninfo, schema=schema)
    try:
        ledger.setup()
        return measure(ledger, rows)
    finally:
        ledger.close()
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
