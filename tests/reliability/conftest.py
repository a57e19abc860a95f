"""Fixtures for the reliability matrices; the helpers live in ``rel_support`` and
``crash_agent`` (this folder is not a package, and no module here is named ``langgraph``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from crash_agent import Store
from rel_support import (
    BACKENDS,
    FULL,
    SEED,
    SUMMARIES,
    HITLServer,
    Stress,
    open_store,
    serve_hitl,
)


@pytest.fixture(scope="session")
def stress() -> Stress:
    return Stress(FULL, SEED)


@pytest.fixture(scope="module")
def hitl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HITLServer]:
    """The local HITL server on a loopback port (uvicorn thread, SQLite file)."""
    with serve_hitl(tmp_path_factory.mktemp("hitl-server") / "hitl.db") as server:
        yield server


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """One backend's ledger + checkpointer + effects, dropped afterwards."""
    opened = open_store(request.param, tmp_path / "store")
    try:
        yield opened
    finally:
        opened.drop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not SUMMARIES:
        return
    terminalreporter.section("reliability matrices (counts measured in this run)")
    for summary in SUMMARIES:
        terminalreporter.write_line(", ".join(f"{key}={value}" for key, value in summary.items()))
