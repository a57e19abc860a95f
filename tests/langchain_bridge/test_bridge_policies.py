"""Approval policies per tool in the middleware bridge (issue 23): quorum, exclude, escalate.

LangChain's documented agent on the local server, with real reviewer accounts (the identities
the policy counts are the ones HITL.sh reports), resumed by the keeper's dispatcher. Every
stage is its own HITL request; the middleware gets one decision per action, once, only when
the policy has decided.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading
import types
from pathlib import Path
from typing import Any

import pytest
from bridge_agents import calls, documented_agent, script, tool_messages
from click.testing import CliRunner
from hitl_harness import (
    CALLBACK_URL,
    SECRET,
    Env,
    add_reviewer,
    all_requests,
    backend_env,
    switched_client,
)
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver

from hitl_agent import ConfigError, HITLClient
from hitl_agent.gate import Gatekeeper
from hitl_agent.policies import Escalate, Quorum
from hitl_agent.testing import ScriptedReviewer

USER = {"messages": [HumanMessage("Tidy up.")]}
BOB, CAROL = "bob@example.com", "carol@example.com"
SQL = ("execute_sql", {"query": "DELETE FROM t"})
WRITE = ("write_file", {"filename": "a.txt", "content": "hi"})


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """The harness's keeper on the local server, its ledger on each backend."""
    for env, _ in backend_env(request.param, tmp_path):
        yield env


def _open(env: Env, tool: str) -> Any:
    """The one pending request about ``tool``."""
    (found,) = [
        r for r in all_requests(env) if r.status == "pending" and tool in str(r.request_text)
    ]
    return found


class Turn:
    """One agent turn calling ``items`` under the bridge's ``policies``."""

    def __init__(
        self,
        env: Env,
        *items: tuple[str, dict[str, Any]],
        mode: str = "batched",
        policies: dict[str, Any],
        thread: str = "t1",
        **configurable: Any,
    ) -> None:
        self.env = env
        self.effects: list[str] = []
        model = script(calls(*items))
        self.agent = documented_agent(model, self.effects, InMemorySaver(), mode=mode)
        self.bridge = env.keeper.bridge(self.agent, policies=policies)
        self.dispatcher = env.plug(env.keeper.dispatcher(self.bridge.resumer))
        self.cfg: dict[str, Any] = {"configurable": {"thread_id": thread, **configurable}}
        self.agent.invoke(USER, self.cfg)
        self.rows = self.bridge.submit(self.cfg)

    def answer(self, who: ScriptedReviewer, tool: str, value: str) -> str:
        """``who`` answers the open request about ``tool``; the callback resumes. Its text."""
        request = _open(self.env, tool)
        who.respond(request.id, value)
        self.env.tick()
        return str(request.request_text)

    def done(self) -> bool:
        return not self.agent.get_state(self.cfg).next

    def messages(self) -> dict[str, Any]:
        return tool_messages(self.agent.get_state(self.cfg).values["messages"])


