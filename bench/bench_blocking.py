"""Blocking scale: N concurrent ``areview()`` waits in one process (issue 12 item 5).

``measure_waits``: a blocking-mode keeper against the embedded local server (no rate limit),
N requests created beforehand, then N tasks in one event loop each awaiting
``keeper.areview(..., key=k, mode="block")``, the public path: the request is found by key
(no HTTP call), the wait registered in the process's ``WaitHub``, whose one daemon thread
sweeps the keeper's dispatcher on its schedule. It reports the time until the hub counts N
waiting, the memory that holds them (tracemalloc's traced increase, in a pass of its own
since tracing slows every allocation; and RSS), the poll loops and threads running then,
and, after the loop's reviewer approves all N at once, when every wait has returned its
approved Decision; the baseline is N bare tasks each awaiting an ``asyncio.Future``.
``measure_threads``: N sync ``review()`` calls, one caller thread each, against N threads
blocked on an ``Event``.

    .venv/bin/python bench/bench_blocking.py [--quick]        # the rows bench/run.py shows
    .venv/bin/python bench/bench_blocking.py --profile [N]    # where a wait's memory goes
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _harness import INFO, Result, Target, single
from _seeding import DirectCreates, answer_all

from hitl_agent.decision import Decision
from hitl_agent.dispatch import CallBudget
from hitl_agent.gate import Gatekeeper, ensure_request
from hitl_agent.gate._blocking import hub
from hitl_agent.ledger import SqliteLedger
from hitl_agent.testing import local_hitl

FULL_WAITS, QUICK_WAITS = 10_000, 1_000
FULL_THREADS, QUICK_THREADS = 1_000, 100
_TICK = 0.005  # seconds between looks at the hub while waits register


class Stack:
    """The local server, a temporary ledger and a blocking-mode keeper on both."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self._hitl_cm = local_hitl()
        self.hitl = self._hitl_cm.__enter__()
        # synchronous=OFF: the ledger's durability is not what is measured here (the
        # resume benchmarks measure it); its fsyncs would only slow the seeding.
        self.ledger = SqliteLedger(Path(self._tmp.name) / "ledger.db", synchronous="OFF")
        self.ledger.setup()
        # No rate limit on the local server, and a budget that never binds: the hub sweeps
        # on its floor (about a second), so what is timed is the hub and the keeper.
        self.keeper = Gatekeeper(
            client=self.hitl.client, loop_id=self.hitl.loop_id, ledger=self.ledger,
            budget=CallBudget(limit=10**9),
        )  # fmt: skip
        self._creates = DirectCreates(self.hitl)
        self._seeded = 0

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.ledger.close()
        self._hitl_cm.__exit__(None, None, None)
        self._tmp.cleanup()

    def seed(self, count: int) -> list[tuple[str, str, str]]:
        """``count`` open requests: (request text, key, request id), each text its own (a
        review asks its own question, so no wait shares another's spec)."""
        made = []
        for index in range(self._seeded, self._seeded + count):
            text, key = f"Deploy build {index}?", f"blk-bench-{index}"
            spec = self.keeper.spec(text)
            row = ensure_request(self.keeper._target, self._creates, key, spec)  # type: ignore[arg-type]
            assert row.request_id is not None
            made.append((text, key, row.request_id))
        self._seeded += count
        return made

    def answer(self, request_ids: list[str]) -> None:
        """Approve every request as the loop's reviewer: its respond operation (what the
        reviewer endpoint and the console run) for each, in one transaction, so that all
        the answers appear at once, as a bulk approval's would. (One call each would take
        ≈ 10 s for 10,000 while the sweeps run.)"""
        answer_all(self.hitl, request_ids)


