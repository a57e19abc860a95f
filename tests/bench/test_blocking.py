"""bench/bench_blocking.py at a small N: the figures its rows report are real ones.

These waits once hung 300 s a test (pytest-timeout's limit) when the HTTP stack raised on
every call: the hub logged each failed sweep and the waits sat until their deadline, and
``measure_threads`` waited 300 s for review() threads that had died. Now the sweeps' third
persistent failure fails the waits with a PollingError, the bench reports it, and no test
here may take more than a minute.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import bench_blocking  # noqa: E402

from hitl_agent import PollingError  # noqa: E402
from hitl_agent.gate._blocking import hub  # noqa: E402
from hitl_agent.testing import LocalHITL  # noqa: E402

pytestmark = pytest.mark.timeout(60)

WAITS = 200


def test_every_wait_returns_approved_on_one_poll_thread() -> None:
    before = hub.waiting
    ours = bench_blocking.measure_waits(WAITS, traced=False)["ours"]
    assert ours["approved"] == WAITS  # measure_waits raises before that; kept as the claim
    assert ours["poll_threads"] == 1
    assert 0 < ours["registered"] < 60 and 0 < ours["resolved"] < 60
    assert hub.waiting == before  # every wait returned and left the hub


def test_traced_memory_per_wait_is_positive_and_bounded() -> None:
    before = hub.waiting
    result = bench_blocking.measure_waits(WAITS, traced=True)
    ours, bare = result["ours"]["bytes"] / WAITS, result["bare"]["bytes"] / WAITS
    assert math.isfinite(ours) and math.isfinite(bare)
    # A wait holds at least a bare task's task, coroutine and future, and (issue 12) no
    # more than 4 KB: the row and spec, a concurrent Future per wait, would break it.
    assert 0 < bare < ours <= 4096
    assert hub.waiting == before  # the cancelled waits left the hub


def test_blocked_review_threads_all_return_approved() -> None:
    threads = bench_blocking.measure_threads(20)
    assert threads["approved"] == 20
    assert threads["ours"] > 0 or math.isnan(threads["ours"])  # NaN: no /proc (not Linux)


def test_a_broken_http_stack_fails_the_waits_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every API call raises TypeError (as an httpx.Timeout handed to httpx2 did): both
    passes raise the PollingError within seconds instead of hanging."""
    real = bench_blocking.local_hitl

    @contextlib.contextmanager
    def broken(*args: Any, **kwargs: Any) -> Iterator[LocalHITL]:
        with real(*args, **kwargs) as hitl:

            def send(*_: Any, **__: Any) -> Any:
                raise TypeError("the HTTP stack is broken")

            monkeypatch.setattr(hitl.http, "send", send)
            yield hitl

    monkeypatch.setattr(bench_blocking, "local_hitl", broken)
    before = hub.waiting
    started = time.monotonic()
    with pytest.raises(PollingError) as raised:
        bench_blocking.measure_waits(20, traced=False)
    assert isinstance(raised.value.__cause__, TypeError)
    with pytest.raises(PollingError):
        bench_blocking.measure_threads(5)
    assert time.monotonic() - started < 30
    assert hub.waiting == before
