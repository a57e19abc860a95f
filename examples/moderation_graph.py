"""Content moderation: a LangGraph graph whose review node routes each post on a human's call.

The graph is ``START -> screen -> publish | review``, ``review -> publish | remove``. ``screen``
stands in for an automatic classifier: a post with no flagged word is published at once, a
flagged one goes to ``keeper.review_node(...)``, which asks a moderator *Publish* or *Remove*
and routes with ``Command(goto=...)``. The options' labels are what the moderator reads,
their values (``approve`` / ``reject``) what decides; the default (on timeout) is ``reject``,
so a post nobody looked at never goes live (any answer that is not an approval removes it).
Every thread is suspended durably in a SQLite checkpointer while it waits.

It shows, for four posts:

* a clean post published without a request;
* three flagged posts, each one review request: two published, one removed, each finished on
  the route its decision chose, with the moderator's answer recorded in the state;
* one batched ``dispatcher.poll_once()`` sweep resuming every answered thread.

Run it offline (an in-process local HITL server; the script plays the moderator)::

    python examples/moderation_graph.py

or against the real HITL.sh, answering on the phone app (it sweeps every 30 s)::

    HITL_LIVE=1 HITL_API_KEY=... HITL_LOOP_ID=... python examples/moderation_graph.py

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

FLAGGED = ("scam", "crypto", "idiot")
POSTS = {
    "post-1": ("Our bake sale raised $420 for the library. Thank you all!", None),
    "post-2": ("Is this crypto wallet app legit? My bank says so.", "approve"),
    "post-3": ("Send me $50 in gift cards and I double it. Not a scam!", "reject"),
    "post-4": ("The referee was an idiot tonight, but what a game.", "approve"),
}
"""thread id -> (the post, what the offline moderator answers; None: never reviewed)."""


class State(TypedDict, total=False):
    text: str
    flags: list[str]
    hitl_decision: dict[str, Any]  # review_node writes the Decision (JSON) here
    status: str  # published | removed
    note: str


def build_graph(keeper: Gatekeeper, checkpointer: Any) -> Any:
    def screen(state: State) -> dict[str, Any]:
        words = state["text"].lower()
        return {"flags": [word for word in FLAGGED if word in words]}

    def after_screen(state: State) -> str:
        return "review" if state["flags"] else "publish"

    def ask(state: State) -> dict[str, Any]:
        """keeper.review() keyword arguments for one flagged post."""
        return {
            "request_text": (
                f"Publish this post? Flagged for: {', '.join(state['flags'])}\n\n> {state['text']}"
            ),
            "response_type": "single_select",
            # The moderator sees the labels; the values decide (approve / reject).
            "response_config": {
                "options": [
                    {"value": "approve", "label": "Publish"},
                    {"value": "reject", "label": "Remove"},
                ]
            },
            "default_response": "reject",  # nobody answers: it stays down
            "timeout_seconds": 3600,
            "context": {"flags": state["flags"]},
        }

    def publish(state: State) -> dict[str, Any]:
        reviewed = "hitl_decision" in state
        return {"status": "published", "note": "by a moderator" if reviewed else "automatically"}

    def remove(state: State) -> dict[str, Any]:
        decision = Decision.model_validate(state["hitl_decision"])
        return {"status": "removed", "note": f"{decision.outcome}: {decision.reason}"}

    review: Any = keeper.review_node(build=ask, approved="publish", rejected="remove")
    builder = StateGraph(State)
    builder.add_node("screen", screen)
    builder.add_node(
        "review",
        review,
        destinations=("publish", "remove"),  # where its Command(goto=...) may go
    )
    builder.add_node("publish", publish)
    builder.add_node("remove", remove)
    builder.add_edge(START, "screen")
    builder.add_conditional_edges("screen", after_screen, ["review", "publish"])
    builder.add_edge("publish", END)
    builder.add_edge("remove", END)
    return builder.compile(checkpointer=checkpointer)


@dataclass
class Result:
    outcomes: dict[str, tuple[str, str]]  # thread id -> (status, note)
    answers: dict[str, str]  # thread id -> the moderator's recorded answer (reviewed posts)
    requests_created: int | None
    sweeps: int  # poll_once() calls that delivered decisions


def main() -> Result:
    with (
        tempfile.TemporaryDirectory(prefix="hitl-moderation-") as tmp,
        connect() as (client, loop_id, reviewer),
        Gatekeeper(client=client, loop_id=loop_id, ledger=f"sqlite:///{tmp}/ledger.db") as keeper,
        contextlib.closing(sqlite3.connect(f"{tmp}/checkpoints.db", check_same_thread=False)) as db,
    ):
        graph = build_graph(keeper, SqliteSaver(db))
        dispatcher = keeper.dispatcher(GraphResumer(graph))

        def config(thread_id: str) -> Any:
            return {"configurable": {"thread_id": thread_id}}

        for thread_id, (text, answer) in POSTS.items():
            result = graph.invoke({"text": text}, config(thread_id))
            if "__interrupt__" not in result:
                print(f"{thread_id}: {result['status']} {result['note']}")
                continue
            (interrupt,) = result["__interrupt__"]  # suspended at the review node
            request_id = interrupt.value["hitl_agent"]["request_id"]
            print(f"{thread_id}: flagged {result['flags']}, waiting on review {request_id}")
            if reviewer is not None and answer is not None:
                reviewer.respond(request_id, answer)
                print(f"{thread_id}: moderator answered {answer!r}")

        def waiting() -> list[str]:
            return [t for t in POSTS if graph.get_state(config(t)).next]

        sweeps = 0
        while pending := waiting():
            resumed = dispatcher.poll_once()  # one budgeted sweep for every open review
            print(f"poll_once(): {len(resumed)} decision(s) delivered")
            sweeps += bool(resumed)
            if not resumed:
                if reviewer is not None:
                    raise RuntimeError(f"answered, yet not resumed: {pending}")
                print(f"  still waiting on {', '.join(pending)}; answer in the HITL.sh app")
                time.sleep(30)

        outcomes: dict[str, tuple[str, str]] = {}
        answers: dict[str, str] = {}
        for thread_id in POSTS:
            values = graph.get_state(config(thread_id)).values
            outcomes[thread_id] = (values["status"], values["note"])
            if "hitl_decision" in values:
                answers[thread_id] = str(Decision.model_validate(values["hitl_decision"]).value)
        requests_created = client.requests.list(loop_id=loop_id).total
    for thread_id, (status, note) in outcomes.items():
        print(f"{thread_id}: {status} ({note})")
    print(f"review requests: {requests_created} for {len(POSTS)} posts")
    return Result(outcomes, answers, requests_created, sweeps)


if __name__ == "__main__":
    main()
