"""LangGraph integration: durable reviews inside nodes and tools, and the resumer.

::

    from hitl_agent.langgraph import GraphResumer
    def refund(state):
        decision = keeper.review(f"Refund {state['amount']}?")   # interrupts durably
        ...
    dispatcher = keeper.dispatcher(GraphResumer(graph))
    # or, for graphs served by a LangGraph Server:
    dispatcher = keeper.dispatcher(RemoteGraphResumer("http://127.0.0.1:2024", "agent"))
"""

from typing import TYPE_CHECKING, Any

from .._exceptions import RemoteResumeError
from ..protocol import DECISIONS_KEY, PAYLOAD_KEY, resume_value
from ._node import review_node
from ._resumer import GraphResumer
from ._routing import tools_condition

if TYPE_CHECKING:
    from .remote import RemoteGraphResumer


def __getattr__(name: str) -> Any:
    # The remote resumer needs the `remote` extra (langgraph-sdk): loaded on first use, so
    # GraphResumer works without it (its error, RemoteResumeError, needs no extra).
    if name == "RemoteGraphResumer":
        from . import remote

        return getattr(remote, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DECISIONS_KEY",
    "PAYLOAD_KEY",
    "GraphResumer",
    "RemoteGraphResumer",
    "RemoteResumeError",
    "resume_value",
    "review_node",
    "tools_condition",
]
