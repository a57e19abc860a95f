"""The graph ``examples/remote_resume.py`` deploys on a LangGraph Server (``langgraph dev``).

Loaded by the server, in its own process, from a ``langgraph.json`` naming ``graph.py:graph``.
Its keeper is configured from the environment, as a deployed graph's would be:

* ``HITL_API_KEY``, ``HITL_BASE_URL`` (read by ``HITLClient()``), ``HITL_LOOP_ID``;
* ``HITL_LEDGER``: the ledger URL, shared with the process that runs the dispatcher;
* ``REFUNDS_LOG``: a file the ``refund`` node appends one line to per refund it pays (it
  stands in for your payments API, and lets the example count how often the action ran).
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

from hitl_agent import Gatekeeper, HITLClient


class State(TypedDict, total=False):
    order_id: str
    amount: int
    result: str


@cache  # one keeper per server process, made on first use (the server imports us early)
def keeper() -> Gatekeeper:
    return Gatekeeper(
        client=HITLClient(), loop_id=os.environ["HITL_LOOP_ID"], ledger=os.environ["HITL_LEDGER"]
    )


def refund(state: State) -> dict[str, Any]:
    decision = keeper().review(  # creates the request once, then interrupts the run
        f"Refund **${state['amount']:,}** for order {state['order_id']}?",
        response_type="single_select",
        response_config={"options": ["Approve", "Reject"]},
        default_response="reject",
        priority="high",
    )
    if not decision.approved:
        return {"result": f"not refunded ({decision.outcome})"}
    with Path(os.environ["REFUNDS_LOG"]).open("a", encoding="utf-8") as log:
        log.write(f"refund {state['amount']} for order {state['order_id']}\n")
    return {"result": f"refunded ${state['amount']:,}"}


builder = StateGraph(State)
builder.add_node("refund", refund)
builder.add_edge(START, "refund")
builder.add_edge("refund", END)
graph = builder.compile()  # no checkpointer: the server brings its own
