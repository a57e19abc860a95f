"""A graph with a gated tool, run as services: an agent process starts threads, and
``hitl-agent worker`` resumes them when reviewers answer.

``build(checkpointer)`` is what ``hitl-agent worker --graph worker_graph:build`` loads: the
worker opens the checkpointer from ``--checkpointer`` and passes it in. The graph is
``START -> plan -> tools -> END``; ``plan`` stands in for an LLM and proposes a
``refund`` tool call, and the ``refund`` tool asks a human before it pays anything.

The tool opens its Gatekeeper from the environment for each review, so the very same module
works in the process that starts a thread and in the worker that resumes it. Both must share
the ledger (``HITL_LEDGER``, default ``sqlite:///hitl.db``, the worker's ``--ledger``) and the
checkpoints (``HITL_CHECKPOINTS``, default ``checkpoints.db``, the worker's
``--checkpointer``): run everything from the same directory.

Offline, with the embedded server (three terminals, all in ``examples/``)::

    # 1. the local HITL server; it prints the API key, the loop id and the reviewer token
    hitl-agent serve --port 8765 --db hitl-local.db

    # 2. in each other terminal
    export HITL_BASE_URL=http://127.0.0.1:8765/v1 HITL_API_KEY=<key> HITL_LOOP_ID=<loop id>
    export HITL_CALLBACK_URL=http://127.0.0.1:8000/hitl HITL_CALLBACK_SECRET=<32+ random chars>

    # 3. the worker: webhook receiver on :8000 plus the budgeted poller
    hitl-agent worker --graph worker_graph:build --checkpointer sqlite:///checkpoints.db \\
        --ledger sqlite:///hitl.db --port 8000

    # 4. start a refund: it runs up to the review, is checkpointed, and this process exits
    python worker_graph.py refund-1 1234 250

    # 5. answer in the console (http://127.0.0.1:8765/console/, paste the reviewer token);
    #    the server calls the worker back, and the worker resumes the thread. Then:
    python worker_graph.py refund-1        # prints how the thread finished

Against the real HITL.sh leave ``HITL_BASE_URL`` unset, use your key and loop id, and set
``HITL_CALLBACK_URL`` to the worker's public URL — or leave it unset: the worker then finds
answers by polling alone (batched, within the hourly quota). For cron, add ``--once`` to the
worker command: one sweep, then exit.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from langchain_core.messages import AIMessage
from langchain_core.tools import InjectedToolCallId, tool
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from hitl_agent import Gatekeeper, HITLClient

ISSUED: list[tuple[int, int]] = []
"""The refunds this process paid: stands in for your payments API."""


@contextlib.contextmanager
def open_keeper() -> Iterator[Gatekeeper]:
    """A Gatekeeper from HITL_API_KEY, HITL_BASE_URL, HITL_LOOP_ID, HITL_LEDGER,
    HITL_CALLBACK_URL and HITL_CALLBACK_SECRET (the same variables the worker reads)."""
    with (
        HITLClient() as client,
        Gatekeeper(
            client=client,
            loop_id=os.environ.get("HITL_LOOP_ID", ""),  # empty: ConfigError naming loop_id
            ledger=os.environ.get("HITL_LEDGER", "sqlite:///hitl.db"),
            callback_url=os.environ.get("HITL_CALLBACK_URL") or None,
        ) as keeper,
    ):
        yield keeper


@tool
def refund(order: int, amount: int, tool_call_id: Annotated[str, InjectedToolCallId]) -> str:
    """Refund an order. A human must approve it first."""
    with open_keeper() as keeper:
        # In a graph this suspends the thread (interrupt) until the worker resumes it.
        decision = keeper.review(
            f"**Refund ${amount:,}** for order `{order}`?",
            response_type="single_select",
            response_config={"options": ["Approve", "Reject"]},
            default_response="reject",
            priority="high" if amount >= 1000 else "medium",
            context={"order": order, "amount": amount},
            tool_call_id=tool_call_id,  # keys the review to this exact tool call
        )
    if not decision.approved:
        return f"Refund NOT issued: {decision.reason}"
    ISSUED.append((order, amount))
    print(f"paid: ${amount:,} for order {order}")
    return f"Refund of ${amount:,} issued for order {order}."


class State(MessagesState):
    order: int
    amount: int


def plan(state: State) -> dict[str, Any]:
    """Stands in for the LLM: propose one refund tool call."""
    call = {
        "name": "refund",
        "args": {"order": state["order"], "amount": state["amount"]},
        "id": f"call_refund_{state['order']}",
    }
    return {"messages": [AIMessage(content="", tool_calls=[call])]}


def build(checkpointer: Any) -> Any:
    """The builder ``hitl-agent worker --graph worker_graph:build`` calls."""
    builder = StateGraph(State)
    builder.add_node("plan", plan)
    builder.add_node("tools", ToolNode([refund]))
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "tools")
    builder.add_edge("tools", END)
    return builder.compile(checkpointer=checkpointer)


@dataclass
class Status:
    thread_id: str
    state: str  # "waiting" (for a review) or "finished"
    detail: str


def main(argv: list[str] | None = None) -> Status:
    """``python worker_graph.py THREAD [ORDER AMOUNT]``: start a refund thread, or show one."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("thread_id")
    parser.add_argument("order", type=int, nargs="?")
    parser.add_argument("amount", type=int, nargs="?")
    args = parser.parse_args(argv)
    checkpoints = os.environ.get("HITL_CHECKPOINTS", "checkpoints.db")
    config: Any = {"configurable": {"thread_id": args.thread_id}}

    with contextlib.closing(sqlite3.connect(checkpoints, check_same_thread=False)) as db:
        graph = build(SqliteSaver(db))
        snapshot = graph.get_state(config)
        if not snapshot.values:  # a new thread: run it up to the review
            if args.order is None or args.amount is None:
                parser.error(f"thread {args.thread_id!r} is new: pass ORDER and AMOUNT")
            graph.invoke({"order": args.order, "amount": args.amount}, config)
            snapshot = graph.get_state(config)

    if snapshot.next:
        (interrupt,) = snapshot.interrupts
        request_id = interrupt.value["hitl_agent"]["request_id"]
        status = Status(args.thread_id, "waiting", f"review {request_id}")
    else:
        status = Status(args.thread_id, "finished", snapshot.values["messages"][-1].content)
    print(f"{status.thread_id}: {status.state} — {status.detail}")
    return status


if __name__ == "__main__":
    main()
