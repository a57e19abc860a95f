"""A graph served by a real LangGraph API server: a gate node, then a side effect.

Loaded by ``langgraph dev`` (see ``langgraph.json``), not by pytest. The test passes the local
HITL server and the shared ledger through environment variables:

* ``HITL_REMOTE_BASE_URL``, ``HITL_REMOTE_API_KEY``, ``HITL_REMOTE_LOOP_ID``: the HITL API.
* ``HITL_REMOTE_LEDGER``: the ledger URL the test's dispatcher reads too.
* ``HITL_REMOTE_EFFECTS``: a file; the ``act`` node appends ``<thread> refund <amount>`` per
  refund it makes, and the ``gate`` node ``<thread> gate`` per run (replays are visible).
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any, TypedDict

from langgraph.config import get_config
from langgraph.graph import END, START, StateGraph

from hitl_agent import HITLClient
from hitl_agent.decision import Decision
from hitl_agent.gate import Gatekeeper


class State(TypedDict, total=False):
    amount: int
    decision: dict[str, Any]
    done: bool


@cache
def _keeper() -> Gatekeeper:
    client = HITLClient(
        os.environ["HITL_REMOTE_API_KEY"], base_url=os.environ["HITL_REMOTE_BASE_URL"]
    )
    return Gatekeeper(
        client=client,
        loop_id=os.environ["HITL_REMOTE_LOOP_ID"],
        ledger=os.environ["HITL_REMOTE_LEDGER"],
    )


def _effect(what: str) -> None:
    thread_id = get_config()["configurable"]["thread_id"]
    with Path(os.environ["HITL_REMOTE_EFFECTS"]).open("a", encoding="utf-8") as f:
        f.write(f"{thread_id} {what}\n")


def gate(state: State) -> dict[str, Any]:
    _effect("gate")
    decision = _keeper().review(
        f"Refund ${state['amount']} to order 1234?",
        response_type="single_select",
        response_config={"options": ["Approve", "Reject"]},
        default_response="reject",
        priority="high",
    )
    return {"decision": decision.model_dump(mode="json")}


def act(state: State) -> dict[str, Any]:
    if Decision.model_validate(state["decision"]).approved:
        _effect(f"refund {state['amount']}")
    return {"done": True}


def _refund_graph() -> StateGraph[State]:
    builder = StateGraph(State)
    builder.add_node("gate", gate)
    builder.add_node("act", act)
    builder.add_edge(START, "gate")
    builder.add_edge("gate", "act")
    builder.add_edge("act", END)
    return builder


graph = _refund_graph().compile()
"""``refund``: START → gate → act."""

_outer = StateGraph(State)
_outer.add_node("review", _refund_graph().compile())
_outer.add_edge(START, "review")
_outer.add_edge("review", END)
nested = _outer.compile()
"""``nested``: the same two nodes inside a subgraph node ``review`` (checkpoint namespace
``review:<task>|gate:<task>``)."""
