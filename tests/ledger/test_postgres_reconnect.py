"""W3: PostgreSQL connections killed mid-run (``pg_terminate_backend``) are retried.

Each ledger gets an ``application_name`` of its own, so the tests kill exactly its pool's
server processes (other helpers' runs share the server). Every operation survives a kill
right before it, a storm of kills while a review's whole life runs, and a kill while the
statement waits on a row lock; the gate and the poller see no raw psycopg error; what still
fails (the server refuses us for good, bad data) is a ``LedgerError``, a ``HITLError``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hitl_agent import HITLError
from hitl_agent.ledger import LedgerError

from .conftest import PG_URL, drop_schema, require_postgres

pytestmark = pytest.mark.postgres

REVIEWS = 60


def _admin(query: str, *args: Any) -> Any:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        cur = conn.execute(query, args)
        return cur.fetchone() if cur.description is not None else None


def _kill(app_name: str) -> int:
    """Terminate every server process of the ledger's pool; how many there were."""
    row = _admin(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = %s AND pid <> pg_backend_pid()",
        app_name,
    )
    return int(row[0])


class _PgLedger:
    def __init__(self, schema: str, app_name: str, **kwargs: Any) -> None:
        from hitl_agent.ledger import PostgresLedger

        sep = "&" if "?" in PG_URL else "?"
        self.app_name = app_name
        self.ledger = PostgresLedger(
            f"{PG_URL}{sep}application_name={app_name}", schema=schema, **kwargs
        )


@pytest.fixture
def pg() -> Iterator[_PgLedger]:
    require_postgres()
    tag = uuid.uuid4().hex[:12]
    schema = f"hitl_w3_{tag}"
    opened = _PgLedger(schema, f"hitl-w3-{tag}", max_size=4)
    try:
        opened.ledger.setup()
        yield opened
    finally:
        opened.ledger.close()
        drop_schema(schema)


def test_every_operation_survives_a_kill_right_before_it(pg: _PgLedger) -> None:
    ledger = pg.ledger
    steps: list[tuple[str, Callable[[], Any], Any]] = [
        ("record_intent", lambda: ledger.record_intent("k", now=1.0)[0].state, "intent"),
        ("get", lambda: ledger.get("k") is not None, True),
        ("mark_created", lambda: ledger.mark_created("k", "r", now=2.0).state, "pending"),
        ("mark_created again", lambda: ledger.mark_created("k", "r", now=2.0).state, "pending"),
        ("list_open", lambda: [row.key for row in ledger.list_open()], ["k"]),
        ("record_decisions", lambda: ledger.record_decisions([("x", {"a": 1})], now=3.0), [False]),
        ("record_decision", lambda: ledger.record_decision("r", {"a": 1}, now=3.0), True),
        ("claim", lambda: ledger.claim("r", "me", now=4.0, lease_seconds=30), True),
        ("list_task", lambda: ledger.list_task("t", "ns"), []),
        ("complete", lambda: ledger.complete("r", "me", now=5.0), True),
        ("get_by_request_id", lambda: ledger.get_by_request_id("r").state, "resumed"),  # type: ignore[union-attr]
        ("ensure_meta", lambda: ledger.ensure_meta("m", "v"), "v"),
        ("get_meta", lambda: ledger.get_meta("m"), "v"),
        ("discard_intent", lambda: ledger.discard_intent("k"), False),
        ("setup", ledger.setup, None),
    ]
    killed = 0
    for name, step, expected in steps:
        killed += _kill(pg.app_name)
        assert step() == expected, name
    assert killed >= len(steps)  # each step really met a dead connection first


