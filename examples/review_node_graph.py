"""A LangGraph review node, resumed by polling only (no webhook, no public URL).

The graph is ``START -> review -> refund | explain -> END``. ``keeper.review_node(...)``
asks a human and routes with ``Command(goto=...)``: to ``refund`` when the decision
approves, to ``explain`` otherwise. The thread is suspended durably in a SQLite checkpointer;
nothing waits in memory. Each refund goes through the path::

    invoke -> interrupted (request created) -> reviewer answers -> dispatcher.poll_once()
           -> the thread resumes and finishes on the route the decision chose

One batched ``poll_once()`` sweep resumes every answered thread (a list call per 100 pending
requests, plus a GET per answered one).

Run it offline (an in-process local HITL server; the script approves one refund and rejects
the other through the reviewer API)::

    python examples/review_node_graph.py

or against the real HITL.sh, answering on the phone app (it sweeps every 30 s)::

    HITL_LIVE=1 HITL_API_KEY=... HITL_LOOP_ID=... python examples/review_node_graph.py

``HITL_LIVE=1`` is the switch: an exported ``HITL_API_KEY`` alone (as after
``hitl-agent serve``) still runs offline. ``HITL_BASE_URL`` sends the live run elsewhere,
e.g. to a ``hitl-agent serve`` whose console you answer in.
"""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from typing import Any, TypedDict

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph

from hitl_agent import Decision, Gatekeeper
from hitl_agent.langgraph import GraphResumer
from hitl_agent.testing import hitl_or_local as connect  # HITL.sh or offline

REFUNDS = {"order-1234": (1234, 250, "approve"), "order-5678": (5678, 9000, "reject")}
"""thread id -> (order, amount, what the offline reviewer answers)."""


class State(TypedDict, total=False):
    order: int
    amount: int
    hitl_decision: dict[str, Any]  # review_node writes the Decision (JSON) here
    route: str


def build_graph(keeper: Gatekeeper, checkpointer: Any, refunds_issued: list[int]) -> Any:
    def ask(state: State) -> dict[str, Any]:
        """The review: keeper.review() keyword arguments built from the state."""
        return {
            "request_text": f"Refund **${state['amount']:,}** for order {state['order']}?",
            "response_type": "single_select",
            "response_config": {"options": ["Approve", "Reject"]},
            "default_response": "reject",
            "priority": "high" if state["amount"] >= 1000 else "medium",
            "context": {"order": state["order"]},
        }

    def refund(state: State) -> dict[str, Any]:
        refunds_issued.append(state["order"])  # the guarded action
        return {"route": "refund"}

    def explain(state: State) -> dict[str, Any]:
        decision = Decision.model_validate(state["hitl_decision"])
        print(f"  order {state['order']}: no refund — {decision.reason}")
        return {"route": "explain"}

    builder = StateGraph(State)
    builder.add_node(
        "review",
        keeper.review_node(build=ask, approved="refund", rejected="explain"),
        destinations=("refund", "explain"),  # where its Command(goto=...) may go
    )
    builder.add_node("refund", refund)
    builder.add_node("explain", explain)
    builder.add_edge(START, "review")
    builder.add_edge("refund", END)
    builder.add_edge("explain", END)
    return builder.compile(checkpointer=checkpointer)


@dataclass
class Result:
    routes: dict[str, str]  # thread id -> the node the decision routed to
    refunds_issued: list[int]
    requests_created: int | None  # review requests in the loop (counted on the server)


def main() -> Result:
    refunds_issued: list[int] = []
    with (
        tempfile.TemporaryDirectory(prefix="hitl-review-node-") as tmp,
        connect() as (client, loop_id, reviewer),
        # No callback_url: this keeper's requests are found by polling alone.
        Gatekeeper(client=client, loop_id=loop_id, ledger=f"sqlite:///{tmp}/ledger.db") as keeper,
        contextlib.closing(sqlite3.connect(f"{tmp}/checkpoints.db", check_same_thread=False)) as db,
    ):
        graph = build_graph(keeper, SqliteSaver(db), refunds_issued)
        dispatcher = keeper.dispatcher(GraphResumer(graph))

        for thread_id, (order, amount, answer) in REFUNDS.items():
            config: Any = {"configurable": {"thread_id": thread_id}}
            result = graph.invoke({"order": order, "amount": amount}, config)
            (interrupt,) = result["__interrupt__"]  # suspended at the review node
            request_id = interrupt.value["hitl_agent"]["request_id"]
            print(f"{thread_id}: interrupted, waiting on review {request_id}")
            if reviewer is not None:
                reviewer.respond(request_id, answer)
                print(f"{thread_id}: reviewer answered {answer!r}")

        def waiting() -> list[str]:
            return [t for t in REFUNDS if graph.get_state({"configurable": {"thread_id": t}}).next]

        while pending := waiting():
            resumed = dispatcher.poll_once()  # one budgeted sweep; resumes answered threads
            print(f"poll_once(): {len(resumed)} decision(s) delivered")
            if not resumed:
                if reviewer is not None:
                    raise RuntimeError(f"answered, yet not resumed: {pending}")
                print(f"  still waiting on {', '.join(pending)}; answer in the HITL.sh app")
                time.sleep(30)

        routes = {
            thread_id: graph.get_state({"configurable": {"thread_id": thread_id}}).values["route"]
            for thread_id in REFUNDS
        }
        requests_created = client.requests.list(loop_id=loop_id).total
    for thread_id, route in routes.items():
        print(f"{thread_id}: finished via {route!r}")
    print(f"refunds issued: {refunds_issued}; review requests in the loop: {requests_created}")
    return Result(routes, refunds_issued, requests_created)


if __name__ == "__main__":
    main()