@pytest.mark.parametrize("mode", ["batched", "per_call"])
def test_quorum_counts_each_reviewer_once_and_a_sibling_decides_alone(env: Env, mode: str) -> None:
    bob = add_reviewer(env, BOB)
    turn = Turn(env, SQL, WRITE, mode=mode, policies={"execute_sql": {"quorum": 2}})
    assert len(turn.rows) == 2 and len(all_requests(env)) == 2
    sql = env.hitl.reviewer.get(_open(env, "execute_sql").id)
    assert "Approval 1 of 2" in sql["request_text"]
    assert sql["request_text"].startswith("🔒 ")
    # Approve is one of the two approvals, not what runs the call.
    assert "**Approve** is one of the 2 approvals from different reviewers" in sql["request_text"]
    approve = sql["response_config"]["options"][0]
    assert approve["label"] == "✅ Approve" and "One of the 2 approvals" in approve["description"]
    write = env.hitl.reviewer.get(_open(env, "write_file").id)
    assert "Approval" not in write["request_text"]  # the sibling has no policy

    turn.answer(env.hitl.reviewer, "write_file", "approve")  # decided by its one answer
    first = turn.answer(env.hitl.reviewer, "execute_sql", "approve")
    assert "2 different reviewers approve it" in first
    assert "execute_sql DELETE FROM t" not in turn.effects and not turn.done()
    again = turn.answer(env.hitl.reviewer, "execute_sql", "approve")  # the same reviewer
    assert "Already approved by `reviewer@localhost`" in again
    assert "execute_sql DELETE FROM t" not in turn.effects and not turn.done()
    # Sweeps and resubmits create nothing more while the third stage waits.
    turn.bridge.submit(turn.cfg)
    turn.bridge.sweep()
    turn.dispatcher.poll_once()
    assert len(all_requests(env)) == 4  # write_file's, and execute_sql's three stages
    third = turn.answer(bob, "execute_sql", "approve")
    assert "did not count" in third and "`reviewer@localhost`" in third
    assert sorted(turn.effects) == ["execute_sql DELETE FROM t", "write_file a.txt hi"]
    assert turn.done() and len(all_requests(env)) == 4
    # Once decided, re-sweeps and polls create and run nothing more.
    turn.bridge.submit(turn.cfg)
    turn.bridge.sweep()
    turn.dispatcher.poll_once()
    env.tick()
    assert len(all_requests(env)) == 4 and len(turn.effects) == 2
    rows = env.ledger.list_rows()
    assert len(rows) == 4 and {r.state for r in rows} == {"resumed"}
    sql_rows = [r for r in rows if "policy" in r.payload]
    assert len(sql_rows) == 3 and all(r.payload["policy"]["approvals"] == 2 for r in sql_rows)


def test_a_rejection_vetoes_and_edit_is_not_offered_under_a_quorum(env: Env) -> None:
    bob = add_reviewer(env, BOB)
    turn = Turn(env, WRITE, policies={"write_file": {"quorum": 2}})
    options = env.hitl.reviewer.get(_open(env, "write_file").id)["response_config"]["options"]
    # One reviewer's edit would run without the second approval: the form does not offer it.
    assert [o["value"] for o in options] == ["approve", "reject", "reject_with_reason", "respond"]
    turn.answer(env.hitl.reviewer, "write_file", "approve")
    turn.answer(bob, "write_file", "reject")
    assert turn.done() and turn.effects == [] and len(all_requests(env)) == 2
    (message,) = turn.messages().values()
    assert message.status == "error"


def test_the_excluded_identity_never_counts_even_on_a_resume_without_it(env: Env) -> None:
    bob = add_reviewer(env, BOB)
    turn = Turn(
        env,
        SQL,
        policies={"execute_sql": {"exclude": lambda c: c.get("user_email")}},
        user_email="Bob@Example.com",
    )
    first = turn.answer(bob, "execute_sql", "approve")
    assert "You cannot approve your own request: an answer by `bob@example.com`" in first
    assert turn.effects == [] and not turn.done()
    # The dispatcher resumes with no user in its config: the kept policy still excludes bob.
    second = turn.answer(bob, "execute_sql", "approve")
    assert "did not count" in second and "`bob@example.com`" in second
    assert turn.effects == []
    turn.answer(env.hitl.reviewer, "execute_sql", "approve")
    assert turn.effects == ["execute_sql DELETE FROM t"] and turn.done()
    assert len(all_requests(env)) == 3
    rows = env.ledger.list_rows()
    assert [r.payload["policy"]["exclude"] for r in rows] == [[BOB]] * 3
    assert sorted(r.payload["policy"]["stage"] for r in rows) == [1, 2, 3]  # the audit's


def test_an_excluded_identity_cannot_write_the_edit_someone_else_chose(env: Env) -> None:
    bob = add_reviewer(env, BOB)
    turn = Turn(env, WRITE, policies={"write_file": {"exclude": [BOB]}})
    turn.answer(env.hitl.reviewer, "write_file", "edit")
    (follow,) = [r for r in all_requests(env) if r.status == "pending"]
    bob.respond(follow.id, '{"filename": "a.txt", "content": "evil"}')
    env.tick()
    assert turn.done() and turn.effects == []
    (message,) = turn.messages().values()
    assert "who may not answer this request" in str(message.content)


