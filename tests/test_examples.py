"""The examples run offline and do what their docstrings say."""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import httpx
import pytest
from click.testing import CliRunner
from langgraph.checkpoint.memory import InMemorySaver
from server.loopback import serve_app  # tests/server: the loopback uvicorn helper

from hitl_agent import HITLClient
from hitl_agent.cli import main as cli
from hitl_agent.cli._worker import load_graph
from hitl_agent.server import Bootstrap, create_app

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    # conftest drops HITL_API_KEY/HITL_BASE_URL; the rest must not leak in either.
    names = ("HITL_LOOP_ID", "HITL_CALLBACK_URL", "HITL_CALLBACK_SECRET", "HITL_LEDGER")
    for name in (*names, "HITL_LIVE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.syspath_prepend(str(EXAMPLES))


def example(name: str) -> ModuleType:
    return importlib.import_module(name)


def test_client_quickstart(capsys: pytest.CaptureFixture[str]) -> None:
    result = example("client_quickstart").main()

    err = result.config_error
    assert err.field == "response_config.max_selections"
    assert "at most 2" in err.fix
    assert result.answered.status == "completed"
    assert result.answered.response_value == "approve"
    assert result.listed == 1
    assert result.cancelled_refunded is True
    out = capsys.readouterr().out
    assert "ConfigError on 'response_config.max_selections'" in out
    assert "status=completed response_value='approve'" in out
    assert "refunded=True" in out


def test_blocking_review() -> None:
    result = example("blocking_review").main()

    assert result.approved.outcome == "approved" and result.approved.approved
    assert result.approved.reviewer is not None and result.approved.reviewer.email
    timed_out = result.timed_out
    assert timed_out.outcome == "timed_out" and timed_out.status == "timeout"
    assert not timed_out.approved and timed_out.used_default
    assert "timed out" in timed_out.reason and "rejected" not in timed_out.reason
    assert result.deployed == ["release 2.3"]  # the approved action ran once, nothing else


def test_review_node_graph_resumes_by_polling(capsys: pytest.CaptureFixture[str]) -> None:
    result = example("review_node_graph").main()

    assert result.routes == {"order-1234": "refund", "order-5678": "explain"}
    assert result.refunds_issued == [1234]  # approved ran once; rejected never
    assert result.requests_created == 2  # one request per review, across the resume replay
    assert "poll_once(): 2 decision(s) delivered" in capsys.readouterr().out


# -- worker_graph: a loopback server, the agent side, then the real worker CLI -------------


@pytest.fixture
def loopback_hitl(tmp_path: Path) -> Iterator[tuple[str, Bootstrap]]:
    """``hitl-agent serve`` in a thread: the embedded server on 127.0.0.1."""
    app = create_app(tmp_path / "server.db", scheduler_interval=None)
    credentials = app.state.hitl.bootstrap()
    with serve_app(app, lifespan="on") as port:
        yield f"http://127.0.0.1:{port}/v1", credentials
    app.state.hitl.close()


def _answer(base_url: str, token: str, request_id: str, value: Any) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as reviewer:
        body = {"response_data": value}
        reviewer.post(f"/reviewer/requests/{request_id}/respond", json=body).raise_for_status()


def test_worker_graph_is_resumed_by_the_worker_cli(
    loopback_hitl: tuple[str, Bootstrap], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, credentials = loopback_hitl
    ledger, checkpoints = f"sqlite:///{tmp_path}/hitl.db", tmp_path / "checkpoints.db"
    monkeypatch.setenv("HITL_BASE_URL", base_url)
    monkeypatch.setenv("HITL_API_KEY", credentials.api_key)
    monkeypatch.setenv("HITL_LOOP_ID", credentials.loop_id)
    monkeypatch.setenv("HITL_LEDGER", ledger)
    monkeypatch.setenv("HITL_CHECKPOINTS", str(checkpoints))
    module = example("worker_graph")
    module.ISSUED.clear()

    # The worker CLI's loader accepts the module's builder and hands it the checkpointer.
    saver = InMemorySaver()
    assert load_graph("worker_graph:build", saver).checkpointer is saver

    # The agent side: each thread runs up to its review and is checkpointed.
    approve = module.main(["refund-1", "1234", "250"])
    reject = module.main(["refund-2", "5678", "9000"])
    assert (approve.state, reject.state) == ("waiting", "waiting")
    assert module.ISSUED == []
    assert module.main(["refund-1"]).state == "waiting"  # showing a thread creates nothing

    for status, value in ((approve, "approve"), (reject, "reject")):
        _answer(base_url, credentials.reviewer_token, status.detail.split()[-1], value)

    # The worker as the docstring runs it, for one sweep (dispatcher.poll_once()).
    args = ["worker", "--graph", "worker_graph:build", "--checkpointer", f"sqlite:///{checkpoints}"]
    args += ["--ledger", ledger, "--once"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "resumed 2 review(s)" in first.output
    assert module.ISSUED == [(1234, 250)]  # approved ran once, rejected never

    done = module.main(["refund-1"])
    assert (done.state, done.detail) == ("finished", "Refund of $250 issued for order 1234.")
    rejected = module.main(["refund-2"])
    assert rejected.state == "finished" and rejected.detail.startswith("Refund NOT issued")

    again = CliRunner().invoke(cli, args)
    assert "resumed 0 review(s)" in again.output
    assert module.ISSUED == [(1234, 250)]
    with HITLClient(credentials.api_key, base_url=base_url) as client:
        assert client.requests.list(loop_id=credentials.loop_id).total == 2


# -- offline unless asked: HITL_LIVE=1, not an exported HITL_API_KEY ------------------------

# What a shell holds after the README quickstart: a key, a base URL, a loop. Port 9 on
# loopback refuses at once, so an example that went there would fail fast, not hang.
_QUICKSTART_SHELL = {
    "HITL_API_KEY": "hitl_local_" + "k" * 24,
    "HITL_BASE_URL": "http://127.0.0.1:9/v1",
    "HITL_LOOP_ID": "0123456789abcdef01234567",
}


def test_an_exported_key_alone_leaves_an_example_offline(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HITL_LIVE"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "client_quickstart.py")],
        env={**env, **_QUICKSTART_SHELL},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "status=completed response_value='approve'" in done.stdout  # the scripted reviewer


def test_the_examples_own_switches_stay_offline_with_an_exported_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in _QUICKSTART_SHELL.items():
        monkeypatch.setenv(name, value)
    with contextlib.ExitStack() as stack:
        _, reviewer = stack.enter_context(example("blocking_review").open_keeper())
        assert reviewer is not None
        _, local, _ = stack.enter_context(example("chat_escalation").open_keeper())
        assert local is not None
        *_, scripted = stack.enter_context(example("starlette_receiver").connect())
        assert scripted is not None
        remote = stack.enter_context(example("remote_resume").hitl_api(tmp_path))
        assert remote.reviewer is not None and remote.base_url != _QUICKSTART_SHELL["HITL_BASE_URL"]


def test_hitl_live_1_is_the_opt_in(
    loopback_hitl: tuple[str, Bootstrap], monkeypatch: pytest.MonkeyPatch
) -> None:
    from hitl_agent.testing import hitl_or_local

    base_url, credentials = loopback_hitl
    monkeypatch.setenv("HITL_API_KEY", credentials.api_key)
    monkeypatch.setenv("HITL_BASE_URL", base_url)
    monkeypatch.setenv("HITL_LOOP_ID", credentials.loop_id)
    with hitl_or_local() as (client, loop_id, reviewer):
        assert reviewer is not None and client.base_url != base_url  # offline
    monkeypatch.setenv("HITL_LIVE", "1")
    with hitl_or_local() as (client, loop_id, reviewer):
        assert reviewer is None  # a person answers, on the server the environment names
        assert (client.base_url, loop_id) == (base_url, credentials.loop_id)
        assert client.test().api_key_id


def test_approval_tool_agent(capsys: pytest.CaptureFixture[str]) -> None:
    module = example("approval_tool_agent")
    result = module.main()

    results = result.tool_results
    assert results["call_a1"] == ("success", "Refunded $40 for order A-1.")  # under the limit
    assert results["call_a2"] == ("success", "Refunded $250 for order A-2.")  # approved
    status, content = results["call_a3"]  # rejected with a reason: not run, the agent told why
    assert status == "error" and "rejected" in content and module.REJECT_REASON in content
    assert results["call_q"] == ("success", module.LEAD_ANSWER)  # ask_human: the human's words
    assert result.issued == [("A-1", 40), ("A-2", 250)]  # each ran once; A-3 never
    assert sorted(map(str, result.answers)) == sorted(
        ["approve", "reject_with_reason", module.REJECT_REASON, module.LEAD_ANSWER]
    )
    # A-2, A-3, A-3's reason, the question: the $40 refund made no request.
    assert result.requests_created == 4
    assert result.final == "Refunds handled; I will offer the voucher."
    assert "refunds run without review: [('A-1', 40)]" in capsys.readouterr().out


def test_middleware_bridge(capsys: pytest.CaptureFixture[str]) -> None:
    module = example("middleware_bridge")
    result = module.main()

    # One tap each (a select of the allowed decisions); the edit's text came in a follow-up.
    assert result.forms == {"execute_sql": "single_select", "write_file": "single_select"}
    assert result.ran == [  # the approved query as proposed; the file with the reviewer's edit
        "execute_sql: DELETE FROM carts WHERE age_days > 30",
        f"write_file: notes.txt: {module.EDITED_CONTENT}",
    ]
    assert result.tool_results["call_sql"] == "3 rows deleted"
    assert "replaced this tool call" in result.tool_results["call_file"]  # LangChain's notice
    assert result.tool_results["call_file"].endswith(
        f"wrote {len(module.EDITED_CONTENT)} characters to notes.txt"
    )
    # Three decisions (two taps and the edited args) delivered in one resume of the turn.
    assert result.resumes == 3 and result.final == "Done."
    assert "interrupted, nothing ran yet: []" in capsys.readouterr().out


def test_moderation_graph(capsys: pytest.CaptureFixture[str]) -> None:
    result = example("moderation_graph").main()

    assert result.outcomes == {
        "post-1": ("published", "automatically"),  # clean: never reviewed
        "post-2": ("published", "by a moderator"),
        "post-3": ("removed", "rejected: A reviewer rejected."),
        "post-4": ("published", "by a moderator"),
    }
    assert result.answers == {"post-2": "approve", "post-3": "reject", "post-4": "approve"}
    assert result.requests_created == 3  # one per flagged post, across the resume replays
    assert result.sweeps == 1  # one batched sweep resumed all three
    assert "poll_once(): 3 decision(s) delivered" in capsys.readouterr().out


def test_chat_escalation() -> None:
    module = example("chat_escalation")
    result = module.main()

    text, choice, unanswered = (result.chats[t] for t in ("chat-1", "chat-2", "chat-3"))
    assert (text.tool_status, text.tool_result) == ("success", module.STAFF_ANSWERS["chat-1"])
    assert text.reply == f"I checked with the team: {module.STAFF_ANSWERS['chat-1']}"
    assert (choice.tool_status, choice.tool_result) == ("success", "Team")  # the model's option
    assert unanswered.tool_status == "error"
    assert unanswered.tool_result == "No one answered before the deadline (timed out): no answer."
    assert unanswered.reply.startswith("I'm sorry: nobody from the team could answer")
    assert result.requests == {"chat-1": "completed", "chat-2": "completed", "chat-3": "timeout"}


def test_starlette_receiver_resumes_by_webhook() -> None:
    result = example("starlette_receiver").main()

    assert result.order == {"order_id": "1234", "item": "boots, delivered broken"}
    assert {o: s["state"] for o, s in result.started.items()} == {
        "1234": "waiting",
        "5678": "waiting",
    }
    assert result.finished == {
        "1234": {"state": "finished", "result": "refunded $250"},
        "5678": {"state": "finished", "result": "not refunded (rejected)"},
    }
    assert result.callbacks_accepted == 2  # no poller: the mounted receiver resumed both
    assert result.paid == ["1234"]


def test_approval_policies(capsys: pytest.CaptureFixture[str]) -> None:
    module = example("approval_policies")
    result = module.main()  # it asserts what it shows; here, what a reader relies on

    assert result.ran == [  # each once
        "api v2.4",
        "$900 to Bob",
        "the staging database",
        "wire 250000 to ACME-7",
    ]
    # quorum=2: the same reviewer twice is one approval, so a third request; exclude: the
    # requester's approval is void, so a second; escalate: the first times out, Managers
    # decide; the require_approval tool: two different approvals, two requests.
    scenarios = (result.quorum, result.exclude, result.escalate, result.tool)
    assert [len(s.texts) for s in scenarios] == [3, 2, 2, 2]
    assert result.requests_created == 9
    assert result.quorum.reason == (
        f"Approved by 2 different reviewers ({module.OWN}, {module.BOB})."
    )
    assert result.escalate.loops[1] == result.managers_loop
    assert (result.tool.outcome, result.tool.reason) == ("success", "wired 250000 to ACME-7")
    out = capsys.readouterr().out
    assert "| 🔒 Approval 2 of 2: this runs only when 2 different reviewers approve it" in out
    assert "has it run? no" in out


def _remote_unavailable(reason: str) -> NoReturn:
    # The rule of tests/langgraph_remote: skip without the LangGraph server, unless required.
    if os.environ.get("HITL_REQUIRE_REMOTE") == "1":
        pytest.fail(f"LangGraph API server required (HITL_REQUIRE_REMOTE=1): {reason}")
    pytest.skip(reason)


@pytest.mark.timeout(120)
def test_remote_resume(capsys: pytest.CaptureFixture[str]) -> None:
    module = example("remote_resume")
    try:
        result = module.main()
    except module.ServerUnavailable as exc:
        _remote_unavailable(str(exc))

    assert result.before_answer == []  # nothing resumed before the reviewer answered
    assert result.delivered == ["approved"]
    assert result.result == "refunded $250"
    assert result.runs == ["success", "success"]  # the first run, then the resume
    assert result.refunds == ["refund 250 for order 1234"]  # approved: the action ran once
    assert result.requests_created == 1  # the replayed node created no second request
    assert result.after == []  # a later sweep is a no-op
    with pytest.raises(httpx.TransportError):  # the server was stopped
        httpx.get(f"{result.server_url}/ok", timeout=2)
    out = capsys.readouterr().out
    assert "poll_once(): ['approved'] delivered" in out
    assert out.rstrip().endswith("langgraph dev stopped")
