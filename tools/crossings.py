"""Trace one approved tool call and count how often it crosses the package boundaries.

    python tools/crossings.py          # prints the crossings of each pair of packages

The call is the README's: a ``ToolNode`` with ``keeper.require_approval(refund)``, invoked
(suspends), approved by the local server's scripted reviewer, resumed by
``dispatcher.poll_once()``. A crossing is a call into a ``hitl_agent`` function whose nearest
``hitl_agent`` caller lives in another package (``langchain``, ``gate``, ``dispatch``,
``langgraph``, ``ledger``, ...); frames of LangGraph, LangChain or the standard library in
between are looked through. ``tests/test_architecture.py`` holds the figures to their bounds.
"""

from __future__ import annotations

import collections
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Any

PACKAGE = "hitl_agent"


def package_of(frame: FrameType | None) -> str | None:
    """The hitl_agent subpackage (or ground-floor module) a frame runs in, else None."""
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name == PACKAGE or name.startswith(PACKAGE + "."):
            parts = name.split(".")
            return parts[1] if len(parts) > 1 else "<root>"
        frame = frame.f_back
    return None


class Crossings:
    """Counts crossings while entered, in this thread and in threads started meanwhile
    (ToolNode runs tools in worker threads it starts during the run)."""

    def __init__(self) -> None:
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def _profile(self, frame: FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        name = frame.f_globals.get("__name__", "")
        if not name.startswith(PACKAGE + "."):
            return
        callee = name.split(".")[1]
        caller = package_of(frame.f_back)
        if caller is not None and caller != callee:
            a, b = sorted((caller, callee))
            self.counts[(a, b)] += 1

    def __enter__(self) -> Crossings:
        threading.setprofile(self._profile)
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]


def trace_approved_call() -> collections.Counter[tuple[str, str]]:
    """Run the approved call and count crossings, as unordered package pairs."""
    from langchain_core.messages import AIMessage
    from langchain_core.tools import tool
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode

    from hitl_agent import Gatekeeper
    from hitl_agent.langgraph import GraphResumer
    from hitl_agent.testing import local_hitl

    effects: list[int] = []

    @tool
    def refund(order_id: str, amount: int) -> str:
        """Refund an order."""
        effects.append(amount)
        return f"refunded {amount} on {order_id}"

    counter = Crossings()
    with tempfile.TemporaryDirectory() as tmp, local_hitl() as hitl:
        keeper = Gatekeeper(
            client=hitl.client, loop_id=hitl.loop_id, ledger=f"sqlite:///{Path(tmp) / 'l.db'}"
        )

        def agent(state: MessagesState) -> dict[str, Any]:
            call = {"name": "refund", "args": {"order_id": "A1", "amount": 50}, "id": "c1"}
            return {"messages": [AIMessage("", tool_calls=[call], id="turn-1")]}

        builder = StateGraph(MessagesState)
        builder.add_node("agent", agent)
        builder.add_node("tools", ToolNode([keeper.require_approval(refund)]))
        builder.add_edge(START, "agent")
        builder.add_edge("agent", "tools")
        builder.add_edge("tools", END)
        graph = builder.compile(checkpointer=InMemorySaver())
        config = {"configurable": {"thread_id": "t1"}}
        dispatcher = keeper.dispatcher(GraphResumer(graph))

        with counter:
            graph.invoke({"messages": []}, config)
        (pending,) = hitl.client.requests.list(status="pending").requests
        hitl.reviewer.respond(pending.id, "approve")  # the wrapper's approving option
        with counter:
            dispatcher.poll_once()
        keeper.close()
    assert effects == [50], f"the approved call did not run once: {effects}"
    return counter.counts


def main() -> None:
    counts = trace_approved_call()
    for (a, b), n in sorted(counts.items(), key=lambda item: -item[1]):
        print(f"{a:>12} <-> {b:<12} {n}")


if __name__ == "__main__":
    main()
