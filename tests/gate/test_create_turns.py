"""Two ensure calls for one key in one process: the second waits for the first's create.

In an async ToolNode, ``asyncio.gather`` lets a tool call keep running after a sibling
suspended the run; the resumed run then asks for the same gate while the first call's POST is
still in flight. The second caller found an ``intent`` row, reconciled (the server had nothing
yet) and POSTed again: two requests for one gate (about 1 run in 12 of a five-call turn).
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from hitl_harness import SECRET

from hitl_agent import AsyncHITLClient, HITLClient
from hitl_agent.gate import CreateTarget, ReviewSpec, aensure_request, ensure_request
from hitl_agent.ledger import SqliteLedger
from hitl_agent.testing import FakeClock, alocal_hitl, local_hitl

SPEC = ReviewSpec.build("Refund $40 to order 1234?")


def _target(path: Path, loop_id: str) -> tuple[SqliteLedger, CreateTarget]:
    ledger = SqliteLedger(path)
    ledger.setup()
    target = CreateTarget(
        ledger=ledger,
        loop_id=loop_id,
        callback_url="http://app.test/hitl",
        callback_secret=SECRET,
        clock=FakeClock(),
    )
    return ledger, target


class _HeldPosts:
    """The local server's client whose first POST waits until ``release`` is set."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.posts = 0
        self.entered = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def send(self, request: Any, **kwargs: Any) -> Any:
        if request.method == "POST":
            self.posts += 1
            if self.posts == 1:
                self.entered.set()
                assert self.release.wait(30)
        return self.inner.send(request, **kwargs)


class _AsyncHeldPosts(_HeldPosts):
    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.aentered = asyncio.Event()
        self.arelease = asyncio.Event()

    async def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if request.method == "POST":
            self.posts += 1
            if self.posts == 1:
                self.aentered.set()
                await self.arelease.wait()
        return await self.inner.send(request, **kwargs)


def test_a_second_sync_call_waits_for_the_create_in_flight(tmp_path: Path) -> None:
    with local_hitl() as hitl:
        held = _HeldPosts(hitl.http)
        client = HITLClient(hitl.api_key, base_url=hitl.base_url, http_client=held)  # type: ignore[arg-type]
        ledger, target = _target(tmp_path / "l.db", hitl.loop_id)
        rows: dict[str, Any] = {}

        def call(name: str) -> None:
            rows[name] = ensure_request(target, client, "lg|t|tools:1|tool:c1|0", SPEC)

        first = threading.Thread(target=call, args=("first",))
        first.start()
        assert held.entered.wait(10)
        second = threading.Thread(target=call, args=("second",))
        second.start()
        time.sleep(0.3)  # the second call reaches the gate while the first POST is held
        held.release.set()
        first.join(30)
        second.join(30)
        assert held.posts == 1
        assert rows["first"].request_id == rows["second"].request_id is not None
        assert len(hitl.client.requests.list(loop_id=hitl.loop_id).requests) == 1
        ledger.close()


def test_a_second_async_call_waits_for_the_create_in_flight(tmp_path: Path) -> None:
    async def main() -> None:
        async with alocal_hitl() as hitl:
            held = _AsyncHeldPosts(hitl.http)
            client = AsyncHITLClient(hitl.api_key, base_url=hitl.base_url, http_client=held)  # type: ignore[arg-type]
            ledger, target = _target(tmp_path / "l.db", hitl.loop_id)
            key = "lg|t|tools:1|tool:c1|0"
            first = asyncio.create_task(aensure_request(target, client, key, SPEC))
            await held.aentered.wait()
            second = asyncio.create_task(aensure_request(target, client, key, SPEC))
            await asyncio.sleep(0.3)  # the second call reaches the gate meanwhile
            held.arelease.set()
            one, two = await asyncio.gather(first, second)
            assert held.posts == 1
            assert one.request_id == two.request_id is not None
            listed = await hitl.client.requests.list(loop_id=hitl.loop_id)
            assert len(listed.requests) == 1
            ledger.close()

    asyncio.run(main())