def test_escalation_asks_the_next_loop_with_its_priority(env: Env) -> None:
    owner = env.hitl.server.authenticate_key(env.hitl.api_key)
    assert owner is not None
    managers = env.hitl.server.create_loop(owner.user_id, "Managers")
    boss = add_reviewer(env, "boss@example.com", [managers])
    stage = Escalate(after=600, loop_id=managers, priority="high", name="Managers")
    turn = Turn(env, SQL, policies={"execute_sql": {"escalate": [stage]}})
    first = _open(env, "execute_sql")
    assert first.loop_id == env.hitl.loop_id and first.timeout_seconds == 600
    assert "If nobody answers within 10 min, this goes to `Managers`." in first.request_text
    env.clock.advance(601)
    env.tick()  # HITL.sh times the first stage out; its callback asks the next stage
    second = _open(env, "execute_sql")
    assert second.loop_id == managers and second.priority == "high"
    assert "Escalated: nobody answered in the first reviewers within 10 min." in (
        second.request_text
    )
    assert turn.effects == [] and not turn.done()
    turn.bridge.sweep()
    assert len(all_requests(env)) == 2
    boss.respond(second.id, "approve")
    env.tick()
    turn.dispatcher.poll_once()  # another loop's row: fetched by id when no callback came
    assert turn.effects == ["execute_sql DELETE FROM t"] and turn.done()
    assert len(all_requests(env)) == 2


def test_policies_name_gated_tools_and_valid_values(env: Env) -> None:
    agent = documented_agent(script(), [], InMemorySaver())
    bad: list[tuple[dict[str, Any], str]] = [
        ({"read_data": {"quorum": 2}}, "policies.read_data"),  # interrupt_on: False
        ({"send_fax": {"quorum": 2}}, "policies.send_fax"),
        ({"execute_sql": {"quorum": "two"}}, "policies.execute_sql.quorum"),
        ({"execute_sql": {"quorom": 2}}, "policies.execute_sql.quorom"),
        ({"execute_sql": {"escalate": Escalate(after=600)}}, "policies.execute_sql.escalate"),
        ({"execute_sql": {"exclude": [""]}}, "policies.execute_sql.exclude"),
        ({"execute_sql": 2}, "policies.execute_sql"),
    ]
    for policies, field in bad:
        with pytest.raises(ConfigError) as err:
            env.keeper.bridge(agent, policies=policies)
        assert err.value.field == field, policies
    env.keeper.bridge(agent, policies={"execute_sql": {"quorum": 2, "exclude": lambda c: None}})


def _cost(env: Env, answers: list[tuple[ScriptedReviewer | None, str]], **policy: Any) -> int:
    """The API calls the keeper makes for one bridged execute_sql call, from its first create
    to the resume, the answers arriving by callback (each: one callback, one GET)."""
    effects: list[str] = []
    with switched_client(env) as (counted, client):
        env.keeper = Gatekeeper(
            client=client,
            loop_id=env.hitl.loop_id,
            ledger=env.ledger,
            callback_url=CALLBACK_URL,
            callback_secret=SECRET,
            clock=env.clock,
        )
        agent = documented_agent(script(calls(SQL)), effects, InMemorySaver())
        bridge = env.keeper.bridge(agent, policies={"execute_sql": policy} if policy else None)
        env.plug(env.keeper.dispatcher(bridge.resumer))
        cfg = {"configurable": {"thread_id": f"t{len(answers)}{policy}"}}
        agent.invoke(USER, cfg)
        bridge.submit(cfg)
        for who, value in answers:
            (request,) = [r for r in all_requests(env) if r.status == "pending"]
            if who is None:  # nobody answers: the stage times out
                env.clock.advance(int(value) + 1)
            else:
                who.respond(request.id, value)
            env.tick()
        assert effects == ["execute_sql DELETE FROM t"]
        return counted.calls


