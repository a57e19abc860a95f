"""Never twice (issue 19, F1 / C2′ / F9): an approved call's action runs in one attempt.

Through the product as shipped: ``require_approval`` in a ``ToolNode`` graph, resumed by the
keeper's own dispatcher sweeps. The tool raises after its side effect, the checkpointer cannot
save the step, a resumer stalls past its lease and a second replica takes over: each approved
call's side effect happens once, and the agent is told what became of it.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hitl_harness import Env
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from tools_support import one_turn_graph

from hitl_agent.langchain import ApprovedCall, approved_call
from hitl_agent.langgraph import GraphResumer

CALL = [{"name": "charge", "args": {"customer": "c-1", "cents": 900}, "id": "call-1"}]
CONFIG = {"configurable": {"thread_id": "once-1"}}


def _approve_all(env: Env) -> None:
    for request in env.requests():
        if request.status == "pending":
            env.hitl.reviewer.respond(request.id, "approve")


def _messages(graph: Any) -> list[Any]:
    return [m for m in graph.get_state(CONFIG).values["messages"] if m.type == "tool"]


def _sweeps(env: Env, dispatcher: Any, count: int) -> int:
    """``count`` dispatcher sweeps, the clock moved an hour between them (past any backoff);
    how many raised."""
    failures = 0
    for _ in range(count):
        try:
            dispatcher.poll_once()
        except Exception:
            failures += 1
        env.clock.advance(3600)
    return failures


def _approved_charge(env: Env, saver: Any) -> tuple[Any, Any, str, list[int]]:
    """A graph whose gated ``charge`` call was approved: (graph, dispatcher, request id,
    the charges made so far)."""
    charged: list[int] = []

    @tool
    def charge(customer: str, cents: int) -> str:
        """Charge a customer's card."""
        charged.append(cents)
        return "charged"

    graph = one_turn_graph([env.keeper.require_approval(charge)], CALL, saver)
    graph.invoke({"messages": []}, CONFIG)
    _approve_all(env)
    return graph, env.keeper.dispatcher(GraphResumer(graph)), env.only_request_id(), charged


def test_a_tool_that_raises_after_its_side_effect_runs_once_and_the_agent_is_told(
    env: Env,
) -> None:
    charged: list[int] = []

    @tool
    def charge(customer: str, cents: int) -> str:
        """Charge a customer's card."""
        charged.append(cents)  # the card is charged ...
        raise TimeoutError("reading the receipt timed out")  # ... then the tool fails

    graph = one_turn_graph([env.keeper.require_approval(charge)], CALL, InMemorySaver())
    graph.invoke({"messages": []}, CONFIG)
    _approve_all(env)
    dispatcher = env.keeper.dispatcher(GraphResumer(graph))
    _sweeps(env, dispatcher, 12)

    assert charged == [900]  # once, not once per sweep (15 times in 15 s before)
    assert not graph.get_state(CONFIG).next  # the thread went on
    (message,) = _messages(graph)
    assert message.status == "error"
    assert "already ran once and failed" in message.content
    assert "TimeoutError" in message.content
    (record,) = env.ledger.list_executions(states=("failed",))
    assert record.tool == "charge" and record.note is not None
    assert env.ledger.list_delivery_faults() == []  # the failed resume's retry succeeded


class _FlakySaver(InMemorySaver):
    """A checkpointer whose writes fail ``failures`` times once armed (a full disk)."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    def put(self, *args: Any, **kwargs: Any) -> Any:
        if self.failures:
            self.failures -= 1
            raise OSError(28, "No space left on device")
        return super().put(*args, **kwargs)

    def put_writes(self, *args: Any, **kwargs: Any) -> Any:
        if self.failures:
            self.failures -= 1
            raise OSError(28, "No space left on device")
        return super().put_writes(*args, **kwargs)


def test_a_checkpoint_that_cannot_be_saved_replays_the_result_instead_of_running_again(
    env: Env,
) -> None:
    charged: list[int] = []

    @tool
    def charge(customer: str, cents: int) -> str:
        """Charge a customer's card."""
        charged.append(cents)
        return f"charged {cents} to {customer}"

    saver = _FlakySaver()
    graph = one_turn_graph([env.keeper.require_approval(charge)], CALL, saver)
    graph.invoke({"messages": []}, CONFIG)
    _approve_all(env)
    dispatcher = env.keeper.dispatcher(GraphResumer(graph))
    saver.failures = 3  # the disk is full for the next three writes
    _sweeps(env, dispatcher, 12)

    assert charged == [900]
    assert not graph.get_state(CONFIG).next
    (message,) = _messages(graph)
    assert message.content == "charged 900 to c-1" and message.status == "success"
    (record,) = env.ledger.list_executions(states=("succeeded",))
    assert record.result == {"kind": "text", "content": "charged 900 to c-1"}


