"""C2: a resume keeps its claim however long the approved action runs.

The README's tool pattern: the action runs in the reviewing node itself, after
``keeper.review`` returns. While it runs, the graph still shows the interrupt as pending, so a
second resolver that gets the claim would resume it again and run the action twice. Before the
fix the 300 s lease was never renewed: a long action was resumed a second time by the other
replica's sweep or a duplicate callback.

Time is a FakeClock advanced in steps well past the lease while the action blocks; the
resolvers' heartbeat threads wake every 10 ms (real time) and renew on the clock's time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypedDict

import pytest
from hitl_harness import Env
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from hitl_agent.decision import Decision
from hitl_agent.dispatch import Dispatcher
from hitl_agent.langgraph import GraphResumer

LEASE = 300.0
STEP = LEASE / 4


class Kill(BaseException):
    """The replica dies inside the action (no finally block of ours catches it)."""


class State(TypedDict, total=False):
    amount: int
    done: bool


class LongAction:
    """One node: review, then (approved) an action that blocks until released."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.started = threading.Event()
        self.release = threading.Event()
        self.executions = 0
        self.kill_next = False
        self.lock = threading.Lock()

        def refund(state: State) -> dict[str, Any]:
            decision = env.keeper.review(
                f"Refund ${state['amount']}?",
                response_type="single_select",
                response_config={"options": ["Approve", "Reject"]},
                default_response="reject",
            )
            if decision.approved:
                with self.lock:
                    self.executions += 1
                    first = self.executions == 1
                    kill, self.kill_next = self.kill_next, False
                if kill:
                    self.executions -= 1  # it died before its effect
                    self.started.set()
                    raise Kill("replica killed inside the action")
                if first:
                    self.started.set()
                    assert self.release.wait(30), "the test never released the action"
            return {"done": True}

        builder = StateGraph(State)
        builder.add_node("refund", refund)
        builder.add_edge(START, "refund")
        builder.add_edge("refund", END)
        self.graph = builder.compile(checkpointer=InMemorySaver())

    def replica(self, heartbeat: float = 0.01) -> Dispatcher:
        dispatcher = self.env.keeper.dispatcher(GraphResumer(self.graph))
        dispatcher.resolver.heartbeat_interval = heartbeat
        return dispatcher

    def park_and_approve(self) -> str:
        self.graph.invoke({"amount": 5}, {"configurable": {"thread_id": "long"}})
        request_id = self.env.only_request_id()
        self.env.hitl.reviewer.respond(request_id, "approve")
        return request_id


@pytest.fixture
def action(env: Env) -> Iterator[LongAction]:
    made = LongAction(env)
    try:
        yield made
    finally:
        made.release.set()


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run ``fn`` in a thread; its result or the BaseException it raised lands in the list."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # a Kill must not become an unhandled-thread warning
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def lease_until(env: Env, request_id: str) -> float:
    row = env.ledger.get_by_request_id(request_id)
    assert row is not None and row.state == "resuming" and row.lease_until is not None
    return row.lease_until


def wait_renewed(env: Env, request_id: str, at_least: float) -> None:
    deadline = time.monotonic() + 10
    while lease_until(env, request_id) < at_least:
        assert time.monotonic() < deadline, "the claim was not renewed"
        time.sleep(0.005)


def test_a_long_action_runs_once_across_two_replicas_and_duplicate_callbacks(
    env: Env, action: LongAction
) -> None:
    request_id = action.park_and_approve()
    replica_a, replica_b = action.replica(), action.replica()
    thread, out = in_thread(replica_a.poll_once)
    assert action.started.wait(10)

    for _ in range(15):  # 15 x 75 s: the action runs 3.75 leases long
        env.clock.advance(STEP)
        # The heartbeat renews within a third of the lease of the clock's time.
        wait_renewed(env, request_id, env.clock() + LEASE - LEASE / 3)
        assert replica_b.poll_once() == []  # B's sweep
        assert replica_b.resolve(request_id) == []  # a duplicate callback to B
        assert replica_a.resolve(request_id) == []  # ... and to A itself
        assert action.executions == 1

    action.release.set()
    thread.join(10)
    assert not thread.is_alive()
    assert [d.request_id for d in out[0]] == [request_id]
    assert action.executions == 1
    row = env.ledger.get_by_request_id(request_id)
    assert row is not None and row.state == "resumed" and row.claimed_by == replica_a.resolver.owner
    print(
        f"C2: executions={action.executions} renewals={replica_a.resolver.stats['lease_renewed']}"
        f" claims_lost_by_B={replica_b.resolver.stats['claim_lost']}"
        f" guarded_on_A={replica_a.resolver.stats['already_resuming_here']}"
    )
    assert replica_a.resolver.stats["lease_renewed"] >= 7  # every other 75 s step
    assert replica_a.resolver.stats["lease_lost"] == 0
    assert replica_b.resolver.stats["claim_lost"] >= 15
    # Nothing runs again afterwards.
    env.clock.advance(10 * LEASE)
    assert replica_b.poll_once() == [] and replica_b.resolve(request_id) == []
    assert action.executions == 1


