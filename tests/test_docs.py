"""Every Python block in README.md and docs/*.md runs as written, and every public name exists.

Each file's blocks run in order in one namespace (a later block may use an earlier one's
names), in a fresh working directory, against the embedded HITL server on a loopback port:
``HITL_BASE_URL``, ``HITL_API_KEY`` and ``HITL_LOOP_ID`` point at it, as they would point at
HITL.sh for a user. A reviewer thread answers what is pending the way a person approving
would (the first approving option, ``True``, ...), so a snippet that waits for a human
finishes. Top-level ``await`` is not allowed: a user pastes snippets into a script.

A block that truly needs the real HITL.sh is preceded by ``<!-- docs-test: skip REASON -->``;
the test lists those skips so they stay few and visible.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import re
import sys
import threading
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from markdown_it import MarkdownIt
from server.loopback import serve_app  # tests/server: the loopback uvicorn helper

from hitl_agent._extras import MissingExtraError
from hitl_agent.server import Bootstrap, create_app

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s+(?P<reason>.+?)\s*-->")
_FILE_TIMEOUT = 120.0


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    code: str
    skip: str | None


def blocks(path: Path) -> list[Block]:
    """The ``python`` fences of one markdown file, with the skip marker before each."""
    tokens = MarkdownIt("commonmark").parse(path.read_text(encoding="utf-8"))
    found: list[Block] = []
    pending_skip: str | None = None
    for token in tokens:
        if token.type == "html_block":
            match = _SKIP.search(token.content)
            pending_skip = match.group("reason") if match else pending_skip
            continue
        if token.type == "fence" and token.info.strip().split(" ")[0] == "python":
            line = (token.map[0] + 1) if token.map else 0
            found.append(Block(path, line, token.content, pending_skip))
        if token.type in ("fence", "paragraph_open", "heading_open"):
            pending_skip = None
    return found


_APPROVING = ("approve", "approved", "yes", "allow")


def _approving_answer(request: dict[str, Any]) -> Any:
    """What a person approving would answer to ``request`` (the reviewer API's shape)."""
    kind = request.get("response_type")
    config = request.get("response_config") or {}
    options = [o.get("value") if isinstance(o, dict) else o for o in config.get("options") or []]
    if kind == "boolean":
        return True
    if kind == "single_select" and options:
        for option in options:
            if str(option).lower() in _APPROVING:
                return option
        return options[0]
    if kind == "multi_select" and options:
        return options[: max(1, int(config.get("min_selections") or 1))]
    if kind == "number":
        low = config.get("min_value")
        return low if low is not None else 1
    if kind == "rating":
        return config.get("max_value") or 5
    if kind == "editable_text":
        return {"revised_text": config.get("default_text") or request.get("request_text") or "ok"}
    return "Looks good."


class _Reviewer(threading.Thread):
    """Answers every pending request of the loop, as a person approving would."""

    def __init__(self, base_url: str, token: str) -> None:
        super().__init__(name="docs-reviewer", daemon=True)
        self.base_url = base_url
        self.token = token
        self.stop = threading.Event()
        self.answered = 0

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=10) as http:
            while not self.stop.wait(0.2):
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                    queue = http.get("/reviewer/queue").json()["data"]["requests"]
                    for request in queue:
                        body = {"response_data": _approving_answer(request)}
                        url = f"/reviewer/requests/{request['id']}/respond"
                        answer = http.post(url, json=body)
                        self.answered += answer.is_success