def test_a_stalled_resumer_overtaken_by_a_second_replica_runs_the_action_once(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hitl_agent.dispatch import _resolver

    entered, release = threading.Event(), threading.Event()
    charged: list[str] = []

    @tool
    def charge(customer: str, cents: int) -> str:
        """Charge a customer's card."""
        charged.append(customer)
        entered.set()
        release.wait(10)  # a VM pause / a long GC: the first replica stalls mid-action
        return "charged"

    graph = one_turn_graph([env.keeper.require_approval(charge)], CALL, InMemorySaver())
    graph.invoke({"messages": []}, CONFIG)
    _approve_all(env)

    # Its renewer stalls with it (the whole process is paused): no renewal at all.
    monkeypatch.setattr(_resolver.LeaseKeeper, "start", lambda self: self)
    first = env.keeper.dispatcher(GraphResumer(graph))
    second = env.keeper.dispatcher(GraphResumer(graph))
    stalled = threading.Thread(target=first.poll_once)
    stalled.start()
    try:
        assert entered.wait(10)
        env.clock.advance(301)  # past the 300 s lease: replica 2 may claim it
        second.poll_once()
    finally:
        release.set()
        stalled.join(10)

    assert charged == ["c-1"]  # replica 2 did not charge a second time
    executions = env.ledger.list_executions(states=("in_doubt", "succeeded"))
    assert len(executions) == 1
    # Replica 2 told the agent the call is in doubt; replica 1's outcome landed afterwards.
    assert executions[0].state == "succeeded"


def test_the_wrapped_tool_reads_a_stable_idempotency_key(env: Env) -> None:
    seen: list[ApprovedCall | None] = []

    @tool
    def charge(customer: str, cents: int) -> str:
        """Charge a customer's card."""
        seen.append(approved_call())
        return "charged"

    graph = one_turn_graph([env.keeper.require_approval(charge)], CALL, InMemorySaver())
    graph.invoke({"messages": []}, CONFIG)
    _approve_all(env)
    _sweeps(env, env.keeper.dispatcher(GraphResumer(graph)), 2)

    (approval,) = seen
    assert approval is not None
    request_id = env.only_request_id()
    assert approval.request_id == request_id
    assert approval.idempotency_key == f"hitl-{request_id}"
    assert approval.decision is not None and approval.decision.idempotency_key == (
        approval.idempotency_key
    )
    assert approval.tool_call_id == "call-1"
    assert approved_call() is None  # only while the approved action runs


class _BrokenSaver(InMemorySaver):
    """A checkpointer that fails once armed: ``error`` is what it raises."""

    error: BaseException | None = None

    def get_tuple(self, config: Any) -> Any:
        if self.error is not None:
            raise self.error
        return super().get_tuple(config)


def test_a_resume_that_keeps_failing_backs_off_parks_and_logs_at_error_twice(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    saver = _BrokenSaver()
    graph, dispatcher, request_id, charged = _approved_charge(env, saver)
    saver.error = RuntimeError("checkpoint table corrupt")
    with caplog.at_level("INFO", logger="hitl_agent.dispatch"):
        for _ in range(60):  # an hour of sweeps, one a minute
            dispatcher.poll_once()
            env.clock.advance(60)

    fault = env.ledger.get_delivery_fault(request_id)
    assert fault is not None and fault.parked and fault.attempts == 10
    assert fault.last_error is not None and "checkpoint table corrupt" in fault.last_error
    errors = [r for r in caplog.records if r.levelname == "ERROR" and "resume" in r.getMessage()]
    assert len(errors) == 2  # the first failure and the parking, not one per sweep
    assert charged == []  # it failed before the action started

    # The store is repaired and an operator retries: delivered once.
    saver.error = None
    assert env.ledger.clear_delivery_fault(request_id)
    dispatcher.poll_once()
    assert charged == [900]
    assert not graph.get_state(CONFIG).next
    assert env.ledger.get_delivery_fault(request_id) is None


def test_a_decision_nothing_waits_for_is_parked_and_said_once_at_error(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 20 L4 / issue 19 M7: the thread was deleted while its review was pending."""

    @tool
    def charge(customer: str, cents: int) -> str:
        """Charge a customer's card."""
        return "charged"

    saver = InMemorySaver()
    graph = one_turn_graph([env.keeper.require_approval(charge)], CALL, saver)
    graph.invoke({"messages": []}, CONFIG)
    saver.delete_thread("once-1")
    _approve_all(env)
    request_id = env.only_request_id()
    dispatcher = env.keeper.dispatcher(GraphResumer(graph))
    with caplog.at_level("INFO", logger="hitl_agent.dispatch"):
        for _ in range(60):
            dispatcher.poll_once()
            env.clock.advance(60)

    fault = env.ledger.get_delivery_fault(request_id)
    assert fault is not None and fault.parked and fault.reason is not None
    assert fault.reason.startswith("orphaned")
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and request_id in errors[0] and "orphaned" in errors[0]


def test_a_resumer_that_stalled_past_its_lease_before_the_action_does_not_start_it(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19 C2′/F7: the stall happens between the claim and the action."""
    from hitl_agent._claims import ClaimExpiredError
    from hitl_agent.dispatch import _resolver

    charged: list[str] = []

    @tool
    def charge(customer: str, cents: int) -> str:
        """Charge a customer's card."""
        charged.append(customer)
        return "charged"

    graph = one_turn_graph([env.keeper.require_approval(charge)], CALL, InMemorySaver())
    graph.invoke({"messages": []}, CONFIG)
    _approve_all(env)
    monkeypatch.setattr(_resolver.LeaseKeeper, "start", lambda self: self)  # renewer stalled

    class Stalling(GraphResumer):
        def resume(self, record: Any, decisions: Any) -> bool:
            env.clock.advance(301)  # the process pauses past its 300 s lease, then resumes
            return super().resume(record, decisions)

    errors: list[BaseException] = []
    first = env.keeper.dispatcher(Stalling(graph))
    monkeypatch.setattr(
        _resolver.log, "error", lambda *a, **k: errors.append(k.get("exc_info") or a[0])
    )
    first.poll_once()
    assert charged == []  # not started under an expired claim
    assert any(isinstance(e, ClaimExpiredError) for e in errors)
    assert env.ledger.list_executions(states=("started", "succeeded", "in_doubt")) == []

    env.keeper.dispatcher(GraphResumer(graph)).poll_once()  # the replica that took over
    assert charged == ["c-1"]
    assert not graph.get_state(CONFIG).next


def _readme_program(
    env: Env, paid: list[int], call_id: Any, saver: Any, *, resumed: bool = False
) -> Any:
    """The README quickstart's graph (ToolNode + tools_condition + when=), one process.
    ``resumed``: the model's next answer is the one after the tool result ("Done.")."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode

    from hitl_agent.langgraph import tools_condition

    @env.keeper.require_approval(when=lambda args: args["amount"] > 100)
    def refund(order_id: str, amount: int) -> str:
        """Refund an order to the customer's card."""
        paid.append(amount)
        return f"Refunded ${amount} for order {order_id}."

    call = {"name": "refund", "args": {"order_id": "1234", "amount": 250}, "id": call_id()}
    script = [AIMessage("Done.")] if resumed else [AIMessage("", tool_calls=[call])]
    model = GenericFakeChatModel(messages=iter([*script, AIMessage("Done.")]))

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([refund]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=saver)


@pytest.mark.parametrize("ids", ["scripted", "unique"])
def test_the_readme_program_restarted_after_an_answer_given_while_down_pays_once(
    env: Env, ids: str
) -> None:
    """Issue 19, Q-stop: kill the README program while it waits, approve while it is down,
    start it again. The program (as the README now writes it) does not re-invoke a thread
    that still waits: the dispatcher resumes it and the refund is paid once."""
    import itertools

    counter = itertools.count()
    call_id = (lambda: "call_1") if ids == "scripted" else (lambda: f"call_{next(counter)}")
    paid: list[int] = []
    saver = InMemorySaver()
    config = {"configurable": {"thread_id": "order-1234"}}
    inputs = {"messages": [("user", "Refund order 1234: it arrived broken.")]}

    first = _readme_program(env, paid, call_id, saver)
    first.invoke(inputs, config)  # ... and the process is killed while it waits
    env.hitl.reviewer.respond(env.only_request_id(), "approve")

    second = _readme_program(env, paid, call_id, saver, resumed=True)  # started again
    dispatcher = env.keeper.dispatcher(GraphResumer(second))
    if not second.get_state(config).next:  # the README's guard
        second.invoke(inputs, config)
    for _ in range(3):
        dispatcher.poll_once()
    assert paid == [250]
    assert not second.get_state(config).next
    assert [r.status for r in env.requests()] == ["completed"]


def test_reinvoking_a_thread_past_an_approval_is_said_at_error_and_listed(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 19, Q-stop: without the guard, new input on a thread whose approval was not
    delivered yet moves the thread on; the approval is never silently dropped."""
    import itertools

    from hitl_agent.cli._ledger import find_problems

    counter = itertools.count()
    paid: list[int] = []
    saver = InMemorySaver()
    config = {"configurable": {"thread_id": "order-1234"}}
    inputs = {"messages": [("user", "Refund order 1234: it arrived broken.")]}
    first = _readme_program(env, paid, lambda: f"call_{next(counter)}", saver)
    first.invoke(inputs, config)
    approved = env.only_request_id()
    env.hitl.reviewer.respond(approved, "approve")
    second = _readme_program(env, paid, lambda: f"call_{next(counter)}", saver)
    second.invoke(inputs, config)  # no guard: a new turn asks again
    with caplog.at_level("ERROR", logger="hitl_agent.dispatch"):
        env.keeper.dispatcher(GraphResumer(second)).poll_once()
    assert paid == []
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and approved in errors[0] and "did not run" in errors[0]
    problems = find_problems(env.ledger, now=env.clock(), stale=3600)
    assert [(p["problem"], p["request_id"]) for p in problems] == [("resume parked", approved)]


class _Killed(BaseException):
    """Stands in for SIGINT / SystemExit / a cancellation in the middle of the action."""


def test_an_action_interrupted_midway_is_reported_in_doubt_not_run_again(env: Env) -> None:
    charged: list[int] = []
    kill = [True]

    @tool
    def charge(customer: str, cents: int) -> str:
        """Charge a customer's card."""
        charged.append(cents)
        if kill.pop() if kill else False:
            raise _Killed()  # the card may be charged: nobody knows
        return "charged"

    graph = one_turn_graph([env.keeper.require_approval(charge)], CALL, InMemorySaver())
    graph.invoke({"messages": []}, CONFIG)
    _approve_all(env)
    dispatcher = env.keeper.dispatcher(GraphResumer(graph))
    with pytest.raises(_Killed):
        dispatcher.poll_once()
    env.clock.advance(400)  # past the dead resumer's lease
    _sweeps(env, dispatcher, 3)

    assert charged == [900]
    (message,) = _messages(graph)
    assert message.status == "error" and "may or may not have taken effect" in message.content
    (record,) = env.ledger.list_executions(states=("in_doubt",))
    assert record.tool == "charge"


def test_a_store_outage_is_retried_until_it_returns_and_never_parked(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 20 F2: a database that is down for two hours; the worker catches up alone."""
    saver = _BrokenSaver()
    _, dispatcher, request_id, charged = _approved_charge(env, saver)
    saver.error = ConnectionError("connection to the checkpoint database refused")
    with caplog.at_level("INFO", logger="hitl_agent.dispatch"):
        for _ in range(120):  # two hours of one-a-minute sweeps
            dispatcher.poll_once()
            env.clock.advance(60)
    fault = env.ledger.get_delivery_fault(request_id)
    assert fault is not None and not fault.parked and fault.attempts > 10
    errors = [r for r in caplog.records if r.levelname == "ERROR" and "resume" in r.getMessage()]
    assert len(errors) == 1

    saver.error = None  # the database is back: delivered within a minute, on its own
    for _ in range(2):
        dispatcher.poll_once()
        env.clock.advance(30)
    assert charged == [900]
    assert env.ledger.get_delivery_fault(request_id) is None


def test_new_input_past_a_pending_review_retires_its_request(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 19, Q-stop: killed while the review waits, nobody answered, the program started
    again without the README's guard, with a real model's fresh call id: the first request
    must not stay in the reviewers' queue."""
    import itertools

    counter = itertools.count()
    paid: list[int] = []
    saver = InMemorySaver()
    config = {"configurable": {"thread_id": "order-1234"}}
    inputs = {"messages": [("user", "Refund order 1234: it arrived broken.")]}
    _readme_program(env, paid, lambda: f"call_{next(counter)}", saver).invoke(inputs, config)
    first = env.only_request_id()

    second = _readme_program(env, paid, lambda: f"call_{next(counter)}", saver)
    with caplog.at_level("WARNING", logger="hitl_agent.gate"):
        second.invoke(inputs, config)  # a new turn asks again
    statuses = {r.id: r.status for r in env.requests()}
    assert statuses[first] == "cancelled" and len(statuses) == 2
    row = env.ledger.get_by_request_id(first)
    assert row is not None and row.decision is not None
    assert row.decision["outcome"] == "cancelled" and "new turn" in row.decision["reason"]
    assert any(first in r.getMessage() for r in caplog.records)

    (latest,) = [rid for rid, status in statuses.items() if status == "pending"]
    env.hitl.reviewer.respond(latest, "approve")
    env.keeper.dispatcher(GraphResumer(second)).poll_once()
    assert paid == [250]  # the one answer given is the one that runs