def _rss() -> int | None:
    """Resident bytes of this process (Linux), None elsewhere."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class _Meter:
    """Memory and threads from ``start()`` to ``stop()``: tracemalloc's traced increase
    when ``traced`` (tracing starts at ``start``), else RSS."""

    def __init__(self, traced: bool, frames: int = 1) -> None:
        self.traced = traced
        self.frames = frames
        self.snapshot: tracemalloc.Snapshot | None = None
        self.bytes: float = float("nan")
        self.peak: float = float("nan")  # traced only: the most held at any one time
        self.threads = 0

    def start(self) -> None:
        gc.collect()
        self._threads = threading.active_count()
        if self.traced:
            tracemalloc.start(self.frames)
            tracemalloc.reset_peak()
            self._base = tracemalloc.get_traced_memory()[0]
        else:
            self._base = _rss() or 0

    def stop(self) -> None:
        gc.collect()
        self.threads = threading.active_count() - self._threads
        if self.traced:
            current, peak = tracemalloc.get_traced_memory()
            self.bytes, self.peak = current - self._base, peak - self._base
            if self.frames > 1:  # a profile: keep where it went
                self.snapshot = tracemalloc.take_snapshot()
            tracemalloc.stop()
        else:
            rss = _rss()
            self.bytes = float("nan") if rss is None else rss - self._base


async def _until(check: Callable[[], bool], limit: float) -> None:
    deadline = time.perf_counter() + limit
    while not check():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"gave up after {limit} s")
        await asyncio.sleep(_TICK)


async def _awaits(
    stack: Stack, seeded: list[tuple[str, str, str]], traced: bool, frames: int = 1
) -> dict[str, Any]:
    meter = _Meter(traced, frames)
    before = hub.waiting
    count = len(seeded)
    meter.start()
    started = time.perf_counter()
    tasks = [
        asyncio.create_task(stack.keeper.areview(text, key=key, mode="block"))
        for text, key, _ in seeded
    ]
    await _until(lambda: hub.waiting >= before + count, 120.0)
    registered = time.perf_counter() - started
    poll_threads = hub.poll_threads
    if traced:
        # Traced memory is read just after a sweep ends: a sweep in flight holds every open
        # row it read (≈ 2 KB each) for a moment, and the next starts a schedule step
        # (≈ 1 s) later. RSS keeps the peak of the sweeps that ran anyway.
        swept = hub.sweeps
        await _until(lambda: hub.sweeps > swept, 120.0)
    meter.stop()
    figures = {
        "registered": registered, "bytes": meter.bytes, "peak": meter.peak,
        "threads": meter.threads, "poll_threads": poll_threads, "snapshot": meter.snapshot,
    }  # fmt: skip
    if traced:
        # Nothing after this is measured under tracing (it slows every allocation): give
        # the waits up, which must leave the hub as it was.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if hub.waiting != before:
            raise AssertionError(f"{hub.waiting - before} cancelled waits left in the hub")
        return figures
    # A bulk answer, from a worker thread so that the loop keeps running meanwhile.
    first = time.perf_counter()
    await asyncio.to_thread(stack.answer, [rid for _, _, rid in seeded])
    last = time.perf_counter()
    decisions: list[Decision] = await asyncio.wait_for(asyncio.gather(*tasks), 600)
    finished = time.perf_counter()
    approved = sum(d.approved for d in decisions)
    if approved != count:
        raise AssertionError(f"{approved} of {count} waits returned approved")
    return {
        **figures, "answering": last - first, "resolved": finished - last,
        "approved": approved,
    }  # fmt: skip


async def _bare(count: int, traced: bool) -> dict[str, Any]:
    """N tasks each awaiting an ``asyncio.Future``: what any wait in an event loop costs."""
    loop = asyncio.get_running_loop()
    parked: list[asyncio.Future[bool]] = []

    async def wait() -> bool:
        future: asyncio.Future[bool] = loop.create_future()
        parked.append(future)
        return await future

    meter = _Meter(traced)
    meter.start()
    started = time.perf_counter()
    tasks = [asyncio.create_task(wait()) for _ in range(count)]
    await _until(lambda: len(parked) >= count, 60.0)
    registered = time.perf_counter() - started
    meter.stop()
    for future in parked:
        future.set_result(True)
    assert all(await asyncio.gather(*tasks))
    return {"registered": registered, "bytes": meter.bytes, "threads": meter.threads}


def measure_waits(count: int, traced: bool, frames: int = 1) -> dict[str, Any]:
    """One pass of ``count`` bare tasks and one of ``count`` areview() waits, each in a
    fresh event loop. ``traced``: memory by tracemalloc (exact, but every allocation is
    slower: nothing else is timed), else by RSS (bare first: ours may reuse what the bare
    tasks freed, ≤ their figure, rather than the bare tasks reusing ours).

    Each pass has a server, ledger and keeper of its own: the poller picks its listing from
    what earlier sweeps saw, and after an earlier pass's answers it lists pending requests
    and GETs each one that left the list, N calls for a bulk answer of N (≈ 7 ms each
    through the TestClient), instead of the terminal pages a fresh one lists."""
    with Stack() as stack:
        seeded = stack.seed(count)  # not measured
        bare = asyncio.run(_bare(count, traced))
        ours = asyncio.run(_awaits(stack, seeded, traced, frames))
    return {"ours": ours, "bare": bare}


def measure_threads(count: int) -> dict[str, float]:
    """RSS per caller thread: ``count`` threads each blocked in a sync ``review()`` (the
    caller's own thread, not the library's), against ``count`` threads each blocked on an
    ``Event``; then every review answered and returned."""
    with Stack() as stack:
        return _threads(stack, stack.seed(count))


def _threads(stack: Stack, seeded: list[tuple[str, str, str]]) -> dict[str, float]:
    count = len(seeded)

    def blocked(target: Callable[[int], None], ready: Callable[[], bool]) -> float:
        """RSS per thread once ``count`` threads running ``target(i)`` are all blocked."""
        base = _rss()
        for index in range(count):
            threading.Thread(target=target, args=(index,), daemon=True).start()
        deadline = time.perf_counter() + 120
        while not ready():
            if time.perf_counter() > deadline:
                raise TimeoutError("the threads did not all block in time")
            time.sleep(_TICK)
        rss = _rss()
        return float("nan") if rss is None or base is None else (rss - base) / count

    release = threading.Event()
    parked: list[int] = []

    def bare(index: int) -> None:
        parked.append(index)
        release.wait()

    baseline = blocked(bare, lambda: len(parked) >= count)
    release.set()
    decisions: list[Decision] = []
    failed: list[Exception] = []

    def review(index: int) -> None:
        text, key, _ = seeded[index]
        try:
            decisions.append(stack.keeper.review(text, key=key, mode="block"))
        except Exception as exc:  # e.g. a PollingError: the sweeps keep failing
            failed.append(exc)

    before = hub.waiting
    ours = blocked(review, lambda: hub.waiting >= before + count or bool(failed))
    stack.answer([rid for _, _, rid in seeded])
    hub.wake()  # nothing here is timed: sweep now instead of on the schedule
    deadline = time.perf_counter() + 300
    while len(decisions) + len(failed) < count and time.perf_counter() < deadline:
        time.sleep(_TICK)
    if failed:  # a failed review() is reported, not waited for until the deadline
        raise failed[0]
    return {"ours": ours, "baseline": baseline, "approved": sum(d.approved for d in decisions)}


# -- rows ---------------------------------------------------------------------------------


def run(quick: bool) -> list[Result]:
    """One run of each pass (10,000 waits take seconds to seed and resolve; the figures
    are per wait or per N, so one run already averages over N)."""
    count = QUICK_WAITS if quick else FULL_WAITS
    callers = QUICK_THREADS if quick else FULL_THREADS
    where = f"{count:,} areview() waits"
    # Untraced first: it also pays what a process's first waits start (the poll thread, the
    # executor's threads and their ledger connections), as an app would.
    timed = measure_waits(count, traced=False)
    traced = measure_waits(count, traced=True)
    threads = measure_threads(callers)
    if threads["approved"] != callers:
        raise AssertionError(f"{threads['approved']} of {callers} review() calls approved")
    kb = 1 / 1024 / count
    ours = timed["ours"]
    return [
        Result(
            f"blocking waits: memory per wait, {where}", "KB", Target("ours<=", 4.0),
            ours_runs=[traced["ours"]["bytes"] * kb], baseline_runs=[traced["bare"]["bytes"] * kb],
            baseline_name="bare task awaiting an asyncio.Future",
            note=f"tracemalloc's traced increase ÷ N, read between two sweeps; "
            f"{traced['ours']['peak'] * kb:.1f} KB at the peak, while registering",
        ),
        Result(
            f"blocking waits: RSS per wait, {where}", "KB", INFO,
            ours_runs=[ours["bytes"] * kb], baseline_runs=[timed["bare"]["bytes"] * kb],
            baseline_name="bare task awaiting an asyncio.Future",
            note="RSS increase ÷ N: keeps the registration's peak, and malloc reuses what "
            "the seeding freed: a rough figure",
        ),
        single(
            f"blocking waits: poll loops, {where}", "threads", Target("ours<=", 1),
            [one["poll_threads"] for one in (ours, traced["ours"])],
            note="hub.poll_threads with N waiting",
        ),
        Result(
            f"blocking waits: threads added, {where}", "threads", INFO,
            ours_runs=[ours["threads"]], baseline_runs=[timed["bare"]["threads"]],
            baseline_name="bare tasks",
            note="the poll thread and asyncio's default executor (at most min(32, cpus + 4) "
            "workers, whatever N)",
        ),
        Result(
            f"blocking waits: time to register, {where}", "s", Target("ours<=", 5.0),
            ours_runs=[ours["registered"]], baseline_runs=[timed["bare"]["registered"]],
            baseline_name="bare tasks started", note="first call→hub.waiting == N",
        ),
        single(
            f"blocking waits: bulk answer→all returned, {where}", "s", INFO,
            [ours["resolved"]],
            note=f"from the commit approving all {count:,} (one transaction, "
            f"{ours['answering']:.1f} s) to the last approved Decision; the sweeps on their "
            "schedule, no rate limit",
        ),
        Result(
            f"blocking waits: RSS per blocked review() thread, {callers:,} threads", "KB",
            INFO, ours_runs=[threads["ours"] / 1024], baseline_runs=[threads["baseline"] / 1024],
            baseline_name="thread blocked on Event.wait()",
            note="sync review() blocks its caller's own thread, not one of the library's",
        ),
    ]  # fmt: skip


def profile(count: int, frames: int = 8) -> None:
    """Where the traced memory of ``count`` waits goes: top allocations by traceback."""
    result = measure_waits(count, traced=True, frames=frames)
    ours, bare = result["ours"], result["bare"]
    print(f"{count:,} waits: {ours['bytes'] / count:.0f} B each (bare {bare['bytes'] / count:.0f})")
    snapshot = ours["snapshot"].filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    for stat in snapshot.statistics("traceback")[:20]:
        # The allocating line, and the innermost line of ours that led to it.
        frames_ = list(reversed(stat.traceback))  # innermost first
        inner = frames_[0]
        mine = next((f for f in frames_ if "hitl_agent" in f.filename or "bench" in f.filename),
                    inner)  # fmt: skip
        where = f"{_short(inner.filename)}:{inner.lineno}"
        if mine is not inner:
            where += f" ← {_short(mine.filename)}:{mine.lineno}"
        print(f"{stat.size / count:6.0f} B/wait {stat.count / count:5.2f} blocks  {where}")


def _short(filename: str) -> str:
    parts = Path(filename).parts
    for anchor in ("hitl_agent", "bench", "asyncio", "concurrent", "json"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor) :])
    return Path(filename).name


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--profile"]:
        profile(int(args[1]) if len(args) > 1 else QUICK_WAITS)
    else:
        from _harness import print_table

        print_table(run("--quick" in args))