def test_a_kill_storm_during_whole_reviews_loses_nothing(pg: _PgLedger) -> None:
    """A killer terminates the pool's connections every ~50 ms while 60 reviews run their
    whole path on 3 threads: no error, every row ends resumed, every claim won once."""
    ledger = pg.ledger
    stop = threading.Event()
    kills = [0]

    def killer() -> None:
        while not stop.is_set():
            kills[0] += _kill(pg.app_name)
            time.sleep(0.05)

    def review(index: int) -> list[bool]:
        key, rid = f"k{index}", f"r{index}"
        ledger.record_intent(key, now=1.0, thread_id="t", checkpoint_ns=f"ns{index}")
        ledger.mark_created(key, rid, now=2.0)
        won = [ledger.record_decision(rid, {"approved": True}, now=3.0)]
        won.append(ledger.claim(rid, f"owner{index}", now=4.0, lease_seconds=60))
        won.append(ledger.complete(rid, f"owner{index}", now=5.0))
        return won

    thread = threading.Thread(target=killer)
    thread.start()
    results: list[list[bool]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(start: int) -> None:
        for index in range(start, REVIEWS, 3):
            try:
                outcome = review(index)
            except BaseException as exc:
                with lock:
                    errors.append(exc)
                continue
            with lock:
                results.append(outcome)

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.join(120)
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert kills[0] > 0
    # A write whose connection died after it committed reports what it did (claim and
    # complete check their own row); record_decision may then say False (stats only).
    assert all(claimed and completed for _, claimed, completed in results), results
    rows = [ledger.get(f"k{i}") for i in range(REVIEWS)]
    assert all(row is not None and row.state == "resumed" for row in rows)
    print(f"\nW3 storm: {REVIEWS} reviews, {kills[0]} connections killed, 0 errors")


def test_a_kill_while_waiting_on_a_row_lock_is_retried(pg: _PgLedger) -> None:
    import psycopg
    from psycopg import sql

    ledger = pg.ledger
    ledger.record_intent("k", now=1.0)
    ledger.mark_created("k", "r", now=2.0)
    ledger.record_decision("r", {"approved": True}, now=3.0)
    blocker = psycopg.connect(PG_URL)
    table = sql.Identifier(ledger.schema or "public", "hitl_ledger")
    blocker.execute(sql.SQL("SELECT 1 FROM {} WHERE key = 'k' FOR UPDATE").format(table))
    outcome: list[Any] = []
    claimer = threading.Thread(
        target=lambda: outcome.append(ledger.claim("r", "me", now=4.0, lease_seconds=30))
    )
    claimer.start()
    try:
        deadline = time.monotonic() + 10
        while not _admin(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
            "AND wait_event_type = 'Lock'",
            pg.app_name,
        )[0]:
            assert time.monotonic() < deadline, "the claim never waited on the lock"
            time.sleep(0.01)
        assert _kill(pg.app_name) >= 1  # the claim's statement dies mid-wait
        time.sleep(0.1)
    finally:
        blocker.rollback()
        blocker.close()
    claimer.join(30)
    assert outcome == [True]
    row = ledger.get("k")
    assert row is not None and (row.state, row.claimed_by) == ("resuming", "me")


def test_gate_and_poller_see_no_raw_psycopg_error(pg: _PgLedger, tmp_path: Any) -> None:
    from hitl_agent.gate import Gatekeeper, ReviewSpec, ensure_request
    from hitl_agent.testing import FakeClock, local_hitl

    clock = FakeClock()
    with local_hitl(clock=clock) as hitl:
        keeper = Gatekeeper(client=hitl.client, loop_id=hitl.loop_id, ledger=pg.ledger, clock=clock)
        _kill(pg.app_name)
        row = ensure_request(keeper._target, hitl.client, "blk|w3", ReviewSpec.build("Ok?"))
        assert row.request_id is not None
        hitl.reviewer.respond(row.request_id, True)
        _kill(pg.app_name)
        keeper.dispatcher().poll_once()  # records the decision (nobody waits in this process)
        _kill(pg.app_name)
        stored = pg.ledger.get("blk|w3")
        assert stored is not None and stored.decision is not None


def test_what_still_fails_is_a_ledger_error(pg: _PgLedger) -> None:
    """The server refuses the ledger's role for good: LedgerError naming the ledger, in
    about the pool timeout; bad data: LedgerError at once."""
    tag = uuid.uuid4().hex[:8]
    role, schema = f"hitl_w3_role_{tag}", f"hitl_w3_locked_{tag}"
    _admin(f'CREATE ROLE "{role}" LOGIN')
    _admin(f'CREATE SCHEMA "{schema}" AUTHORIZATION "{role}"')
    database = _admin("SELECT current_database()")[0]
    _admin(f'GRANT CONNECT, CREATE ON DATABASE "{database}" TO "{role}"')
    from hitl_agent.ledger import PostgresLedger

    url = PG_URL.replace("postgres@", f"{role}@", 1)
    sep = "&" if "?" in url else "?"
    app = f"hitl-w3-locked-{tag}"
    ledger = PostgresLedger(
        f"{url}{sep}application_name={app}", schema=schema, timeout=1.5, max_size=2
    )
    try:
        ledger.setup()
        ledger.record_intent("k", now=1.0)
        with pytest.raises(LedgerError, match="PostgreSQL ledger") as bad:
            ledger.record_intent("nul\x00key", now=1.0)
        assert isinstance(bad.value, HITLError)
        _admin(f'ALTER ROLE "{role}" NOLOGIN')
        _kill(app)
        start = time.monotonic()
        with pytest.raises(LedgerError, match=rf"PostgreSQL ledger \(schema='{schema}'\)") as gone:
            ledger.get("k")
        assert time.monotonic() - start < 15
        assert isinstance(gone.value, HITLError)
        assert "psycopg" in type(gone.value.__cause__).__module__
    finally:
        ledger.close()
        drop_schema(schema)
        _admin(f'REVOKE CONNECT, CREATE ON DATABASE "{database}" FROM "{role}"')
        _admin(f'DROP ROLE IF EXISTS "{role}"')


@pytest.mark.parametrize("op", ["claim", "complete"])
def test_a_write_whose_reply_was_lost_reports_what_it_did(
    pg: _PgLedger, monkeypatch: pytest.MonkeyPatch, op: str
) -> None:
    """The UPDATE commits, then the connection dies before its reply: the retry matches
    nothing, and the ledger reads the row to see that the write was its own. Without that
    check a won claim would look lost and the row would sit ``resuming`` for a lease."""
    import contextlib

    import psycopg

    ledger = pg.ledger
    ledger.record_intent("k", now=1.0)
    ledger.mark_created("k", "r", now=2.0)
    ledger.record_decision("r", {"approved": True}, now=3.0)
    if op == "complete":
        assert ledger.claim("r", "me", now=4.0, lease_seconds=30)
    real = ledger._pool.connection
    lost = [0]

    @contextlib.contextmanager
    def losing_reply(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with real(*args, **kwargs) as conn:
            if lost[0] == 0:
                lost[0] += 1
                conn.execute(*_pending[0])  # the statement runs and commits (autocommit)
                _kill(pg.app_name)  # ... and the reply never arrives
                raise psycopg.OperationalError("server closed the connection unexpectedly")
            yield conn

    _pending: list[tuple[Any, ...]] = []
    original_cas = ledger._cas

    def capture(query: Any, args: tuple[Any, ...], *rest: Any) -> bool:
        _pending.append((query, args))
        return original_cas(query, args, *rest)

    monkeypatch.setattr(ledger, "_cas", capture)
    monkeypatch.setattr(ledger._pool, "connection", losing_reply)
    if op == "claim":
        assert ledger.claim("r", "me", now=4.0, lease_seconds=30) is True
    else:
        assert ledger.complete("r", "me", now=5.0) is True
    assert lost == [1]
    row = ledger.get("k")
    assert row is not None and row.claimed_by == "me"
    assert row.state == ("resuming" if op == "claim" else "resumed")


def test_a_batch_whose_reply_was_lost_reports_what_it_stored(
    pg: _PgLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``record_decisions`` commits, then the connection dies before the reply: the retry
    matches nothing, and the ledger reads the rows to see which decisions were its own (a
    row another writer decided first stays refused)."""
    import contextlib

    import psycopg

    ledger = pg.ledger
    for key, rid in (("k1", "r1"), ("k2", "r2"), ("k3", "r3")):
        ledger.record_intent(key, now=1.0)
        ledger.mark_created(key, rid, now=2.0)
    ledger.record_decision("r3", {"approved": False}, now=2.5)  # someone else's, first
    real = ledger._pool.connection
    lost = [0]

    @contextlib.contextmanager
    def losing_reply(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with real(*args, **kwargs) as conn:
            if lost[0] == 0:
                lost[0] += 1

                class _Dies:
                    """The batch runs and commits on the real connection, then its reply is
                    lost."""

                    def transaction(self) -> Any:
                        @contextlib.contextmanager
                        def commit_then_die() -> Iterator[None]:
                            with conn.transaction():
                                yield
                            _kill(pg.app_name)
                            raise psycopg.OperationalError("server closed the connection")

                        return commit_then_die()

                    def execute(self, *a: Any, **k: Any) -> Any:
                        return conn.execute(*a, **k)

                yield _Dies()
                return
            yield conn

    monkeypatch.setattr(ledger._pool, "connection", losing_reply)
    decisions = [("r1", {"approved": True}), ("r2", {"approved": True}), ("r3", {"approved": True})]
    assert ledger.record_decisions(decisions, now=3.0) == [True, True, False]
    assert lost == [1]
    states = {rid: ledger.get_by_request_id(rid) for rid in ("r1", "r2", "r3")}
    assert {rid: row.decision for rid, row in states.items() if row} == {
        "r1": {"approved": True},
        "r2": {"approved": True},
        "r3": {"approved": False},
    }
