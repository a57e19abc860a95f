"""Decision.action: typed next to outcome/approved, which keep their meaning."""

from __future__ import annotations

from typing import Any

import pytest

from hitl_agent.decision import Decision, EditAction, RejectAction
from hitl_agent.models import Request


def _request(**fields: Any) -> Request:
    base = {"id": "r1", "status": "completed", "response_type": "single_select"}
    return Request.model_validate({**base, **fields})


@pytest.mark.parametrize(
    ("fields", "outcome", "approved", "action"),
    [
        ({"response_data": "approve"}, "approved", True, "approve"),
        ({"response_data": "reject"}, "rejected", False, "reject"),
        ({"response_data": "maybe"}, "answered", False, None),
        ({"status": "timeout", "default_response": "reject"}, "timed_out", False, None),
        ({"status": "cancelled"}, "cancelled", False, None),
        ({"response_type": "boolean", "response_data": True}, "approved", True, "approve"),
    ],
)
def test_from_request_sets_the_action(
    fields: dict[str, Any], outcome: str, approved: bool, action: str | None
) -> None:
    decision = Decision.from_request(_request(**fields))
    assert decision is not None
    assert (decision.outcome, decision.approved) == (outcome, approved)
    assert (decision.action.type if decision.action else None) == action


def test_actions_round_trip_as_json() -> None:
    edited = Decision(
        request_id="r",
        status="completed",
        outcome="edited",
        approved=True,
        action=EditAction(args={"amount": 5}),
    )
    again = Decision.model_validate(edited.model_dump(mode="json"))
    assert again.action == EditAction(args={"amount": 5})
    rejected = Decision.model_validate(
        {
            "request_id": "r",
            "status": "completed",
            "outcome": "rejected",
            "action": {"type": "reject", "message": "no"},
        }
    )
    assert rejected.action == RejectAction(message="no")
    old = Decision.model_validate({"request_id": "r", "status": "completed", "outcome": "approved"})
    assert old.action is None  # decisions stored before actions existed still load