def test_a_resolver_never_resumes_a_request_it_is_resuming(env: Env, action: LongAction) -> None:
    """The per-process guard: even with its lease run out (no heartbeat), a duplicate
    callback to the replica that is resuming starts nothing."""
    request_id = action.park_and_approve()
    replica = action.replica(heartbeat=3600.0)  # the heartbeat never wakes
    thread, out = in_thread(replica.poll_once)
    assert action.started.wait(10)
    env.clock.advance(LEASE + 1)
    assert lease_until(env, request_id) < env.clock()  # expired in the ledger
    assert replica.resolve(request_id) == []
    assert replica.poll_once() == []
    assert replica.resolver.stats["already_resuming_here"] == 2
    action.release.set()
    thread.join(10)
    assert [d.request_id for d in out[0]] == [request_id]
    assert action.executions == 1


def test_a_killed_replica_is_taken_over_after_its_lease(env: Env, action: LongAction) -> None:
    request_id = action.park_and_approve()
    replica_a, replica_b = action.replica(), action.replica()
    action.kill_next = True
    thread, out = in_thread(replica_a.poll_once)
    thread.join(10)
    assert isinstance(out[0], Kill)
    held = lease_until(env, request_id)
    # A dead replica renews nothing: its claim stays as it was until it runs out.
    env.clock.advance(LEASE / 2)
    time.sleep(0.1)
    assert lease_until(env, request_id) == held
    assert replica_b.poll_once() == []
    assert action.executions == 0

    env.clock.advance(LEASE / 2)  # the lease is over
    action.release.set()
    delivered = replica_b.poll_once()
    assert [d.request_id for d in delivered] == [request_id]
    assert action.executions == 1
    row = env.ledger.get_by_request_id(request_id)
    assert row is not None and row.state == "resumed" and row.claimed_by == replica_b.resolver.owner
    assert isinstance(Decision.model_validate(row.decision), Decision)


def test_one_renewer_thread_keeps_every_running_claim(tmp_path: Any) -> None:
    """Issue 12: a thread per resume cost a tenth of the throughput. Many claims held at once
    are renewed by one thread, each on its own clock, and none after its stop()."""
    from collections import Counter

    from hitl_agent.dispatch._lease import LeaseKeeper
    from hitl_agent.ledger import SqliteLedger
    from hitl_agent.testing import FakeClock

    clock = FakeClock()
    ledger = SqliteLedger(tmp_path / "ledger.db", clock=clock)  # one clock judges the leases
    ledger.setup()
    ids = [f"req-{i}" for i in range(40)]
    for i, request_id in enumerate(ids):
        ledger.record_intent(f"k{i}", now=clock())
        ledger.mark_created(f"k{i}", request_id, now=clock())
        ledger.record_decision(request_id, {"approved": True}, now=clock())
        assert ledger.claim(request_id, "me", now=clock(), lease_seconds=LEASE)
    stats: Counter[str] = Counter()
    keepers = [
        LeaseKeeper(
            ledger, "me", [request_id], clock=clock, lease_seconds=LEASE, interval=0.01,
            stats=stats,
        ).start()
        for request_id in ids
    ]  # fmt: skip
    try:
        lease_threads = [t for t in threading.enumerate() if t.name == "hitl-agent-lease"]
        assert len(lease_threads) == 1
        keepers[0].stop()  # stopped: its claim is no longer renewed
        clock.advance(STEP * 2)
        deadline = time.monotonic() + 10
        while stats["lease_renewed"] < len(ids) - 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stats["lease_renewed"] == len(ids) - 1
        clock.advance(LEASE - STEP)  # past the first lease, within the renewed ones
        assert ledger.claim(ids[0], "other", now=clock(), lease_seconds=LEASE)
        assert not any(
            ledger.claim(rid, "other", now=clock(), lease_seconds=LEASE) for rid in ids[1:]
        )
    finally:
        for keeper in keepers:
            keeper.stop()
        ledger.close()


# -- issue 19, F6/F7: one clock judges the lease; a failed renewal is retried promptly -------


class Skewed:
    """A replica's clock: the true time plus an offset the test may change (an NTP step)."""

    def __init__(self, base: Callable[[], float], offset: float = 0.0) -> None:
        self.base, self.offset = base, offset

    def __call__(self) -> float:
        return self.base() + self.offset


def skewed_replica(action: LongAction, clock: Callable[[], float], **kw: Any) -> Dispatcher:
    """A replica whose own clock is ``clock`` (its resolver and poller read it); the
    ledger keeps judging leases on the harness's clock."""
    replica = action.replica(**kw)
    replica.resolver.clock = clock
    return replica


