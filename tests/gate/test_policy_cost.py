"""What each approval policy costs in HITL.sh API calls (the quota is 100 an hour per key).

Counted by the local server, which charges each call to the key like HITL.sh does; the answers
arrive by callback (each answer: one callback, whose truth the receiver GETs once), so no
polling is counted. docs/policies.md quotes these figures.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hitl_harness import CALLBACK_URL, SECRET, Env, make_env, refund_graph, switched_client
from langgraph.checkpoint.memory import InMemorySaver

from hitl_agent.gate import Gatekeeper
from hitl_agent.langgraph import GraphResumer
from hitl_agent.policies import Escalate
from hitl_agent.testing import ScriptedReviewer


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from make_env(tmp_path)


def _run(env: Env, answers: list[tuple[ScriptedReviewer | None, str]], **policy: Any) -> int:
    """The API calls the keeper makes for one gated refund, from the first create to the
    resume (the test's own reads go through another client)."""
    effects: list[str] = []
    with switched_client(env) as (counted, client):
        env.keeper = Gatekeeper(
            client=client,
            loop_id=env.hitl.loop_id,
            ledger=env.ledger,
            callback_url=CALLBACK_URL,
            callback_secret=SECRET,
            clock=env.clock,
        )
        graph = refund_graph(env, InMemorySaver(), effects, **policy)
        env.plug(env.keeper.dispatcher(GraphResumer(graph)))
        graph.invoke({"amount": 5}, {"configurable": {"thread_id": f"t{len(answers)}{policy}"}})
        for who, value in answers:
            (request,) = [
                r for r in env.hitl.client.requests.iter() if r.status in ("pending", "claimed")
            ]
            if who is None:  # nobody answers: the stage times out
                env.clock.advance(int(value) + 1)
            else:
                who.respond(request.id, value)
            env.tick()  # the callback, into the keeper's receiver, which resumes the thread
        assert effects == ["refund 5"]
        return counted.calls


def _bob(env: Env) -> ScriptedReviewer:
    env.hitl.server.add_reviewer("bob@example.com", "bob-token-0123456", [env.hitl.loop_id])
    return ScriptedReviewer(env.hitl.http, "bob-token-0123456", env.hitl.base_url)


def test_calls_per_policy(env: Env) -> None:
    me, bob = env.hitl.reviewer, _bob(env)
    costs = {
        "no policy": _run(env, [(me, "approve")]),
        "quorum=2": _run(env, [(me, "approve"), (bob, "approve")], quorum=2),
        "quorum=2, one repeat": _run(
            env, [(me, "approve"), (me, "approve"), (bob, "approve")], quorum=2
        ),
        "exclude, one void answer": _run(
            env, [(bob, "approve"), (me, "approve")], exclude=["bob@example.com"]
        ),
        "escalate once": _run(
            env, [(None, "600"), (me, "approve")], escalate=[Escalate(after=600)]
        ),
    }
    print(costs)
    # Each request: one create and one GET of its answer (the callback's truth).
    assert costs == {
        "no policy": 2,
        "quorum=2": 4,
        "quorum=2, one repeat": 6,
        "exclude, one void answer": 4,
        "escalate once": 4,
    }
