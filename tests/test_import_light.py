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


# -- optional extras: without one, the feature says which extra to install -----------------

_BLOCK = """
import importlib.abc, sys
class _Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {hidden!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, _Hide())
"""


def _run_without(hidden: set[str], statement: str) -> subprocess.CompletedProcess[str]:
    code = _BLOCK.format(hidden=sorted(hidden)) + statement
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_the_core_works_without_the_server_and_remote_extras(tmp_path: Path) -> None:
    statement = (
        "import hitl_agent\n"
        "from hitl_agent.langgraph import GraphResumer\n"
        "k = hitl_agent.Gatekeeper(client=hitl_agent.HITLClient(api_key='k' * 20), "
        f"loop_id='loop', ledger='sqlite:///{tmp_path}/hitl.db')\n"
        "d = k.dispatcher()\n"
        "print('ok')\n"
    )
    done = _run_without({"starlette", "uvicorn", "markdown_it", "langgraph_sdk"}, statement)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_a_missing_extra_names_the_extra_to_install() -> None:
    cases = {
        "import hitl_agent.server": ({"starlette"}, "pip install 'hitl-agent[server]'"),
        "import hitl_agent.testing": ({"starlette"}, "pip install 'hitl-agent[server]'"),
        "from hitl_agent.langgraph import RemoteGraphResumer": (
            {"langgraph_sdk"},
            "pip install 'hitl-agent[remote]'",
        ),
    }
    for statement, (hidden, fix) in cases.items():
        done = _run_without(hidden, statement)
        assert done.returncode != 0, statement
        assert "MissingExtraError" in done.stderr and fix in done.stderr, (statement, done.stderr)


def test_a_cli_command_without_its_extra_says_which_and_exits_1() -> None:
    statement = (
        "import sys\n"
        "from hitl_agent.cli import main\n"
        "sys.argv = ['hitl-agent', 'serve', '--port', '8799']\n"
        "main()\n"
    )
    done = _run_without({"starlette", "uvicorn"}, statement)
    assert done.returncode == 1, done.stderr
    assert "pip install 'hitl-agent[server]'" in done.stderr
    assert "Traceback" not in done.stderr