@pytest.fixture
def live_hitl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bootstrap]:
    """The embedded server on 127.0.0.1, a reviewer, and the environment a user would set."""
    app = create_app(tmp_path / "server.db", scheduler_interval=0.2)
    credentials = app.state.hitl.bootstrap(default_workflow=True)
    with serve_app(app, lifespan="on") as port:
        base_url = f"http://127.0.0.1:{port}/v1"
        reviewer = _Reviewer(base_url, credentials.reviewer_token)
        reviewer.start()
        for name in ("HITL_CALLBACK_URL", "HITL_CALLBACK_SECRET", "HITL_LEDGER"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HITL_BASE_URL", base_url)
        monkeypatch.setenv("HITL_API_KEY", credentials.api_key)
        monkeypatch.setenv("HITL_LOOP_ID", credentials.loop_id)
        monkeypatch.setenv("HITL_WORKFLOW", credentials.workflow_id or "")
        monkeypatch.chdir(tmp_path)
        try:
            yield credentials
        finally:
            reviewer.stop.set()
            reviewer.join(timeout=5)
    app.state.hitl.close()


def _run_file(path: Path) -> None:
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for block in blocks(path):
        if block.skip is not None:
            continue
        code = compile(block.code, f"{path.relative_to(ROOT)}:{block.line}", "exec")
        exec(code, namespace)


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run(path: Path, live_hitl: Bootstrap) -> None:
    runnable = [block for block in blocks(path) if block.skip is None]
    if not runnable:
        pytest.skip(f"{path.name} has no runnable python block")
    failure: list[BaseException] = []

    def target() -> None:
        try:
            _run_file(path)
        except BaseException as exc:  # reported below with the block's file:line
            failure.append(exc)

    worker = threading.Thread(target=target, name=f"docs-{path.name}", daemon=True)
    worker.start()
    worker.join(_FILE_TIMEOUT)
    assert not worker.is_alive(), f"{path.name}: the snippets did not finish in {_FILE_TIMEOUT} s"
    if failure:
        raise failure[0]


def test_skipped_blocks_are_few_and_say_why() -> None:
    skipped = [block for path in DOC_FILES for block in blocks(path) if block.skip is not None]
    assert all(len(block.skip or "") >= 10 for block in skipped), skipped
    assert len(skipped) <= 5, [f"{b.path.name}:{b.line} {b.skip}" for b in skipped]


# -- public names ---------------------------------------------------------------------------

_DOTTED = re.compile(r"(?<![\w.])hitl_agent(?:\.[A-Za-z_]\w*)+")
_MEMBER = re.compile(r"\b(keeper|dispatcher|client\.requests|client\.loops)\.([a-z_]\w*)\b")


def _resolve(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            try:
                if not hasattr(obj, name):
                    return False
            except MissingExtraError:
                return True  # there, behind an extra this install lacks (the wheel run)
            obj = getattr(obj, name)
        return True
    return False


def _logger_names() -> set[str]:
    """Logger names are public too (docs say which logger warns), but they are not objects."""
    found: set[str] = set()
    for source in (ROOT / "hitl_agent").rglob("*.py"):
        found.update(re.findall(r'getLogger\("([\w.]+)"\)', source.read_text(encoding="utf-8")))
    return found


def _has_member(owner: Any, name: str) -> bool:
    """A class attribute, or an instance attribute its ``__init__`` sets."""
    if hasattr(owner, name):
        return True
    try:
        source = inspect.getsource(owner.__init__)
    except (OSError, TypeError):
        return False
    return re.search(rf"\bself\.{name}\s*[:=]", source) is not None


def _owners() -> dict[str, Any]:
    from hitl_agent import Gatekeeper
    from hitl_agent.dispatch import Dispatcher
    from hitl_agent.resources.loops import Loops
    from hitl_agent.resources.requests import Requests

    return {
        "keeper": Gatekeeper,
        "dispatcher": Dispatcher,
        "client.requests": Requests,
        "client.loops": Loops,
    }


def test_public_names_in_the_docs_exist() -> None:
    owners = _owners()
    loggers = _logger_names()
    missing: list[str] = []
    for path in DOC_FILES:
        text = path.read_text(encoding="utf-8")
        for dotted in sorted(set(_DOTTED.findall(text))):
            if dotted not in loggers and not _resolve(dotted.rstrip(".")):
                missing.append(f"{path.name}: {dotted}")
        for owner, name in sorted(set(_MEMBER.findall(text))):
            if not _has_member(owners[owner], name):
                missing.append(f"{path.name}: {owner}.{name}")
    assert not missing, "names in the docs that the code does not have:\n" + "\n".join(missing)


def test_the_checker_sees_a_missing_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _resolve("hitl_agent.gate.Gatekeeper.review")
    assert not _resolve("hitl_agent.gate.Gatekeeper.no_such_method")
    assert not _resolve("hitl_agent.no_such_module")
    behind_an_extra = types.ModuleType("hitl_agent.behind_an_extra")

    def missing(name: str) -> Any:
        raise MissingExtraError("postgres", "PostgresLedger", "psycopg")

    behind_an_extra.__getattr__ = missing  # type: ignore[method-assign]
    monkeypatch.setitem(sys.modules, "hitl_agent.behind_an_extra", behind_an_extra)
    assert _resolve("hitl_agent.behind_an_extra.PostgresLedger")
    from hitl_agent.dispatch import Dispatcher

    assert _has_member(Dispatcher, "receiver") and not _has_member(Dispatcher, "no_such_attr")
    doc = tmp_path / "x.md"
    doc.write_text("<!-- docs-test: skip needs the real HITL.sh -->\n\n```python\nx = 1\n```\n")
    (block,) = blocks(doc)
    assert block.skip == "needs the real HITL.sh" and block.code == "x = 1\n"


def test_environment_is_clean_outside_the_fixture() -> None:
    assert "HITL_API_KEY" not in os.environ
