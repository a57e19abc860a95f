"""``hitl-agent worker``: graph loading, flag errors, and one real sweep (--once)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hitl_agent.cli import main
from hitl_agent.cli._worker import load_graph
from hitl_agent.testing import local_hitl

GRAPH_MODULE = """
from typing import TypedDict
from langgraph.graph import START, StateGraph


class S(TypedDict, total=False):
    n: int


def build(checkpointer):
    builder = StateGraph(S)
    builder.add_node("noop", lambda s: {"n": 1})
    builder.add_edge(START, "noop")
    return builder.compile(checkpointer=checkpointer)


compiled = build(None)
"""


@pytest.fixture
def graph_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "worker_graph_mod.py").write_text(GRAPH_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "worker_graph_mod"


def test_load_graph_accepts_a_graph_or_a_builder(graph_module: str) -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    sentinel: Any = InMemorySaver()
    built = load_graph(f"{graph_module}:build", sentinel)
    assert built.checkpointer is sentinel
    assert load_graph(f"{graph_module}:compiled", sentinel).checkpointer is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--graph", "x:y", "--checkpointer", "memory"], "--loop-id"),
        (["--graph", "nomodule", "--checkpointer", "memory", "--loop-id", "l"], "module:attribute"),
        (["--graph", "x:y", "--checkpointer", "redis://", "--loop-id", "l"], "--checkpointer"),
    ],
)
def test_usage_errors(args: list[str], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HITL_API_KEY", "k")
    result = CliRunner().invoke(main, ["worker", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_once_runs_one_sweep(
    graph_module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with local_hitl() as hitl:
        import hitl_agent._client as client_module

        monkeypatch.setattr(client_module, "HITLClient", lambda *a, **k: hitl.client)
        result = CliRunner().invoke(
            main,
            [
                "worker",
                "--graph",
                f"{graph_module}:build",
                "--checkpointer",
                "memory",
                "--ledger",
                f"sqlite:///{tmp_path}/l.db",
                "--loop-id",
                hitl.loop_id,
                "--once",
            ],
        )
    assert result.exit_code == 0, result.output
    assert "resumed 0 review(s)" in result.output


@pytest.mark.parametrize("target", ["loop_and_workflow", "neither"])
def test_a_worker_takes_a_loop_or_a_workflow(
    target: str, graph_module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HITL_API_KEY", "k")
    monkeypatch.delenv("HITL_LOOP_ID", raising=False)
    monkeypatch.delenv("HITL_WORKFLOW", raising=False)
    both = ["--loop-id", "l", "--workflow", "w"] if target == "loop_and_workflow" else []
    args = ["worker", "--graph", f"{graph_module}:build", "--checkpointer", "memory", *both]
    result = CliRunner().invoke(main, [*args, "--once"])
    assert result.exit_code == 2, result.output
    assert "--loop-id (HITL_LOOP_ID) or --workflow (HITL_WORKFLOW)" in result.output


def test_once_with_a_workflow_runs_one_sweep(
    graph_module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 22 W1: ``--workflow`` (or HITL_WORKFLOW) instead of ``--loop-id``."""
    with local_hitl() as hitl:
        import hitl_agent._client as client_module

        monkeypatch.setattr(client_module, "HITLClient", lambda *a, **k: hitl.client)
        monkeypatch.setenv("HITL_WORKFLOW", hitl.workflow_id)
        monkeypatch.delenv("HITL_LOOP_ID", raising=False)
        result = CliRunner().invoke(
            main,
            ["worker", "--graph", f"{graph_module}:build", "--checkpointer", "memory",
             "--ledger", f"sqlite:///{tmp_path}/l.db", "--once"],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "resumed 0 review(s)" in result.output


def test_graph_module_is_found_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As installed, ``hitl-agent``'s sys.path starts at its bin directory, not the cwd."""
    import sys

    (tmp_path / "cwd_graph_mod.py").write_text(GRAPH_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "cwd_graph_mod", raising=False)
    from langgraph.checkpoint.memory import InMemorySaver

    saver: Any = InMemorySaver()
    assert load_graph("cwd_graph_mod:build", saver).checkpointer is saver