def test_api_calls_per_policy(env: Env) -> None:
    me, bob = env.hitl.reviewer, add_reviewer(env, BOB)
    costs = {
        "no policy": _cost(env, [(me, "approve")]),
        "quorum=2": _cost(env, [(me, "approve"), (bob, "approve")], quorum=2),
        "quorum=2, one repeat": _cost(
            env, [(me, "approve"), (me, "approve"), (bob, "approve")], quorum=2
        ),
        "exclude, one void answer": _cost(env, [(bob, "approve"), (me, "approve")], exclude=[BOB]),
        "escalate once": _cost(env, [(None, "600"), (me, "approve")], escalate=[Escalate(600)]),
    }
    print(costs)
    # Each request: one create and one GET of its answer (the callback's truth), as the gate.
    assert costs == {
        "no policy": 2,
        "quorum=2": 4,
        "quorum=2, one repeat": 6,
        "exclude, one void answer": 4,
        "escalate once": 4,
    }


def test_the_async_path_asks_each_stage_once_and_reads_no_ledger_on_the_loop(env: Env) -> None:
    bob = add_reviewer(env, BOB)
    effects: list[str] = []
    agent = documented_agent(script(calls(SQL)), effects, InMemorySaver())
    bridge = env.keeper.bridge(agent, policies={"execute_sql": {"quorum": 2}})
    dispatcher = env.keeper.dispatcher(bridge.resumer)
    cfg: dict[str, Any] = {"configurable": {"thread_id": "async"}}
    loop_reads: list[str] = []
    for name in ("get", "get_by_request_id", "list_task"):
        read = getattr(env.ledger, name)

        def watched(*args: Any, _read: Any = read, _name: str = name, **kw: Any) -> Any:
            if threading.current_thread() is threading.main_thread():
                loop_reads.append(_name)  # asyncio.run runs the loop on this thread
            return _read(*args, **kw)

        setattr(env.ledger, name, watched)

    async def answer(who: ScriptedReviewer) -> list[Any]:
        request = await asyncio.to_thread(_open, env, "execute_sql")
        await asyncio.to_thread(who.respond, request.id, "approve")
        return list(await dispatcher.apoll_once())

    async def main() -> None:
        await agent.ainvoke(USER, cfg)
        await bridge.asubmit(cfg)
        assert await answer(env.hitl.reviewer) == []  # the second stage is asked, not sent
        await bridge.asubmit(cfg)
        await bridge.asweep()
        assert len(await asyncio.to_thread(all_requests, env)) == 2
        assert len(await answer(bob)) == 2  # both stages delivered in one resume
        assert await dispatcher.apoll_once() == []

    asyncio.run(main())
    assert effects == ["execute_sql DELETE FROM t"] and not agent.get_state(cfg).next
    assert len(all_requests(env)) == 2
    assert loop_reads == []


def test_a_policy_not_met_reaches_the_agent_as_a_reject_with_its_reason(env: Env) -> None:
    turn = Turn(env, SQL, policies={"execute_sql": {"quorum": Quorum(2, max_requests=2)}})
    turn.answer(env.hitl.reviewer, "execute_sql", "approve")
    turn.answer(env.hitl.reviewer, "execute_sql", "approve")  # one reviewer, twice
    assert turn.done() and turn.effects == [] and len(all_requests(env)) == 2
    (message,) = turn.messages().values()
    assert "not met within 2 requests (1 of 2 approvals)" in str(message.content)


def test_the_follow_up_of_an_escalated_stage_is_asked_where_it_was_decided(env: Env) -> None:
    owner = env.hitl.server.authenticate_key(env.hitl.api_key)
    assert owner is not None
    managers = env.hitl.server.create_loop(owner.user_id, "Managers")
    boss = add_reviewer(env, "boss@example.com", [managers])
    stage = Escalate(after=600, loop_id=managers, name="Managers")
    turn = Turn(env, SQL, policies={"execute_sql": {"escalate": [stage]}})
    env.clock.advance(601)
    env.tick()
    turn.answer(boss, "execute_sql", "reject_with_reason")
    (reason,) = [r for r in all_requests(env) if r.status == "pending"]
    assert reason.loop_id == managers and reason.response_type == "text"
    boss.respond(reason.id, "Not on a Friday.")
    env.tick()
    turn.dispatcher.poll_once()
    assert turn.done() and turn.effects == [] and len(all_requests(env)) == 3
    (message,) = turn.messages().values()
    assert "Not on a Friday." in str(message.content)


