"""The async twins: the same contract through ``a``-prefixed methods, on every backend."""

from __future__ import annotations

import asyncio

import pytest

from hitl_agent.ledger import Ledger

from .conformance import at


def test_async_twins_walk_the_whole_path(ledger: Ledger) -> None:
    """Every async method, along intent -> pending -> decided -> resuming -> resumed."""

    async def walk() -> None:
        row, inserted = await ledger.arecord_intent("k", now=1.0, payload={"ü": [1]})
        assert (row.state, inserted, row.payload) == ("intent", True, {"ü": [1]})
        assert (await ledger.arecord_intent("k", now=2.0)) == (row, False)
        assert await ledger.aget("k") == row
        assert await ledger.adiscard_intent("nope") is False

        created = await ledger.amark_created("k", "req-1", now=3.0, deadline=9.0)
        assert (created.state, created.deadline) == ("pending", 9.0)
        with pytest.raises(ValueError, match="req-1"):
            await ledger.amark_created("k", "req-2", now=3.0)
        assert await ledger.aget_by_request_id("req-1") == created

        assert await ledger.arecord_decision("req-1", {"approved": True}, now=4.0) is True
        assert await ledger.arecord_decision("req-1", {"approved": False}, now=4.0) is False
        at(ledger, 5.0)  # the ledger's clock judges the lease
        assert await ledger.aclaim("req-1", "w", now=5.0, lease_seconds=10.0) is True
        assert await ledger.aclaim("req-1", "x", now=5.0, lease_seconds=10.0) is False
        at(ledger, 5.5)
        assert await ledger.arenew("req-1", "x", now=5.5, lease_seconds=10.0) is False
        assert await ledger.arenew("req-1", "w", now=5.5, lease_seconds=10.0) is True
        renewed = await ledger.aget("k")
        assert renewed is not None and renewed.lease_until == 15.5
        assert await ledger.arelease("req-1", "w", now=6.0) is True
        assert await ledger.aclaim("req-1", "x", now=7.0, lease_seconds=10.0) is True
        assert [r.key for r in await ledger.alist_open(limit=5)] == ["k"]
        assert await ledger.acomplete("req-1", "w", now=8.0) is False
        assert await ledger.acomplete("req-1", "x", now=8.0) is True
        assert await ledger.alist_open() == []
        final = await ledger.aget("k")
        assert final is not None
        assert (final.state, final.claimed_by, final.decision) == (
            "resumed",
            "x",
            {"approved": True},
        )
        await ledger.arecord_intent("k2", now=9.0, thread_id="t", checkpoint_ns="ns")
        assert [r.key for r in await ledger.alist_task("t", "ns")] == ["k2"]

    asyncio.run(walk())


def test_async_discard_and_errors(ledger: Ledger) -> None:
    """adiscard_intent deletes an intent; amark_created raises KeyError for an unknown key."""

    async def run() -> None:
        await ledger.arecord_intent("k", now=1.0)
        assert await ledger.adiscard_intent("k") is True
        assert await ledger.aget("k") is None
        with pytest.raises(KeyError):
            await ledger.amark_created("k", "req-1", now=2.0)

    asyncio.run(run())


def test_async_claims_race_on_one_loop(ledger: Ledger) -> None:
    """Many concurrent aclaim calls from one event loop: exactly one wins."""

    async def race() -> list[bool]:
        await ledger.arecord_intent("k", now=1.0)
        await ledger.amark_created("k", "req-1", now=1.0)
        await ledger.arecord_decision("req-1", {"approved": True}, now=1.0)
        return await asyncio.gather(
            *(ledger.aclaim("req-1", f"w{i}", now=2.0, lease_seconds=30.0) for i in range(8))
        )

    results = asyncio.run(race())
    assert results.count(True) == 1
    row = ledger.get("k")
    assert row is not None
    assert row.claimed_by == f"w{results.index(True)}"


def test_async_twins_of_the_gate_bookkeeping(ledger: Ledger) -> None:
    """aclaim_slot, alist_slot_claims, arecord_alias and aget_alias, with racing claims."""

    async def walk() -> None:
        won = await asyncio.gather(
            *(ledger.aclaim_slot("t", "hitl-slot:g|node|0", 0, f"k{i}", now=1.0) for i in range(8))
        )
        assert sorted(won) == [False] * 7 + [True]
        (claim,) = await ledger.alist_slot_claims("t", "hitl-slot:g|node|0")
        assert claim.turn == 0 and claim.owner == f"k{won.index(True)}"
        assert await ledger.aget_alias("k9") is None
        assert await ledger.arecord_alias("k9", "k0", now=2.0) == "k0"
        assert await ledger.arecord_alias("k9", "k1", now=3.0) == "k0"
        assert await ledger.aget_alias("k9") == "k0"

    asyncio.run(walk())
