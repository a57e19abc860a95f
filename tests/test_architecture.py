"""The layering of docs/architecture.md, measured: how often one approved call crosses the
package boundaries (tools/crossings.py), and the import contract (lint-imports)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _crossings_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crossings", ROOT / "tools" / "crossings.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_approved_call_crosses_langchain_gate_at_most_8_times_and_never_dispatch() -> None:
    counts = _crossings_tool().trace_approved_call()
    assert counts[("gate", "langchain")] <= 8, counts
    assert counts[("dispatch", "gate")] == 0, counts
    # The measurement sees the boundaries at all: the call does go through the gate.
    assert counts[("gate", "langchain")] > 0 and counts[("gate", "ledger")] > 0, counts


def test_the_crossing_counter_sees_a_crossing_through_foreign_frames() -> None:
    # Two functions "in" hitl_agent.aaa and hitl_agent.bbb, with a foreign frame between:
    # aaa -> (foreign) -> bbb is one crossing; bbb -> bbb is none.
    tool = _crossings_tool()
    bbb: dict[str, object] = {"__name__": "hitl_agent.bbb"}
    exec("def inner():\n    return 1\ndef outer():\n    return inner()", bbb)
    foreign: dict[str, object] = {"__name__": "somewhere.else", "f": bbb["outer"]}
    exec("def through():\n    return f()", foreign)
    aaa: dict[str, object] = {"__name__": "hitl_agent.aaa", "g": foreign["through"]}
    exec("def start():\n    return g()", aaa)
    counter = tool.Crossings()
    with counter:
        aaa["start"]()  # type: ignore[operator]
    assert dict(counter.counts) == {("aaa", "bbb"): 1}


@pytest.mark.skipif(
    shutil.which("lint-imports") is None
    and not (Path(sys.executable).parent / "lint-imports").exists(),
    reason="import-linter not installed",
)
def test_the_import_contract_is_kept() -> None:
    linter = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(
        [str(linter) if linter.exists() else "lint-imports"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout
