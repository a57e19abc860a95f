"""Blocking reviews in a plain script: no LangGraph, no web server.

``keeper.review(...)`` outside a graph creates the review request and blocks until it is
decided. Every blocked review in the process is served by one shared poll thread (one batched
list call per sweep), so a script can wait on many reviews without a thread each.

It shows:

1. a review that a reviewer approves after a short delay: the ``Decision`` (outcome,
   approved, reviewer) and the action that runs only because it was approved;
2. a review nobody answers: the decision is ``timed_out`` with its own reason — a timeout is
   not a rejection, and it never approves (unless you opt in with ``approve_on_timeout``).

(``keeper.review(..., wait_timeout=5)`` is something else: *you* stop waiting and get
``ReviewTimeoutError`` while the review stays open; call again with the same ``key=`` to
pick it up.)

Run it offline (an in-process local HITL server; a background thread plays the reviewer
through the reviewer API, and a ``FakeClock`` makes the 60 s timeout pass instantly)::

    python examples/blocking_review.py

or against the real HITL.sh: approve the first review on the phone app and ignore the second
(it times out after 60 s, so the run takes a couple of minutes)::

    HITL_LIVE=1 HITL_API_KEY=... HITL_LOOP_ID=... python examples/blocking_review.py

``HITL_LIVE=1`` is the switch: an exported ``HITL_API_KEY`` alone (as after
``hitl-agent serve``) still runs offline. ``HITL_BASE_URL`` sends the live run elsewhere,
e.g. to a ``hitl-agent serve`` whose console you answer in.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hitl_agent import Decision, Gatekeeper, HITLClient
from hitl_agent.testing import FakeClock, LocalHITL, local_hitl


@dataclass
class Result:
    approved: Decision
    timed_out: Decision
    deployed: list[str] = field(default_factory=list)


class BackgroundReviewer:
    """Offline only: plays the reviewer from a background thread, through the reviewer API."""

    def __init__(self, hitl: LocalHITL, clock: FakeClock) -> None:
        self.hitl = hitl
        self.clock = clock

    def approve_soon(self) -> None:
        self._on_next_review(lambda request_id: self.hitl.reviewer.respond(request_id, "approve"))

    def let_it_time_out(self) -> None:
        def time_out(request_id: str) -> None:
            self.clock.advance(61)  # past the 60 s timeout, instantly
            self.hitl.tick_sync()  # the server's scheduler pass: the request times out

        self._on_next_review(time_out)

    def _on_next_review(self, act: Callable[[str], Any]) -> None:
        def run() -> None:
            while not (queue := self.hitl.reviewer.queue()):
                time.sleep(0.05)
            time.sleep(0.3)  # a human takes a moment
            act(queue[0]["id"])

        threading.Thread(target=run, name="reviewer", daemon=True).start()


@contextlib.contextmanager
def open_keeper() -> Iterator[tuple[Gatekeeper, BackgroundReviewer | None]]:
    """A Gatekeeper on the real HITL.sh when HITL_LIVE=1 asks for it, else on a local server
    (then with the background reviewer that plays its part)."""
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="hitl-blocking-"))
        ledger = f"sqlite:///{tmp}/ledger.db"  # each review's request id, recorded durably
        reviewer: BackgroundReviewer | None = None
        if os.environ.get("HITL_LIVE") == "1":
            loop_id = os.environ.get("HITL_LOOP_ID")
            if not loop_id:
                raise SystemExit("HITL_LIVE=1: set HITL_LOOP_ID to the loop to ask in")
            client = stack.enter_context(HITLClient())  # reads HITL_API_KEY, HITL_BASE_URL
            keeper = Gatekeeper(client=client, loop_id=loop_id, ledger=ledger, poll_interval=20)
        else:
            clock = FakeClock()
            hitl = stack.enter_context(local_hitl(clock=clock))
            keeper = Gatekeeper(
                client=hitl.client,
                loop_id=hitl.loop_id,
                ledger=ledger,
                clock=clock,  # the keeper and the server share one clock
                poll_interval=0.1,  # sweep often: the server is in-process
            )
            reviewer = BackgroundReviewer(hitl, clock)
        stack.enter_context(keeper)
        yield keeper, reviewer


def show(decision: Decision) -> None:
    who = decision.reviewer.email if decision.reviewer else None
    print(f"  outcome={decision.outcome} approved={decision.approved} reviewer={who}")
    print(f"  reason: {decision.reason}")


def main() -> Result:
    deployed: list[str] = []
    with open_keeper() as (keeper, reviewer):
        print("1. Asking to deploy release 2.3 (blocks until a reviewer decides)")
        if reviewer is not None:
            reviewer.approve_soon()
        decision = keeper.review(
            "Deploy **release 2.3** to production?",
            response_type="single_select",
            response_config={"options": ["Approve", "Reject"]},
            default_response="reject",
            priority="high",
            timeout_seconds=600,
        )
        show(decision)
        if decision.approved:
            deployed.append("release 2.3")  # the guarded action
            print("  deployed release 2.3")

        print("2. Asking to drop the staging database; nobody answers within 60 s")
        if reviewer is not None:
            reviewer.let_it_time_out()
        timed_out = keeper.review(
            "Drop the **staging** database?",  # the default: boolean, default False
            timeout_seconds=60,
        )
        show(timed_out)
        if timed_out.approved:
            deployed.append("dropped staging")  # never reached: a timeout does not approve
        elif timed_out.outcome == "timed_out":
            print("  not dropped: nobody answered in time (not a rejection; ask again later)")
    return Result(approved=decision, timed_out=timed_out, deployed=deployed)


if __name__ == "__main__":
    main()
