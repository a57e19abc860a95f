"""``hitl-agent serve`` and workflows (issue 22 W1): the banner prints each workflow's trigger
URL beside the loop id; without ``--workflow`` one default workflow (Approve/Reject, 1 h,
default Reject) is set up; ``--workflow FILE`` (JSON, or YAML with PyYAML) runs the file's,
and a bad file is refused before the port is bound or the database created."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner
from starlette.testclient import TestClient

from hitl_agent.cli._serve import serve
from hitl_agent.server import create_app

_LINE = r"\s+(Loop id|API key|Reviewer token|Workflow id|Trigger URL)\s+(\S+)"


@pytest.fixture(autouse=True)
def no_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_run(self: uvicorn.Server, sockets: list[socket.socket] | None = None) -> None:
        return None

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(db: Path, *extra: str) -> tuple[Any, int, list[tuple[str, str]]]:
    port = _port()
    result = CliRunner().invoke(serve, ["--db", str(db), "--port", str(port), *extra])
    return result, port, re.findall(_LINE, result.output)


def _trigger(db: Path, key: str, workflow_id: str, body: dict[str, Any]) -> dict[str, Any]:
    app = create_app(db, scheduler_interval=None)
    try:
        with TestClient(app) as http:
            auth = {"Authorization": f"Bearer {key}"}
            answer = http.post(f"/v1/workflows/{workflow_id}/trigger", json=body, headers=auth)
            assert answer.status_code == 201, answer.text
            request_id = answer.json()["data"]["request_id"]
            got = http.get(f"/v1/api/requests/{request_id}", headers=auth)
            return dict(got.json()["data"]["request"])
    finally:
        app.state.hitl.close()


def test_serve_sets_up_a_default_workflow_and_prints_its_trigger_url(tmp_path: Path) -> None:
    db = tmp_path / "hitl.db"
    result, port, lines = _serve(db)
    assert result.exit_code == 0, result.output
    banner = dict(lines)
    workflow_id = banner["Workflow id"]
    assert banner["Trigger URL"] == f"http://127.0.0.1:{port}/v1/workflows/{workflow_id}/trigger"
    names = [name for name, _ in lines]
    assert names.index("Workflow id") == names.index("Loop id") + 1  # beside the loop id
    request = _trigger(db, banner["API key"], workflow_id, {"content": "Ship v2?"})
    assert request["request_text"] == "Ship v2?" and request["default_response"] == "reject"
    assert [o["label"] for o in request["response_config"]["options"]] == ["Approve", "Reject"]
    assert request["timeout_at"] is not None and request["response_type"] == "single_select"
    again, _, lines_again = _serve(db)  # a restart keeps the same workflow
    assert again.exit_code == 0 and dict(lines_again)["Workflow id"] == workflow_id


WORKFLOWS = {
    "groups": {"finance": ["ana@example.com", "bo@example.com"]},
    "workflows": [
        {
            "id": "wf_refunds",
            "name": "Refunds",
            "nodes": [
                {"type": "trigger"},
                {
                    "type": "human_review",
                    "response_type": "boolean",
                    "response_config": {"true_label": "Refund", "false_label": "Keep"},
                    "default_response": False,
                    "timeout_seconds": 600,
                    "priority": "high",
                    "groups": ["finance"],
                },
            ],
        },
        {"name": "Drafted", "status": "draft", "nodes": [{"type": "trigger"},
                                                         {"type": "human_review"}]},
    ],
}  # fmt: skip


def test_serve_runs_the_workflows_of_a_json_file(tmp_path: Path) -> None:
    db, path = tmp_path / "hitl.db", tmp_path / "workflows.json"
    path.write_text(json.dumps(WORKFLOWS))
    result, _, lines = _serve(db, "--workflow", str(path))
    assert result.exit_code == 0, result.output
    ids = [value for name, value in lines if name == "Workflow id"]
    assert ids == ["wf_refunds", "wf_drafted"] and "draft: ignores triggers" in result.output
    key = dict(lines)["API key"]
    request = _trigger(db, key, "wf_refunds", {"content": "Refund order 7?"})
    assert request["response_type"] == "boolean" and request["priority"] == "high"
    assert request["default_response"] is False
    emails = sorted(member["email"] for member in request["broadcasted_to"])
    # The group, and the owner as a loop's creator is; not the bootstrap reviewer.
    assert emails == ["ana@example.com", "bo@example.com", "developer@localhost"]


def test_serve_reads_yaml_when_pyyaml_is_installed(tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    db, path = tmp_path / "hitl.db", tmp_path / "workflows.yaml"
    path.write_text(yaml.safe_dump(WORKFLOWS))
    result, _, lines = _serve(db, "--workflow", str(path))
    assert result.exit_code == 0, result.output
    assert [v for n, v in lines if n == "Workflow id"] == ["wf_refunds", "wf_drafted"]


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ('{"workflows": [{"name": "x", "nodes": [{"type": "trigger"}]}]}', "workflows.0"),
        (
            '{"name": "x", "nodes": [{"type": "trigger"}, {"type": "human_review", '
            '"timeout_seconds": 30}]}',
            "timeout_seconds",
        ),
        (
            '{"name": "x", "nodes": [{"type": "trigger"}, {"type": "human_review", '
            '"response_type": "rating", "default_response": 9}]}',
            "workflows.0.nodes.1",
        ),
        ("{not json", "not valid JSON"),
    ],
)
def test_a_bad_workflow_file_is_refused_before_anything_is_created(
    tmp_path: Path, content: str, named: str
) -> None:
    db, path = tmp_path / "hitl.db", tmp_path / "bad.json"
    path.write_text(content)
    result, _, _ = _serve(db, "--workflow", str(path))
    assert result.exit_code == 2 and named in result.output, result.output
    assert "--workflow" in result.output and not db.exists()
