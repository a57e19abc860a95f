"""What a wheel user meets first: the extras each entry point needs, said before it is used,
a missing extra named when it is not installed, and a license file."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
    "optional-dependencies"
]


def _extras_table() -> dict[str, str]:
    """The README's ``| extra | install it before you use |`` rows: extra -> what needs it."""
    rows: dict[str, str] = {}
    for match in re.finditer(r"^\| `([a-z-]+)` \| (.+) \|$", README, flags=re.MULTILINE):
        rows[match.group(1)] = match.group(2)
    return rows


@pytest.mark.parametrize(
    ("extra", "entry_point"),
    [
        ("server", "`hitl-agent serve`"),
        ("server", "`hitl-agent demo`"),
        ("server", "`hitl-agent review`"),
        ("server", "`hitl_agent.testing`"),
        ("server", "`dispatcher.running()`"),
        ("langchain", "`keeper.bridge(agent)`"),
        ("remote", "`RemoteGraphResumer`"),
        ("postgres", "`PostgresLedger`"),
        ("plot", "`hitl-agent stats --plot`"),
    ],
)
def test_the_readme_says_which_extra_each_entry_point_needs(extra: str, entry_point: str) -> None:
    table = _extras_table()
    assert extra in table, f"README has no row for the {extra!r} extra"
    assert entry_point in table[extra]
    assert extra in EXTRAS  # a real extra of pyproject.toml


def test_the_quickstart_installs_the_server_extra_before_it_runs_serve() -> None:
    fences = [
        token.content
        for token in MarkdownIt("commonmark").parse(README)
        if token.type == "fence" and token.info.strip() == "bash"
    ]
    # The README's first commands stay the project's own: make demo, make test.
    assert fences[0].split()[:2] == ["make", "demo"] and "make test" in fences[0]
    quickstart = README.index("## Five-minute quickstart")
    first_serve = README.index("hitl-agent serve --port", quickstart)
    install = README.find("pip install 'hitl-agent[server]'", quickstart)
    assert 0 <= install < first_serve


def _without_extras(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``hitl-agent ARGS`` where the server and plot extras are not installed."""
    hide = "starlette", "uvicorn", "markdown_it", "matplotlib"
    script = (
        f"import sys\nfor name in {hide!r}:\n    sys.modules[name] = None\n"
        "from hitl_agent.cli import main\nmain()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


@pytest.mark.parametrize("command", ["serve", "demo", "review"])
def test_a_command_without_the_server_extra_names_it(command: str, tmp_path: Path) -> None:
    done = _without_extras(command, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "'server' extra" in done.stderr and "pip install 'hitl-agent[server]'" in done.stderr
    assert done.stdout == ""
    assert list(tmp_path.iterdir()) == []  # no database file, nothing else


def test_the_bridge_service_without_the_server_extra_names_it_before_anything(
    tmp_path: Path,
) -> None:
    args = ("bridge", "--loop-id", "L", "--graph", "no_such_module:agent", "--checkpointer")
    done = _without_extras(*args, "memory", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "'server' extra" in done.stderr and "pip install 'hitl-agent[server]'" in done.stderr
    assert "no_such_module" not in done.stderr  # said before the graph was loaded
    assert done.stdout == "" and list(tmp_path.iterdir()) == []


def test_hitl_agent_testing_without_the_server_extra_names_it(tmp_path: Path) -> None:
    script = (
        "import sys\nsys.modules['starlette'] = None\n"
        "try:\n    import hitl_agent.testing\nexcept ImportError as err:\n    print(err)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert "hitl_agent.testing needs the 'server' extra" in done.stdout, done.stderr


def test_the_license_is_the_mit_text_pyproject_declares() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 the hitl_agent authors" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text
