"""Approval policies (issue 23 items 1-3 and 6): quorum, separation of duties, escalation.

Through the product: a graph whose node calls ``keeper.review(..., quorum=, exclude=,
escalate=)`` on the local server, resumed by the keeper's own dispatcher (a poll), on SQLite
and PostgreSQL. Reviewers are real accounts of the local server, so the identities the policy
counts are the ones HITL.sh reports (``response_by_user``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hitl_harness import Env, add_reviewer, all_requests, backend_env, refund_graph
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver

from hitl_agent import ConfigError, Decision, Gatekeeper
from hitl_agent.cli._audit import audit_records
from hitl_agent.gate import _keeper
from hitl_agent.gate._policy import NOTES_MAX, PolicyRun, resolve_policy
from hitl_agent.langgraph import GraphResumer
from hitl_agent.models.requests import Reviewer
from hitl_agent.policies import Escalate, Quorum
from hitl_agent.testing import ScriptedReviewer

BOB, CAROL = "bob@example.com", "carol@example.com"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    for env, _ in backend_env(request.param, tmp_path):
        yield env


def _pending(env: Env) -> Any:
    (open_,) = [r for r in all_requests(env) if r.status == "pending"]
    return open_


class Flow:
    """The harness's refund graph under a policy, resumed by the keeper's dispatcher."""

    def __init__(self, env: Env, saver: Any = None, **policy: Any) -> None:
        self.env = env
        self.effects: list[str] = []
        self.graph = refund_graph(env, saver or InMemorySaver(), self.effects, **policy)
        self.dispatcher = env.keeper.dispatcher(GraphResumer(self.graph))

    def start(self, thread: str = "t1", **configurable: Any) -> None:
        config = {"configurable": {"thread_id": thread, **configurable}}
        self.graph.invoke({"amount": 5}, config)

    def answer(self, who: ScriptedReviewer, value: str) -> str:
        """``who`` answers the one open request; a poll resumes the thread. Its text."""
        request = _pending(self.env)
        who.respond(request.id, value)
        self.dispatcher.poll_once()
        return str(request.request_text)

    def done(self, thread: str = "t1") -> bool:
        # Interrupts too: on the lowest LangGraph allowed (1.2.4) a task that interrupted
        # again on resume can leave ``next`` empty while it waits.
        state = self.graph.get_state({"configurable": {"thread_id": thread}})
        return not state.next and not any(task.interrupts for task in state.tasks)


def test_two_person_rule_counts_each_reviewer_once(backend: Env) -> None:
    env = backend
    bob = add_reviewer(env, BOB)
    flow = Flow(env, quorum=2)
    flow.start()
    first = flow.answer(env.hitl.reviewer, "approve")
    assert "Approval 1 of 2" in first and "2 different reviewers approve it" in first
    again = flow.answer(env.hitl.reviewer, "approve")  # the same reviewer: does not count
    assert "Approval 2 of 2" in again and "Already approved by `reviewer@localhost`" in again
    assert flow.effects == [] and not flow.done()
    third = flow.answer(bob, "approve")
    assert "did not count: `reviewer@localhost` had approved already." in third
    assert flow.effects == ["refund 5"] and flow.done()
    assert len(all_requests(env)) == 3
    rows = env.ledger.list_rows()
    assert [r.state for r in rows] == ["resumed"] * 3
    assert all(r.payload["policy"]["approvals"] == 2 for r in rows)
    decision = Decision.model_validate(
        flow.graph.get_state({"configurable": {"thread_id": "t1"}}).values["decision"]
    )
    assert decision.approved and "2 different reviewers" in decision.reason
    audit = list(audit_records(env.ledger))
    assert [(a["policy"], a["policy_request"], a["escalation_level"]) for a in audit] == [
        ("quorum 2", 1, 0),
        ("quorum 2", 2, 0),
        ("quorum 2", 3, 0),
    ]
    assert [a["reviewer_email"] for a in audit] == [
        "reviewer@localhost",
        "reviewer@localhost",
        BOB,
    ]


def test_any_rejection_rejects_and_veto_false_asks_again(backend: Env) -> None:
    env = backend
    bob, carol = add_reviewer(env, BOB), add_reviewer(env, CAROL)
    vetoed = Flow(env, quorum=2)
    vetoed.start("veto")
    vetoed.answer(env.hitl.reviewer, "approve")
    vetoed.answer(bob, "reject")
    assert vetoed.done("veto") and vetoed.effects == [] and len(all_requests(env)) == 2

    patient = Flow(env, quorum=Quorum(2, veto=False))
    patient.start("patient")
    patient.answer(bob, "reject")
    text = patient.answer(env.hitl.reviewer, "approve")
    assert "`bob@example.com` rejected it; a rejection does not end this review." in text
    patient.answer(carol, "approve")
    assert patient.effects == ["refund 5"] and len(all_requests(env)) == 5


def test_the_excluded_identity_never_counts_even_when_a_worker_resumes_without_it(
    backend: Env,
) -> None:
    env = backend
    bob = add_reviewer(env, BOB)
    # The user the agent acts for comes from the run's config; the dispatcher resumes with
    # a config that does not carry it: the policy kept with the first stage still applies.
    flow = Flow(env, exclude=lambda c: c.get("user"))
    flow.start(user="Bob@Example.com")
    first = flow.answer(bob, "approve")
    assert "You cannot approve your own request: an answer by `bob@example.com`" in first
    assert flow.effects == [] and not flow.done()
    second = flow.answer(bob, "approve")  # on the resumed run, still not counted
    assert "The previous answer, by `bob@example.com`, did not count" in second
    flow.answer(env.hitl.reviewer, "approve")
    assert flow.effects == ["refund 5"]
    assert len(all_requests(env)) == 3
    assert all(r.payload["policy"]["exclude"] == [BOB] for r in env.ledger.list_rows())


def test_policy_requests_are_bounded(backend: Env) -> None:
    env = backend
    bob = add_reviewer(env, BOB)
    flow = Flow(env, quorum=Quorum(2, max_requests=3))
    flow.start()
    for _ in range(3):
        flow.answer(bob, "approve")  # one reviewer, three times: one approval
    assert flow.done() and flow.effects == [] and len(all_requests(env)) == 3
    state = flow.graph.get_state({"configurable": {"thread_id": "t1"}}).values
    assert "not met within 3 requests (1 of 2 approvals)" in state["decision"]["reason"]


def test_a_redeploy_that_drops_the_policy_cannot_approve_with_one_answer(backend: Env) -> None:
    env = backend
    bob = add_reviewer(env, BOB)
    strict = Flow(env, saver=InMemorySaver(), quorum=2)
    strict.start()
    request = _pending(env)
    bob.respond(request.id, "approve")
    # The new code asks with no policy: the first stage's row belongs to another question.
    loose = refund_graph(env, strict.graph.checkpointer, strict.effects)
    env.keeper.dispatcher(GraphResumer(loose)).poll_once()
    assert strict.effects == []


def test_escalation_asks_the_next_loop_when_nobody_answers_in_time(backend: Env) -> None:
    env = backend
    owner = env.hitl.server.authenticate_key(env.hitl.api_key)
    assert owner is not None
    managers = env.hitl.server.create_loop(owner.user_id, "Managers")
    boss = add_reviewer(env, "boss@example.com", [managers])
    stage = Escalate(after=600, loop_id=managers, priority="high", name="Managers")
    flow = Flow(env, escalate=[stage])
    flow.start()
    first = _pending(env)
    assert first.loop_id == env.hitl.loop_id and first.timeout_seconds == 600
    assert "If nobody answers within 10 min, this goes to `Managers`." in first.request_text
    env.clock.advance(601)
    env.tick()  # HITL.sh times the first stage out
    flow.dispatcher.poll_once()  # its timeout resumes the thread: the next stage is asked
    second = _pending(env)
    assert second.loop_id == managers and second.priority == "high"
    assert "Escalated: nobody answered in the first reviewers within 10 min." in (
        second.request_text
    )
    assert flow.effects == []
    boss.respond(second.id, "approve")
    flow.dispatcher.poll_once()  # another loop's row: fetched by id, not listed
    assert flow.effects == ["refund 5"] and len(all_requests(env)) == 2
    audit = [(a["policy"], a["escalation_level"], a["outcome"]) for a in audit_records(env.ledger)]
    assert audit == [
        ("quorum 1; escalates to Managers", 0, "timed_out"),
        ("quorum 1; escalates to Managers", 1, "approved"),
    ]


def test_escalation_to_a_workflow_is_polled_by_the_loops_dispatcher(backend: Env) -> None:
    env = backend
    workflow = env.hitl.credentials.workflow_id
    assert workflow is not None
    flow = Flow(env, escalate=[Escalate(after=60, workflow=workflow, name="Approvals")])
    flow.start()
    env.clock.advance(61)
    env.tick()
    flow.dispatcher.poll_once()
    second = _pending(env)
    assert second.loop_id != env.hitl.loop_id  # the workflow's own reviewers
    env.hitl.reviewer.respond(second.id, "approve")
    flow.dispatcher.poll_once()
    assert flow.effects == ["refund 5"] and len(all_requests(env)) == 2


def test_the_last_stage_deadline_and_default_decide(backend: Env) -> None:
    env = backend
    flow = Flow(env, escalate=[Escalate(after=60, name="Second look")])
    flow.start()
    env.clock.advance(61)
    env.tick()
    flow.dispatcher.poll_once()
    second = _pending(env)
    assert second.timeout_seconds == 3600  # the keeper's own deadline
    env.clock.advance(3601)
    env.tick()
    flow.dispatcher.poll_once()
    assert flow.done() and flow.effects == [] and len(all_requests(env)) == 2


def test_a_crash_between_stages_asks_the_next_stage_once(
    backend: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = backend
    bob = add_reviewer(env, BOB)
    conn = sqlite3.connect(tmp_path / "graph.db", check_same_thread=False)
    flow = Flow(env, saver=SqliteSaver(conn), quorum=2)
    flow.start()
    real = _keeper.ensure_request
    calls = {"n": 0}

    def dies_on_the_second_stage(*args: Any, **kwargs: Any) -> Any:
        if args[2].endswith("|1"):  # the second stage's key: the process dies before asking
            calls["n"] += 1
            raise SystemExit("killed between stages")
        return real(*args, **kwargs)

    monkeypatch.setattr(_keeper, "ensure_request", dies_on_the_second_stage)
    request = _pending(env)
    env.hitl.reviewer.respond(request.id, "approve")
    with pytest.raises(SystemExit):
        flow.dispatcher.poll_once()
    assert calls["n"] == 1 and len(all_requests(env)) == 1
    monkeypatch.setattr(_keeper, "ensure_request", real)
    # A new process: a keeper, a graph and a dispatcher of its own, on the same stores.
    keeper = Gatekeeper(
        client=env.hitl.client, loop_id=env.hitl.loop_id, ledger=env.ledger, clock=env.clock
    )
    env.keeper = keeper
    env.clock.advance(400)  # past the dead process's resume lease
    again = Flow(
        env,
        saver=SqliteSaver(sqlite3.connect(tmp_path / "graph.db", check_same_thread=False)),
        quorum=2,
    )
    again.dispatcher.recover_once()
    again.dispatcher.poll_once()
    assert len(all_requests(env)) == 2  # the second stage, asked once
    again.answer(bob, "approve")
    again.dispatcher.poll_once()
    assert again.effects == ["refund 5"] and flow.effects == []
    assert len(all_requests(env)) == 2


def test_a_crash_between_escalation_stages_asks_the_next_loop_once(
    backend: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = backend
    owner = env.hitl.server.authenticate_key(env.hitl.api_key)
    assert owner is not None
    managers = env.hitl.server.create_loop(owner.user_id, "Managers")
    boss = add_reviewer(env, "boss@example.com", [managers])
    stage = [Escalate(after=600, loop_id=managers, priority="high", name="Managers")]
    path = tmp_path / "graph.db"
    flow = Flow(
        env, saver=SqliteSaver(sqlite3.connect(path, check_same_thread=False)), escalate=stage
    )
    flow.start()
    real = _keeper.ensure_request

    def dies_on_the_second_stage(*args: Any, **kwargs: Any) -> Any:
        if args[2].endswith("|1"):
            raise SystemExit("killed between the timeout and the escalation")
        return real(*args, **kwargs)

    monkeypatch.setattr(_keeper, "ensure_request", dies_on_the_second_stage)
    env.clock.advance(601)
    env.tick()  # the first stage times out on HITL.sh
    with pytest.raises(SystemExit):
        flow.dispatcher.poll_once()
    monkeypatch.setattr(_keeper, "ensure_request", real)
    env.keeper = Gatekeeper(
        client=env.hitl.client, loop_id=env.hitl.loop_id, ledger=env.ledger, clock=env.clock
    )
    env.clock.advance(400)  # past the dead process's resume lease
    again = Flow(
        env, saver=SqliteSaver(sqlite3.connect(path, check_same_thread=False)), escalate=stage
    )
    again.dispatcher.recover_once()
    again.dispatcher.poll_once()
    escalated = _pending(env)
    assert escalated.loop_id == managers and len(all_requests(env)) == 2
    boss.respond(escalated.id, "approve")
    again.dispatcher.poll_once()
    again.dispatcher.poll_once()
    assert again.effects == ["refund 5"] and flow.effects == [] and len(all_requests(env)) == 2


def test_two_replicas_ask_each_stage_once_and_act_once(backend: Env, tmp_path: Path) -> None:
    env = backend
    bob = add_reviewer(env, BOB)
    path = tmp_path / "shared-graph.db"
    one = Flow(env, saver=SqliteSaver(sqlite3.connect(path, check_same_thread=False)), quorum=2)
    other_keeper = Gatekeeper(
        client=env.hitl.client, loop_id=env.hitl.loop_id, ledger=env.ledger, clock=env.clock
    )
    two_env = Env(env.hitl, other_keeper, env.ledger, env.clock, env.forwarder, tmp_path)
    two = Flow(two_env, saver=SqliteSaver(sqlite3.connect(path, check_same_thread=False)), quorum=2)
    one.start()
    env.hitl.reviewer.respond(_pending(env).id, "approve")
    for _ in range(2):
        one.dispatcher.poll_once()
        two.dispatcher.poll_once()
    assert len(all_requests(env)) == 2
    bob.respond(_pending(env).id, "approve")
    racing = [threading.Thread(target=d.poll_once) for d in (one.dispatcher, two.dispatcher)]
    for thread in racing:
        thread.start()
    for thread in racing:
        thread.join()
    one.dispatcher.poll_once()
    two.dispatcher.poll_once()
    assert len(all_requests(env)) == 2
    # Each replica's graph has its own effects list: together, one refund.
    assert one.effects + two.effects == ["refund 5"]


# -- the rules, without IO ---------------------------------------------------------------


def _decision(outcome: str, who: str | None, n: int = 0) -> Decision:
    reviewer = Reviewer(email=who) if who else None
    return Decision(
        request_id=f"r{n}",
        status="completed" if outcome != "timed_out" else "timeout",
        outcome=outcome,  # type: ignore[arg-type]
        approved=outcome == "approved",
        reviewer=reviewer,
    )


def test_an_approval_nobody_can_be_named_for_does_not_count() -> None:
    policy = resolve_policy(2, None, None, configurable={})
    assert policy is not None
    run = PolicyRun(policy)
    final = run.answered(_decision("approved", None))
    assert final is not None and not final.approved and "did not report who" in final.reason
    excluding = resolve_policy(None, ["x@y"], None, configurable={})
    assert excluding is not None
    final = PolicyRun(excluding).answered(_decision("rejected", None))
    assert (
        final is not None and final.outcome == "rejected" and "who may not answer" in (final.reason)
    )


def test_a_timeout_that_approves_never_makes_up_a_quorum() -> None:
    policy = resolve_policy(2, None, None, configurable={})
    assert policy is not None
    run = PolicyRun(policy)
    assert run.answered(_decision("approved", "a@example.com")) is None
    by_default = _decision("timed_out", None, 1).model_copy(update={"approved": True})
    final = run.answered(by_default)
    assert final is not None and not final.approved
    assert "1 of 2 approvals" in final.reason and "cannot make up a quorum" in final.reason
    single = resolve_policy(None, ["x@example.com"], None, configurable={})
    assert single is not None  # one approval asked for: the opt-in stands, as without a policy
    kept = PolicyRun(single).answered(by_default)
    assert kept is not None and kept.approved


def test_notes_stay_within_their_share_of_the_text() -> None:
    long = ["x" * 300 + f"{i}@example.com" for i in range(40)]
    stages = [Escalate(after=600, name="N" * 500) for _ in range(3)]
    policy = resolve_policy(Quorum(5), long, stages, configurable={})
    assert policy is not None
    run = PolicyRun(policy)
    for i in range(4):
        run.answered(_decision("approved", f"r{i}@example.com", i))
        run.answered(_decision("timed_out", None, i))
        stage = run.stage()
        assert sum(len(n) + 4 for n in stage.notes) <= NOTES_MAX
        assert all("\n" not in n for n in stage.notes)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"quorum": 0}, "quorum.approvals"),
        ({"quorum": True}, "quorum"),
        ({"quorum": 2.5}, "quorum"),
        ({"exclude": [""]}, "exclude"),
        ({"exclude": lambda c: c["user"]}, "exclude"),
        ({"escalate": ["managers"]}, "escalate[0]"),
        (
            {
                "quorum": 2,
                "response_type": "editable_text",
                "response_config": {"draft_text": "v2"},
                "default_response": "",
            },
            "quorum",
        ),
    ],
)
def test_bad_policies_are_refused_before_anything_is_asked(
    backend: Env, kwargs: dict[str, Any], field: str
) -> None:
    env = backend
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        env.keeper.review("Deploy?", key="k", wait_timeout=0.01, **kwargs)
    assert all_requests(env) == []


def test_every_documented_way_of_giving_a_policy_resolves_alike() -> None:
    from datetime import timedelta

    as_numbers = resolve_policy(
        2, ["Bob@Example.com"], [Escalate(after=600, name="M")], configurable={}
    )
    as_objects = resolve_policy(
        Quorum(approvals=2),
        "bob@example.com",  # one identity as a plain string
        [Escalate(after=timedelta(minutes=10), name="M")],
        configurable={},
    )
    from_config = resolve_policy(
        2,
        lambda c: [c["user"]],
        (Escalate(after=600.0, name="M"),),
        configurable={"user": " BOB@example.com "},
    )
    assert as_numbers == as_objects == from_config
    assert as_numbers is not None and as_numbers.exclude == ("bob@example.com",)
    assert as_numbers.stages[0].after == 600 and as_numbers.max_requests == 2 + 2 + 1
    assert resolve_policy(None, None, None, configurable={}) is None
    assert resolve_policy(1, None, [], configurable={}) is None  # asks for nothing


def test_policy_objects_check_their_fields() -> None:
    with pytest.raises(ConfigError, match=r"escalate\.after"):
        Escalate(after=30)
    with pytest.raises(ConfigError, match=r"escalate\.loop_id/workflow"):
        Escalate(after=60, loop_id="a", workflow="b")
    with pytest.raises(ConfigError, match=r"quorum\.max_requests"):
        Quorum(3, max_requests=2)


def test_a_text_with_no_room_for_the_notes_is_refused(backend: Env) -> None:
    with pytest.raises(ConfigError, match="request_text"):
        backend.keeper.review("x" * 1500, quorum=2, key="long", wait_timeout=0.01)
    assert all_requests(backend) == []


# -- sync and async twins: one policy ---------------------------------------------------


def _answer_in_background(
    env: Env, script: list[tuple[ScriptedReviewer, Any]]
) -> tuple[list[str], threading.Thread]:
    """Answer each request as it appears, in order; the texts the reviewers read."""
    texts: list[str] = []

    def run() -> None:
        for who, value in script:
            for _ in range(500):
                pending = [r for r in all_requests(env) if r.status == "pending"]
                if pending:
                    break
                time.sleep(0.02)
            texts.append(str(pending[0].request_text))
            who.respond(pending[0].id, value)

    thread = threading.Thread(target=run)
    thread.start()
    return texts, thread


@pytest.mark.parametrize("twin", ["sync", "async"])
def test_review_and_areview_ask_the_same_stages(backend: Env, twin: str) -> None:
    env = backend
    bob = add_reviewer(env, BOB)
    texts, answering = _answer_in_background(
        env, [(env.hitl.reviewer, True), (env.hitl.reviewer, True), (bob, True)]
    )
    kwargs: dict[str, Any] = {"quorum": 2, "key": "blk-parity", "wait_timeout": 20}
    if twin == "sync":
        decision = env.keeper.review("Ship it?", **kwargs)
    else:
        decision = asyncio.run(env.keeper.areview("Ship it?", **kwargs))
    answering.join(20)
    assert decision.approved and "(reviewer@localhost, bob@example.com)" in decision.reason
    assert len(texts) == 3 and "Approval 1 of 2" in texts[0]
    assert "did not count: `reviewer@localhost` had approved already." in texts[2]
    keys = sorted(r.key for r in env.ledger.list_rows())
    assert keys == ["blk-parity", "blk-parity#2", "blk-parity#3"]
    audit = [(a["call_key"], a["stage"]) for a in audit_records(env.ledger)]
    assert audit == [("blk-parity", 1), ("blk-parity", 2), ("blk-parity", 3)]


# -- an endorsement panel decides several approvals in one request ------------------------

PANEL = ("ana@example.com", "bo@example.com", "cy@example.com")
ENDORSE = {
    "workflows": [
        {
            "id": "wf_endorse",
            "name": "Endorse",
            "nodes": [
                {"type": "trigger"},
                {
                    "type": "human_review",
                    "reviewers": list(PANEL),
                    "mode": "endorsement",
                    "threshold": 2,
                },
            ],
        }
    ]
}


@pytest.fixture
def panel(tmp_path: Path) -> Iterator[tuple[Env, dict[str, ScriptedReviewer]]]:
    for env, _ in backend_env("sqlite", tmp_path, loop_id=None, workflow="wf_endorse"):
        server = env.hitl.server
        server.add_workflows(server.add_api_key(env.hitl.api_key).user_id, ENDORSE)
        reviewers = {}
        for email in PANEL:
            server.add_reviewer(email, f"token-{email}-0123456789")
            reviewers[email[:2]] = ScriptedReviewer(
                env.hitl.http, f"token-{email}-0123456789", env.hitl.base_url
            )
        yield env, reviewers


def _panel_answer(flow: Flow, who: list[ScriptedReviewer], value: str) -> str:
    request = _pending(flow.env)
    for reviewer in who:
        reviewer.respond(request.id, value)
    flow.dispatcher.poll_once()
    return str(request.request_text)


def test_an_endorsement_of_two_is_a_quorum_of_two_in_one_request(panel: Any) -> None:
    env, r = panel
    flow = Flow(env, quorum=2)
    flow.start()
    _panel_answer(flow, [r["an"], r["bo"]], "approve")  # HITL.sh's threshold: 2
    assert flow.effects == ["refund 5"] and len(all_requests(env)) == 1
    state = flow.graph.get_state({"configurable": {"thread_id": "t1"}}).values
    assert "(ana@example.com, bo@example.com)" in state["decision"]["reason"]


def test_an_endorsement_counts_only_members_who_may_answer(panel: Any) -> None:
    env, r = panel
    flow = Flow(env, quorum=2, exclude=["bo@example.com"])
    flow.start()
    _panel_answer(flow, [r["an"], r["bo"]], "approve")  # bo's approval does not count
    assert flow.effects == [] and not flow.done()
    text = _panel_answer(flow, [r["bo"], r["an"]], "approve")  # ana again: no new approval
    assert "`bo@example.com` may not answer this request" in text
    assert "Already approved by `ana@example.com`" in text and flow.effects == []
    last = _panel_answer(flow, [r["cy"], r["bo"]], "approve")
    assert "`ana@example.com` had approved already" in last
    assert flow.effects == ["refund 5"] and len(all_requests(env)) == 3


def test_review_node_takes_the_policy_from_builds_dict(backend: Env) -> None:
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    class State(TypedDict, total=False):
        amount: int
        hitl_decision: dict[str, Any]
        done: str

    env = backend
    bob = add_reviewer(env, BOB)
    builder = StateGraph(State)
    builder.add_node(
        "review",
        env.keeper.review_node(
            build=lambda s: {"request_text": f"Refund ${s['amount']}?", "quorum": 2},
            approved="refund",
            rejected="explain",
        ),
    )
    builder.add_node("refund", lambda s: {"done": "refunded"})
    builder.add_node("explain", lambda s: {"done": "explained"})
    builder.add_edge(START, "review")
    builder.add_edge("refund", END)
    builder.add_edge("explain", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    dispatcher = env.keeper.dispatcher(GraphResumer(graph))
    config = {"configurable": {"thread_id": "node"}}
    graph.invoke({"amount": 7}, config)
    for who in (env.hitl.reviewer, bob):
        request = _pending(env)
        assert "different reviewers approve it" in request.request_text
        who.respond(request.id, True)
        dispatcher.poll_once()
    assert graph.get_state(config).values["done"] == "refunded"
    assert len(all_requests(env)) == 2


def _policy_graph(env: Env, twin: str, effects: list[str]) -> Any:
    """START -> gate -> END, the gate reviewing under quorum=2 with ``review`` or ``areview``."""
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    class State(TypedDict, total=False):
        amount: int

    kwargs: dict[str, Any] = {"quorum": 2, "exclude": lambda c: c.get("user")}

    def gate(state: State) -> State:
        if env.keeper.review("Refund $5?", **kwargs).approved:
            effects.append("refund")
        return {}

    async def agate(state: State) -> State:
        if (await env.keeper.areview("Refund $5?", **kwargs)).approved:
            effects.append("refund")
        return {}

    builder = StateGraph(State)
    builder.add_node("gate", gate if twin == "sync" else agate)
    builder.add_edge(START, "gate")
    builder.add_edge("gate", END)
    return builder.compile(checkpointer=InMemorySaver())


@pytest.mark.parametrize("twin", ["sync", "async"])
def test_review_and_areview_in_a_graph_ask_the_same_stages(backend: Env, twin: str) -> None:
    env = backend
    bob, carol = add_reviewer(env, BOB), add_reviewer(env, CAROL)
    effects: list[str] = []
    graph = _policy_graph(env, twin, effects)
    dispatcher = env.keeper.dispatcher(GraphResumer(graph))
    config = {"configurable": {"thread_id": "twin", "user": CAROL}}

    async def go() -> list[str]:
        if twin == "sync":
            graph.invoke({"amount": 5}, config)
        else:
            await graph.ainvoke({"amount": 5}, config)
        texts = []
        for who in (carol, bob, bob, env.hitl.reviewer):
            request = _pending(env)
            texts.append(request.request_text)
            who.respond(request.id, True)
            if twin == "sync":
                dispatcher.poll_once()
            else:
                await dispatcher.apoll_once()
        return texts

    texts = asyncio.run(go())
    assert effects == ["refund"] and len(all_requests(env)) == 4
    assert "Approval 1 of 2" in texts[0] and "`carol@example.com` does not count" in texts[0]
    assert "The previous answer, by `carol@example.com`, did not count" in texts[1]
    assert "Approval 2 of 2" in texts[2] and "Already approved by `bob@example.com`" in texts[2]
    assert "`bob@example.com` had approved already" in texts[3]
    assert [r.state for r in env.ledger.list_rows()] == ["resumed"] * 4


def test_a_blocking_review_waits_once_for_all_its_stages(
    backend: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = backend
    now = [1000.0]
    monkeypatch.setattr(_keeper.time, "monotonic", lambda: now[0])
    waits: list[float | None] = []
    real = _keeper.Gatekeeper._ask

    def ask(self: Any, *args: Any) -> Decision:
        waits.append(args[-1])
        if len(waits) == 1:
            now[0] += 59.75  # the first stage took 59.75 s of the 60
            return _decision("approved", "reviewer@localhost")
        return real(self, *args)

    monkeypatch.setattr(_keeper.Gatekeeper, "_ask", ask)
    with pytest.raises(Exception, match="no decision for request"):
        env.keeper.review("Ship?", quorum=2, key="blk-wait", wait_timeout=60, mode="block")
    assert waits[0] == 60 and waits[1] == pytest.approx(0.25)