def test_a_replica_301_s_ahead_never_takes_over_a_live_claim(env: Env, action: LongAction) -> None:
    """F6: B's clock reads past A's lease at every sweep; the ledger's does not."""
    request_id = action.park_and_approve()
    replica_a = action.replica()
    replica_b = skewed_replica(action, Skewed(env.clock, LEASE + 1))
    thread, out = in_thread(replica_a.poll_once)
    assert action.started.wait(10)
    for _ in range(8):  # 8 x 75 s: two leases
        assert replica_b.poll_once() == []
        assert replica_b.resolve(request_id) == []
        assert replica_b.recover_once() == []
        assert action.executions == 1
        env.clock.advance(STEP)
        wait_renewed(env, request_id, env.clock() + LEASE - LEASE / 3)
    action.release.set()
    thread.join(10)
    print(
        f"F6 (+301 s): executions={action.executions} "
        f"claims_refused_to_B={replica_b.resolver.stats['claim_lost']}"
    )
    assert [d.request_id for d in out[0]] == [request_id]
    assert action.executions == 1
    row = env.ledger.get_by_request_id(request_id)
    assert row is not None and row.state == "resumed" and row.claimed_by == replica_a.resolver.owner


def test_a_resumer_whose_clock_stepped_back_250_s_keeps_its_claim(
    env: Env, action: LongAction
) -> None:
    """F6: A's clock steps back 250 s mid-resume; B (a correct clock) sweeps every 75 s
    for four leases and never gets the claim: A renews at once and then on time."""
    request_id = action.park_and_approve()
    mine = Skewed(env.clock)
    replica_a = skewed_replica(action, mine)
    replica_b = action.replica()
    thread, out = in_thread(replica_a.poll_once)
    assert action.started.wait(10)
    mine.offset = -250.0
    for _ in range(16):  # 16 x 75 s: four leases
        env.clock.advance(STEP)
        assert replica_b.poll_once() == []
        assert replica_b.resolve(request_id) == []
        assert action.executions == 1
        wait_renewed(env, request_id, env.clock() + LEASE - LEASE / 3 - STEP)
    action.release.set()
    thread.join(10)
    print(
        f"F6 (-250 s): executions={action.executions} "
        f"renewals={replica_a.resolver.stats['lease_renewed']}"
    )
    assert [d.request_id for d in out[0]] == [request_id]
    assert action.executions == 1
    assert replica_a.resolver.stats["lease_lost"] == 0


def test_renewals_resume_within_seconds_after_a_195_s_ledger_outage(
    env: Env, action: LongAction, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F7: renewals fail from +105 s to +300 s (the ledger is down). A's keeper retries
    within seconds of the ledger's return, well before the lease renewed at +100 s ends at
    +400 s, and B, sweeping at +400 s before A's keeper wakes, gets nothing."""
    from hitl_agent.ledger import LedgerError

    request_id = action.park_and_approve()
    replica_a, replica_b = action.replica(heartbeat=0.05), action.replica()
    thread, out = in_thread(replica_a.poll_once)
    assert action.started.wait(10)
    t0 = env.clock()
    renew = env.ledger.renew
    failed: list[float] = []

    def flaky_renew(*args: Any, **kwargs: Any) -> bool:
        if t0 + 105 <= env.clock() <= t0 + 300:
            failed.append(env.clock() - t0)
            raise LedgerError("SQLite ledger 'test': OperationalError: disk I/O error")
        return bool(renew(*args, **kwargs))

    monkeypatch.setattr(env.ledger, "renew", flaky_renew)
    env.clock.advance(100)
    wait_renewed(env, request_id, t0 + 100 + LEASE)
    for when in (200.0, 300.0):  # a third of a lease after the last renewal, then retries
        env.clock.advance(when - (env.clock() - t0))
        wait_until(lambda: when in failed)  # noqa: B023 (called before the loop moves on)
    env.clock.advance(1)
    env.clock.advance(1)  # +302: the second retry of the backoff (1 s, then 2 s)
    wait_renewed(env, request_id, t0 + 302 + LEASE)
    row = env.ledger.get_by_request_id(request_id)
    assert row is not None
    renewed_by = row.updated_at - t0  # the renewal stamps A's now
    env.clock.advance(400 - (env.clock() - t0))
    assert replica_b.poll_once() == [] and replica_b.resolve(request_id) == []
    action.release.set()
    thread.join(10)
    print(
        f"F7: failed renewals at +{failed} s, renewed again at +{renewed_by} s, "
        f"executions={action.executions}"
    )
    assert renewed_by == 302
    assert action.executions == 1
    assert [d.request_id for d in out[0]] == [request_id]


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)
