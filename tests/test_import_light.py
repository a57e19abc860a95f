"""``import hitl_agent`` stays light: the client, the gate and the Decision load no LangGraph,
LangChain, web server or database driver until a feature that needs one is used."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("langgraph", "langchain", "langchain_core", "starlette", "uvicorn", "psycopg")
HEAVY_OWN = ("hitl_agent.server", "hitl_agent.langgraph", "hitl_agent.langchain", "hitl_agent.cli")


def _loaded_after(statement: str) -> list[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return list(json.loads(out.stdout))


def _heavy(modules: list[str]) -> list[str]:
    return [name for name in modules if name.split(".")[0] in HEAVY or name.startswith(HEAVY_OWN)]


def test_import_hitl_agent_loads_no_framework_or_server() -> None:
    assert _heavy(_loaded_after("import hitl_agent")) == []


def test_building_a_keeper_loads_no_framework_or_server(tmp_path: Path) -> None:
    statement = (
        "import hitl_agent; "
        "k = hitl_agent.Gatekeeper(client=hitl_agent.HITLClient(api_key='k' * 20), "
        f"loop_id='loop', ledger='sqlite:///{tmp_path}/hitl.db')"
    )
    assert _heavy(_loaded_after(statement)) == []


def test_the_check_sees_a_heavy_import() -> None:
    assert "langgraph" in _heavy(_loaded_after("import hitl_agent.langgraph"))
