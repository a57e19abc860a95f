"""Approval policies: the two-person rule, separation of duties, timed escalation.

Four LangGraph threads, each suspended at a review that one person's yes does not settle,
each resumed by ``keeper.dispatcher(GraphResumer(graph)).poll_once()`` (polling only):

* **quorum=2** (in ``keeper.review_node``'s ``build`` dict): a production deploy runs only
  when two *different* reviewers approve. The same reviewer approving twice counts once: a
  third request is made, and its reader is told why.
* **exclude=** (in ``keeper.review``, a callable of the run's ``configurable``): the person
  who asked the agent for a refund may not approve it. Their approval does not count, even
  on the resumed run, whose config no longer names them: the policy is kept in the ledger.
* **escalate=[Escalate(after=600, loop_id=managers, ...)]**: nobody in the first loop
  answers within 10 minutes (a ``FakeClock`` moves them past in an instant); the request
  times out on the server and the same question goes to the ``Managers`` loop, at high
  priority, where a manager approves.
* **require_approval(keeper, wire, quorum=2)**: the same two-person rule on a tool the
  model calls, in a ``ToolNode``: ``wire`` runs once, after two different approvals, and the
  model gets its result.

For every request it prints what the reviewer read (the lines marked 🔒 are the policy's
notes, written by the product, above the agent's text), who answered what, and what ran.

Run it (offline only: it needs several reviewer accounts, a second loop and a clock it can
move, which the embedded local HITL server gives it)::

    python examples/approval_policies.py

Each policy's cost against HITL.sh's 100 calls an hour is in docs/policies.md.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import Any, TypedDict

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command

from hitl_agent import Decision, Escalate, Gatekeeper
from hitl_agent.langchain import require_approval
from hitl_agent.langgraph import GraphResumer
from hitl_agent.testing import FakeClock, LocalHITL, ScriptedReviewer, local_hitl

BOB, CAROL, BOSS = "bob@example.com", "carol@example.com", "boss@example.com"
OWN = "reviewer@localhost"  # the reviewer local_hitl() bootstraps


class State(TypedDict, total=False):
    action: str
    hitl_decision: dict[str, Any]  # the Decision (JSON), written by the review
    outcome: str


def build_graph(ran: list[str], review: Any) -> Any:
    """``START -> review -> run | refuse -> END``; ``review`` is the node that asks."""

    def run(state: State) -> dict[str, Any]:
        ran.append(state["action"])  # the guarded action: only ever on an approval
        return {"outcome": "ran"}

    def refuse(state: State) -> dict[str, Any]:
        reason = Decision.model_validate(state["hitl_decision"]).reason
        return {"outcome": f"refused: {reason}"}

    builder = StateGraph(State)
    builder.add_node("review", review, destinations=("run", "refuse"))
    builder.add_node("run", run)
    builder.add_node("refuse", refuse)
    builder.add_edge(START, "review")
    builder.add_edge("run", END)
    builder.add_edge("refuse", END)
    return builder.compile(checkpointer=InMemorySaver())


def two_person_rule(keeper: Gatekeeper, ran: list[str]) -> Any:
    """(a) quorum=2 through ``keeper.review_node``: the policy is one more key of ``build``'s
    dict of ``keeper.review`` arguments."""
    node = keeper.review_node(
        build=lambda state: {
            "request_text": f"Deploy **{state['action']}** to production?",
            "response_type": "single_select",
            "response_config": {"options": ["Approve", "Reject"]},
            "default_response": "reject",
            "quorum": 2,
        },
        approved="run",
        rejected="refuse",
    )
    return build_graph(ran, node)


def separation_of_duties(keeper: Gatekeeper, ran: list[str]) -> Any:
    """(b) exclude= through ``keeper.review`` in a node of one's own: whoever the run acts
    for (``configurable["requested_by"]``) may not approve it."""

    def review(state: State) -> Command[str]:
        decision = keeper.review(
            f"Refund **{state['action']}**?",
            response_type="single_select",
            response_config={"options": ["Approve", "Reject"]},
            default_response="reject",
            exclude=lambda configurable: configurable.get("requested_by"),
        )
        return Command(
            goto="run" if decision.approved else "refuse",
            update={"hitl_decision": decision.model_dump(mode="json")},
        )

    return build_graph(ran, review)


def timed_escalation(keeper: Gatekeeper, ran: list[str], managers: str) -> Any:
    """(c) escalate=: 10 minutes for the keeper's loop, then the Managers loop decides."""
    stage = Escalate(after=600, loop_id=managers, priority="high", name="Managers")
    node = keeper.review_node(
        build=lambda state: {
            "request_text": f"Delete **{state['action']}**?",
            "response_type": "single_select",
            "response_config": {"options": ["Approve", "Reject"]},
            "default_response": "reject",
            "escalate": [stage],
        },
        approved="run",
        rejected="refuse",
    )
    return build_graph(ran, node)


