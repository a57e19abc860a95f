"""``review_node``: a prebuilt node that asks a human and routes on the answer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from langgraph.types import Command

    from ..decision import Decision

__all__ = ["Reviewer", "review_node"]


class Reviewer(Protocol):
    """What the node needs of a :class:`~hitl_agent.Gatekeeper`: its ``review``. Typed as a
    protocol so that this adapter does not import the gate (the gate imports the adapter)."""

    @property
    def review(self) -> Callable[..., Decision]: ...


def review_node(
    keeper: Reviewer,
    *,
    build: Callable[[Any], Mapping[str, Any]],
    approved: str,
    rejected: str,
    state_key: str = "hitl_decision",
) -> Callable[[Any], Command[str]]:
    """A node that reviews what ``build(state)`` describes and routes on the decision.

    Args:
        keeper: the Gatekeeper to review with.
        build: state -> ``keeper.review`` keyword arguments (``request_text`` required).
        approved: the node to go to when the decision approves.
        rejected: the node to go to otherwise (rejected, timed out, cancelled, ...).
        state_key: the state key the decision (JSON) is written to.

    Example::

        builder.add_node("review", keeper.review_node(
            build=lambda s: {"request_text": f"Refund {s['amount']}?", "priority": "high"},
            approved="refund", rejected="explain"))
    """

    # Imported here so that ``import hitl_agent`` does not load LangGraph.
    from langgraph.types import Command

    def node(state: Any) -> Command[str]:
        kwargs = dict(build(state))
        decision = keeper.review(kwargs.pop("request_text"), **kwargs)
        return Command(
            goto=approved if decision.approved else rejected,
            update={state_key: decision.model_dump(mode="json")},
        )

    return node
