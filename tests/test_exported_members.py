import copy
import importlib
import pickle
import pkgutil
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

import hitl_agent

ROOT = Path(__file__).resolve().parents[1]


def test_all_lists_every_public_name_sorted() -> None:
    public = sorted(
        (name for name in vars(hitl_agent) if not name.startswith("_") or name == "__version__"),
        key=str.casefold,
    )
    public = [
        name
        for name in public
        if not isinstance(getattr(hitl_agent, name), type(hitl_agent))  # submodules
    ]
    assert sorted(hitl_agent.__all__, key=str.casefold) == public


# -- every public error at the root and in the drawn tree ----------------------------------


def _subpackages() -> list[str]:
    names = []
    for info in pkgutil.iter_modules(hitl_agent.__path__):
        if info.ispkg and not info.name.startswith("_"):
            names.append(f"hitl_agent.{info.name}")
    return sorted(names)


def _public_errors() -> set[type[BaseException]]:
    """Every HITLError subclass with a public name, in any module that imports here."""
    for name in (*_subpackages(), "hitl_agent.langgraph.remote"):
        try:
            importlib.import_module(name)
        except ImportError:  # an extra that is not installed
            continue
    found: set[type[BaseException]] = set()
    todo: list[type[BaseException]] = [hitl_agent.HITLError]
    while todo:
        cls = todo.pop()
        if not cls.__name__.startswith("_"):
            found.add(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_public_error_is_exported_at_the_root() -> None:
    missing = {cls.__name__ for cls in _public_errors()} - set(hitl_agent.__all__)
    assert not missing
    for cls in _public_errors():
        assert getattr(hitl_agent, cls.__name__) is cls


@pytest.mark.parametrize("where", ["_exceptions.py", "docs/client.md"])
def test_the_drawn_error_tree_names_every_exported_error(where: str) -> None:
    if where == "_exceptions.py":
        drawing = importlib.import_module("hitl_agent._exceptions").__doc__ or ""
    else:
        drawing = (ROOT / where).read_text(encoding="utf-8").split("## Errors", 1)[1]
    exported = {
        name
        for name in hitl_agent.__all__
        if isinstance(getattr(hitl_agent, name), type)
        and issubclass(getattr(hitl_agent, name), hitl_agent.HITLError)
    }
    assert {name for name in exported if name not in drawing} == set()


def test_the_remote_error_needs_no_extra() -> None:
    code = (
        "import importlib.abc, sys\n"
        "class _Hide(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] == 'langgraph_sdk':\n"
        "            raise ModuleNotFoundError(name, name=name)\n"
        "sys.meta_path.insert(0, _Hide())\n"
        "import hitl_agent, hitl_agent.langgraph\n"
        "assert hitl_agent.langgraph.RemoteResumeError is hitl_agent.RemoteResumeError\n"
        "try:\n"
        "    hitl_agent.langgraph.RemoteGraphResumer\n"
        "except ImportError as err:\n"
        "    print(type(err).__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "MissingExtraError"


def test_the_remote_error_is_one_class_wherever_it_is_imported() -> None:
    remote = pytest.importorskip("hitl_agent.langgraph.remote")
    assert remote.RemoteResumeError is hitl_agent.RemoteResumeError
    from hitl_agent.langgraph import RemoteResumeError

    assert RemoteResumeError is hitl_agent.RemoteResumeError


# -- public names show hitl_agent as their module --------------------------------------------


def _root_objects() -> list[tuple[str, Any]]:
    return [
        (name, getattr(hitl_agent, name))
        for name in hitl_agent.__all__
        if isinstance(getattr(hitl_agent, name), type) or callable(getattr(hitl_agent, name))
    ]


def test_root_names_show_hitl_agent_as_their_module() -> None:
    for name, obj in _root_objects():
        assert obj.__module__ == "hitl_agent", name
        if isinstance(obj, type):
            assert repr(obj) == f"<class 'hitl_agent.{name}'>"


def _errors() -> list[BaseException]:
    request = httpx.Request("GET", "http://127.0.0.1:9/v1/requests")
    response = httpx.Response(429, request=request)
    return [
        hitl_agent.HITLError("boom"),
        hitl_agent.ConfigError("priority", "'urgent' is not a priority", "pass high"),
        hitl_agent.ResponseShapeError("no shape"),
        hitl_agent.PollingError("stopped", failures=3, request_id="r1"),
        hitl_agent.ReviewTimeoutError("no decision"),
        hitl_agent.ReviewMismatchError("another question"),
        hitl_agent.LedgerError("sqlite: get failed"),
        hitl_agent.RemoteResumeError("resume failed", 409),
        hitl_agent.APIConnectionError(request=request),
        hitl_agent.APITimeoutError(request=request),
        hitl_agent.APIResponseValidationError("not JSON", response=response),
        hitl_agent.BadRequestError("bad", response=response, data="x"),
        hitl_agent.RateLimitError("quota", response=response, data={"usage_count": 100}),
    ]


@pytest.mark.parametrize("how", ["pickle", "copy", "deepcopy"])
def test_public_errors_pickle_and_copy_with_their_attributes(how: str) -> None:
    def again(value: Any) -> Any:
        if how == "pickle":
            return pickle.loads(pickle.dumps(value))
        return copy.copy(value) if how == "copy" else copy.deepcopy(value)

    for error in _errors():
        twin = again(error)
        assert type(twin) is type(error)
        assert str(twin) == str(error) and twin.args == error.args
        assert sorted(vars(twin)) == sorted(vars(error))
        for attr in ("field", "fix", "failures", "request_id", "status_code", "usage_count"):
            assert getattr(twin, attr, None) == getattr(error, attr, None), attr


def test_public_models_and_settings_pickle_and_copy() -> None:
    request = hitl_agent.Request.model_validate(
        {"id": "r1", "status": "completed", "response_data": "approve", "shipped_by": "x"}
    )
    values: list[Any] = [
        request,
        hitl_agent.EditedText(text="Hello", was_edited=True),
        hitl_agent.Decision(request_id="r1", status="completed", outcome="approved"),
        hitl_agent.RetryPolicy(max_retries=5),
        hitl_agent.ReviewDefaults(priority="high", approve_values=["ship"]),
        hitl_agent.CallbackConfig(url="https://my.app/hitl", secret="s" * 40),
        hitl_agent.PollConfig(interval=2.0),
    ]
    for value in values:
        for twin in (pickle.loads(pickle.dumps(value)), copy.copy(value), copy.deepcopy(value)):
            assert type(twin) is type(value) and twin == value


# -- subpackages export public names only ------------------------------------------------------

TEST_HOOKS = {"CRASH_POINTS", "set_hook", "derive_token", "token_hash", "token_matches"}


def test_gate_exports_no_test_hooks_or_token_helpers() -> None:
    import hitl_agent.gate

    assert TEST_HOOKS.isdisjoint(hitl_agent.gate.__all__)
    assert TEST_HOOKS.isdisjoint(vars(hitl_agent.gate))


@pytest.mark.parametrize("package", _subpackages())
def test_subpackage_all_names_exist_and_are_public(package: str) -> None:
    try:
        module = importlib.import_module(package)
    except ImportError as err:  # pragma: no cover - an extra that is not installed
        pytest.skip(str(err))
    names = getattr(module, "__all__", [])
    assert all(not name.startswith("_") for name in names), names
    assert len(set(names)) == len(names)
    for name in names:
        try:
            value = getattr(module, name, None)
        except ImportError:  # pragma: no cover - loaded lazily, from an extra not installed
            continue
        assert value is not None, f"{package}.{name}"


def test_every_subpackage_name_is_documented_in_the_reference() -> None:
    """docs/reference.md lists exactly the names each subpackage exports (test_docs.py checks
    that every name it lists exists)."""
    page = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `(hitl_agent\.\w+\.\w+)` \|", page, flags=re.MULTILINE))
    exported = set()
    for package in _subpackages():
        try:
            module = importlib.import_module(package)
        except ImportError:  # pragma: no cover - an extra that is not installed
            listed = {name for name in listed if not name.startswith(f"{package}.")}
            continue
        exported.update(f"{package}.{name}" for name in getattr(module, "__all__", []))
    assert sorted(exported - listed) == [], "add a line for each to docs/reference.md"
    assert sorted(listed - exported) == [], "docs/reference.md lists names nobody exports"