def two_person_tool(keeper: Gatekeeper, ran: list[str]) -> Any:
    """(d) quorum=2 on a ``require_approval`` tool in a ``ToolNode``: the model's call of
    ``wire`` runs only after two different reviewers approve it (no edit or standing grant is
    offered under a quorum: each is one reviewer's choice)."""

    @tool
    def wire(account: str, cents: int) -> str:
        """Wire money to a supplier's account."""
        ran.append(f"wire {cents} to {account}")
        return f"wired {cents} to {account}"

    def agent(state: MessagesState) -> dict[str, Any]:
        call = {"name": "wire", "args": {"account": "ACME-7", "cents": 250_000}, "id": "call-1"}
        return {"messages": [AIMessage("", tool_calls=[call])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([require_approval(keeper, wire, quorum=2)]))
    builder.add_edge(START, "agent")
    builder.add_edge("agent", "tools")
    builder.add_edge("tools", END)
    return builder.compile(checkpointer=InMemorySaver())


@dataclass
class Scenario:
    """What one thread showed: the requests its reviewers read, and how it ended."""

    texts: list[str] = field(default_factory=list)  # each request's text, in order
    loops: list[str] = field(default_factory=list)  # the loop each request was made in
    priorities: list[str] = field(default_factory=list)
    outcome: str = ""
    reason: str = ""


@dataclass
class Result:
    quorum: Scenario
    exclude: Scenario
    escalate: Scenario
    tool: Scenario  # (d) require_approval(quorum=2)
    ran: list[str]  # the guarded actions that ran, in order
    managers_loop: str
    requests_created: int  # every request of the four threads, in both loops


class Demo:
    """The local server, its reviewers, one keeper on a fake clock."""

    def __init__(self, hitl: LocalHITL, clock: FakeClock, keeper: Gatekeeper) -> None:
        self.hitl, self.clock, self.keeper = hitl, clock, keeper
        self.reviewers: dict[str, ScriptedReviewer] = {OWN: hitl.reviewer}
        owner = hitl.server.authenticate_key(hitl.api_key)
        assert owner is not None
        self.managers = hitl.server.create_loop(owner.user_id, "Managers")
        for email, loops in (
            (BOB, [hitl.loop_id]),
            (CAROL, [hitl.loop_id]),
            (BOSS, [self.managers]),
        ):
            token = f"token-{email}-0123456789"
            hitl.server.add_reviewer(email, token, loops, name=email.split("@")[0].title())
            self.reviewers[email] = ScriptedReviewer(hitl.http, token, hitl.base_url)

    def start(
        self, graph: Any, thread: str, action: str, inputs: Any = None, **configurable: Any
    ) -> Scenario:
        """Run ``thread`` up to its first request (``inputs`` default: ``{"action": action}``)."""
        print(f"\n== {thread}: {action}")
        config = {"configurable": {"thread_id": thread, **configurable}}
        graph.invoke({"action": action} if inputs is None else inputs, config)
        return Scenario()

    def read(self, email: str, scenario: Scenario) -> dict[str, Any]:
        """The one request open to ``email``, printed as the reviewer reads it."""
        (request,) = self.reviewers[email].queue()
        scenario.texts.append(request["request_text"])
        scenario.loops.append(request["loop_id"])
        scenario.priorities.append(request["priority"])
        where = "Managers" if request["loop_id"] == self.managers else "the keeper's loop"
        print(
            f"  request {len(scenario.texts)}, in {where}, priority {request['priority']}, "
            f"times out in {request['timeout_seconds']} s; {email} reads:"
        )
        for line in request["request_text"].splitlines():
            if line:
                print(f"    | {line}")
        return request

    def answer(self, graph: Any, scenario: Scenario, email: str, value: str) -> None:
        """``email`` reads the open request, answers ``value``; one poll resumes the thread."""
        request = self.read(email, scenario)
        self.reviewers[email].respond(request["id"], value)
        print(f"  {email} answers {value!r}")
        self.resume(graph)

    def time_out(self, graph: Any, scenario: Scenario, seconds: int) -> None:
        """Nobody answers the open request for ``seconds``: the server times it out."""
        self.read(OWN, scenario)
        self.clock.advance(seconds)
        self.hitl.tick_sync()  # the local server's scheduler: timeouts, as HITL.sh's own
        print(f"  ... {seconds} s later, nobody has answered: the request timed out")
        self.resume(graph)

    def resume(self, graph: Any) -> None:
        delivered = self.keeper.dispatcher(GraphResumer(graph)).poll_once()
        print(f"  poll_once(): {len(delivered)} decision(s) delivered")

    def finish(self, graph: Any, thread: str, scenario: Scenario) -> Scenario:
        state = graph.get_state({"configurable": {"thread_id": thread}})
        assert not state.next, f"{thread} is still waiting"
        if "messages" in state.values:  # a tool call: what the tool returned to the model
            message = state.values["messages"][-1]
            assert isinstance(message, ToolMessage)
            scenario.outcome, scenario.reason = message.status, str(message.content)
        else:
            scenario.outcome = state.values["outcome"]
            scenario.reason = Decision.model_validate(state.values["hitl_decision"]).reason
        print(f"  => {scenario.outcome} ({scenario.reason})")
        return scenario


def main() -> Result:
    ran: list[str] = []
    clock = FakeClock()
    with (
        tempfile.TemporaryDirectory(prefix="hitl-policies-") as tmp,
        local_hitl(clock=clock) as hitl,
        Gatekeeper(
            client=hitl.client,
            loop_id=hitl.loop_id,
            ledger=f"sqlite:///{tmp}/ledger.db",
            clock=clock,
        ) as keeper,
    ):
        demo = Demo(hitl, clock, keeper)

        # (a) The two-person rule: the same reviewer twice is one approval.
        graph = two_person_rule(keeper, ran)
        quorum = demo.start(graph, "deploy-1", "api v2.4")
        demo.answer(graph, quorum, OWN, "approve")
        demo.answer(graph, quorum, OWN, "approve")  # again: does not count
        print(f"  has it run? {'yes' if 'api v2.4' in ran else 'no'}")
        demo.answer(graph, quorum, BOB, "approve")
        demo.finish(graph, "deploy-1", quorum)

        # (b) Separation of duties: Bob asked for the refund, so his approval is void.
        graph = separation_of_duties(keeper, ran)
        exclude = demo.start(graph, "refund-1", "$900 to Bob", requested_by="Bob@Example.com")
        demo.answer(graph, exclude, BOB, "approve")
        print(f"  has it run? {'yes' if '$900 to Bob' in ran else 'no'}")
        demo.answer(graph, exclude, CAROL, "approve")
        demo.finish(graph, "refund-1", exclude)

        # (c) Timed escalation: nobody answers for 10 minutes; the managers decide.
        graph = timed_escalation(keeper, ran, demo.managers)
        escalate = demo.start(graph, "cleanup-1", "the staging database")
        demo.time_out(graph, escalate, 601)  # the timeout resumes it: Managers are asked
        demo.answer(graph, escalate, BOSS, "approve")
        demo.finish(graph, "cleanup-1", escalate)

        # (d) The two-person rule on a tool the model calls, through require_approval.
        graph = two_person_tool(keeper, ran)
        wire = demo.start(graph, "wire-1", "the model calls wire", {"messages": []})
        demo.answer(graph, wire, OWN, "approve")
        print(f"  has it run? {'yes' if any(r.startswith('wire') for r in ran) else 'no'}")
        demo.answer(graph, wire, CAROL, "approve")
        demo.finish(graph, "wire-1", wire)

        created = sum(1 for _ in hitl.client.requests.iter())  # in both loops
        result = Result(quorum, exclude, escalate, wire, ran, demo.managers, created)
    print(f"\nran: {ran}; requests created: {created}")
    _check(result)
    return result


def _check(result: Result) -> None:
    """What the demo shows, asserted: a regression exits non-zero."""
    quorum, exclude, escalate = result.quorum, result.exclude, result.escalate
    expected = ["api v2.4", "$900 to Bob", "the staging database", "wire 250000 to ACME-7"]
    assert result.ran == expected, result.ran

    assert len(quorum.texts) == 3 and quorum.outcome == "ran"
    assert (
        "🔒 Approval 1 of 2: this runs only when 2 different reviewers approve it"
        in (quorum.texts[0])
    )
    assert f"Already approved by `{OWN}`: they cannot approve it again." in quorum.texts[1]
    assert f"`{OWN}`" in _line(quorum.texts[2], "did not count")  # told why
    assert quorum.reason == f"Approved by 2 different reviewers ({OWN}, {BOB})."

    assert len(exclude.texts) == 2 and exclude.outcome == "ran"
    assert f"You cannot approve your own request: an answer by `{BOB}`" in exclude.texts[0]
    assert f"`{BOB}`" in _line(exclude.texts[1], "did not count")

    assert len(escalate.texts) == 2 and escalate.outcome == "ran"
    assert "If nobody answers within 10 min, this goes to `Managers`." in escalate.texts[0]
    assert "Escalated: nobody answered in the first reviewers within 10 min." in (escalate.texts[1])
    assert escalate.loops[1] == result.managers_loop and escalate.priorities[1] == "high"

    tool_call = result.tool
    assert len(tool_call.texts) == 2 and tool_call.outcome == "success"
    assert tool_call.texts[0].startswith("🔒 Approval 1 of 2"), tool_call.texts[0]
    assert f"Already approved by `{OWN}`" in tool_call.texts[1]
    assert tool_call.reason == "wired 250000 to ACME-7"


def _line(text: str, words: str) -> str:
    """The line of ``text`` that holds ``words`` ("" when none does)."""
    return next((line for line in text.splitlines() if words in line), "")


if __name__ == "__main__":
    main()