def test_a_sweep_finds_the_user_to_exclude_in_the_threads_own_run(env: Env) -> None:
    # The `hitl-agent bridge` command only sweeps: it knows the thread id, not the user; the
    # checkpoint keeps the configurable the agent ran with.
    bob = add_reviewer(env, BOB)
    effects: list[str] = []
    agent = documented_agent(script(calls(SQL)), effects, InMemorySaver())
    bridge = env.keeper.bridge(
        agent, policies={"execute_sql": {"exclude": lambda c: c.get("user_email")}}
    )
    env.plug(env.keeper.dispatcher(bridge.resumer))
    agent.invoke(USER, {"configurable": {"thread_id": "swept", "user_email": BOB}})
    (row,) = bridge.sweep()
    assert row.payload["policy"]["exclude"] == [BOB]
    request = _open(env, "execute_sql")
    bob.respond(request.id, "approve")
    env.tick()
    assert effects == [] and len(all_requests(env)) == 2


POLICY_MODULE = """
from hitl_agent.policies import Quorum

POLICIES = {"execute_sql": {"quorum": Quorum(2)}}
"""


def test_the_command_sweeps_under_the_apps_policies(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hitl_agent._client as client_module
    from hitl_agent.cli import main

    (tmp_path / "bridge_policies_app.py").write_text(POLICY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    effects: list[str] = []
    conn = sqlite3.connect(tmp_path / "checkpoints.db", check_same_thread=False)
    agent = documented_agent(script(calls(SQL)), effects, SqliteSaver(conn))
    agent.invoke(USER, {"configurable": {"thread_id": "cli"}})
    module = types.ModuleType("bridge_policies_agent")
    module.agent = agent  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bridge_policies_agent", module)
    hitl = env.hitl
    monkeypatch.setattr(
        client_module,
        "HITLClient",
        lambda *a, **k: HITLClient(hitl.api_key, base_url=hitl.base_url, http_client=hitl.http),
    )
    argv = [
        "bridge",
        "--graph",
        "bridge_policies_agent:agent",
        "--checkpointer",
        f"sqlite:///{tmp_path / 'checkpoints.db'}",
        "--ledger",
        f"sqlite:///{tmp_path / 'cli-hitl.db'}",
        "--loop-id",
        hitl.loop_id,
        "--policies",
        "bridge_policies_app:POLICIES",
        "--once",
    ]
    first = CliRunner().invoke(main, argv)
    assert first.exit_code == 0, first.output
    (request,) = all_requests(env)
    assert "Approval 1 of 2" in str(request.request_text)
    hitl.reviewer.respond(request.id, "approve")
    second = CliRunner().invoke(main, argv)  # the poll's resume asks the second stage
    assert second.exit_code == 0, second.output
    assert effects == [] and len(all_requests(env)) == 2
    bad = CliRunner().invoke(main, [*argv[:-3], "--policies", "bridge_policies_app:NOPE"])
    assert bad.exit_code != 0 and "--policies" in bad.output
    conn.close()


def test_a_redeploy_that_drops_the_policy_keeps_the_one_the_first_reviewer_saw(env: Env) -> None:
    bob = add_reviewer(env, BOB)
    turn = Turn(env, SQL, policies={"execute_sql": {"quorum": 2}})
    request = _open(env, "execute_sql")
    bob.respond(request.id, "approve")
    # The new code has no policy: its sweeps and resumes still apply the kept one.
    loose = env.keeper.bridge(turn.agent)
    env.plug(env.keeper.dispatcher(loose.resumer))
    assert loose.submit(turn.cfg) == [env.ledger.get(turn.rows[0].key)]
    env.tick()
    env.keeper.dispatcher(loose.resumer).poll_once()
    assert turn.effects == [] and not turn.done() and len(all_requests(env)) == 2
    turn.answer(env.hitl.reviewer, "execute_sql", "approve")
    assert turn.effects == ["execute_sql DELETE FROM t"]
