"""Standing grants and grant uses, on SQLite and PostgreSQL (issue 23, item 4)."""

from __future__ import annotations

import threading
from dataclasses import replace

from hitl_agent.ledger import Grant, Ledger

THREAD = Grant(
    grant_id="g-thread",
    scope="thread",
    tool="pay",
    loop_id="loop-1",
    thread_id="t1",
    args_hash=None,
    request_id="r1",
    review_key="k1",
    reviewer="ann@example.com",
    created_at=100.0,
    expires_at=200.0,
)
ARGS = replace(
    THREAD,
    grant_id="g-args",
    scope="args",
    thread_id=None,
    args_hash="a" * 64,
    created_at=110.0,
    expires_at=300.0,
)


def _find(ledger: Ledger, **overrides: object) -> str | None:
    query: dict[str, object] = {
        "tool": "pay", "loop_id": "loop-1", "thread_id": "t1", "args_hash": "b" * 64,
        "now": 150.0, **overrides,
    }  # fmt: skip
    grant = ledger.find_grant(**query)  # type: ignore[arg-type]
    return None if grant is None else grant.grant_id


def test_a_grant_covers_only_its_scope_while_live(ledger: Ledger) -> None:
    assert ledger.list_grants() == [] and _find(ledger) is None
    assert ledger.record_grant(THREAD) == THREAD
    # the first writer wins: a re-run cannot widen or extend a stored grant
    assert ledger.record_grant(replace(THREAD, expires_at=9999.0)) == THREAD
    assert _find(ledger) == "g-thread"
    assert _find(ledger, thread_id="t2") is None  # another thread
    assert _find(ledger, tool="refund") is None  # another tool
    assert _find(ledger, loop_id="loop-2") is None  # another loop
    assert _find(ledger, loop_id=None) is None
    assert _find(ledger, now=200.0) is None  # expired at expires_at

    ledger.record_grant(ARGS)
    assert _find(ledger, thread_id="t2", args_hash="a" * 64) == "g-args"  # any thread
    assert _find(ledger, thread_id="t2") is None  # other args
    assert _find(ledger, args_hash="a" * 64) == "g-args"  # both cover: the longest lasting
    assert _find(ledger, args_hash="a" * 64, now=300.0) is None

    assert [g.grant_id for g in ledger.list_grants()] == ["g-thread", "g-args"]
    assert [g.grant_id for g in ledger.list_grants(live_at=250.0)] == ["g-args"]
    assert ledger.revoke_grant("g-args", now=160.0)
    assert not ledger.revoke_grant("g-args", now=161.0)
    assert not ledger.revoke_grant("nope", now=161.0)
    revoked = ledger.get_grant("g-args")
    assert revoked is not None and revoked.revoked_at == 160.0 and not revoked.live(170.0)
    assert _find(ledger, args_hash="a" * 64) == "g-thread"
    assert ledger.get_grant("nope") is None


def test_a_grant_without_a_loop_matches_calls_without_one(ledger: Ledger) -> None:
    ledger.record_grant(replace(THREAD, loop_id=None))
    assert _find(ledger, loop_id=None) == "g-thread"
    assert _find(ledger) is None


def test_a_grant_use_is_recorded_once(ledger: Ledger) -> None:
    ledger.record_grant(THREAD)
    use = ledger.record_grant_use("grant|t1|ns|c1", "g-thread", now=120.0, thread_id="t1",
                                  tool_call_id="c1")  # fmt: skip
    assert (use.grant_id, use.used_at, use.tool_call_id) == ("g-thread", 120.0, "c1")
    again = ledger.record_grant_use("grant|t1|ns|c1", "g-other", now=130.0)
    assert again == use  # the first use stands
    assert ledger.get_grant_use("grant|t1|ns|c1") == use
    assert ledger.get_grant_use("missing") is None
    ledger.record_grant_use("grant|t1|ns|c2", "g-thread", now=125.0)
    assert [u.key for u in ledger.list_grant_uses("g-thread")] == [
        "grant|t1|ns|c1", "grant|t1|ns|c2",
    ]  # fmt: skip
    assert ledger.list_grant_uses("g-other") == []
    assert len(ledger.list_grant_uses()) == 2


def test_concurrent_uses_of_one_call_agree(ledger: Ledger) -> None:
    seen: list[str] = []
    barrier = threading.Barrier(6)

    def use(i: int) -> None:
        barrier.wait()
        seen.append(ledger.record_grant_use("race", f"g{i}", now=1.0).grant_id)

    threads = [threading.Thread(target=use, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == 1
