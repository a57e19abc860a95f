"""Issue 22 W2: every documented or client-observed status has one meaning.

HITL.sh's API reference has ``pending, claimed, completed, timeout, cancelled``; a docs snippet
has ``timed_out``; HITL.sh's n8n node v2 treats ``answered``, ``resolved`` and ``failed`` as
final (reference hitl-2026.md). Before, those four were kept as unknown statuses: never
terminal, so a wait on one ran to its deadline and a reviewer's yes was lost.
"""

from __future__ import annotations

from typing import Any

import pytest

from hitl_agent import Decision, Request
from hitl_agent.models import STATUS_ALIASES

RID = "65f1234567890abcdef12348"


def _request(status: str, **fields: Any) -> Request:
    body: dict[str, Any] = {
        "id": RID,
        "status": status,
        "response_type": "single_select",
        "response_config": {"options": ["Approve", "Reject"]},
        "default_response": "reject",
    }
    body.update(fields)
    return Request.from_data({"request": body})


# status -> (final, approving when the reviewer's answer is "approve")
MEANINGS: dict[str, tuple[bool, bool]] = {
    "pending": (False, False),
    "claimed": (False, False),
    "completed": (True, True),
    "answered": (True, True),
    "resolved": (True, True),
    "timeout": (True, False),
    "timed_out": (True, False),
    "cancelled": (True, False),
    "failed": (True, False),
}


def test_every_alias_has_a_meaning_in_the_table() -> None:
    assert set(STATUS_ALIASES) <= set(MEANINGS)


@pytest.mark.parametrize("status", sorted(MEANINGS))
def test_each_status_is_final_or_not_and_approving_or_not(status: str) -> None:
    final, approving = MEANINGS[status]
    request = _request(status, response_data="approve")
    assert request.is_terminal is final
    decision = Decision.from_request(request)
    if not final:
        assert decision is None
        return
    assert decision is not None
    assert decision.approved is approving
    assert decision.request_id == RID


@pytest.mark.parametrize("status", ["answered", "resolved"])
def test_answered_and_resolved_read_the_answer_like_completed(status: str) -> None:
    rejected = Decision.from_request(_request(status, response_data="reject"))
    assert rejected is not None and (rejected.status, rejected.outcome) == ("completed", "rejected")
    wrapped = Decision.from_request(_request(status, response_data={"selected_value": "approve"}))
    assert wrapped is not None and wrapped.approved
    empty = Decision.from_request(_request(status, response_data=None))
    assert empty is not None and not empty.approved  # final without an answer: fail closed


def test_timed_out_is_a_timeout_judged_by_the_default() -> None:
    request = _request("timed_out", default_response="approve", response_data="approve")
    assert (request.status, request.reported_status) == ("timeout", "timed_out")
    closed = Decision.from_request(request)
    assert closed is not None and closed.outcome == "timed_out" and not closed.approved
    opted = Decision.from_request(request, approve_on_timeout=True)
    assert opted is not None and opted.approved and opted.used_default


def test_failed_never_approves_and_says_it_failed() -> None:
    decision = Decision.from_request(_request("failed", response_data="approve"))
    assert decision is not None
    assert (decision.status, decision.outcome) == ("cancelled", "cancelled")
    assert not decision.approved
    assert "failed" in decision.reason


def test_case_and_whitespace_of_a_known_status_are_tolerated() -> None:
    request = _request(" Completed ", response_data="approve")
    assert (request.status, request.reported_status) == ("completed", " Completed ")
    assert request.is_terminal


@pytest.mark.parametrize("status", ["expired", "approved", "done", "COMPLETED!", "", "rejected"])
def test_unknown_statuses_stay_open_and_never_approve(status: str) -> None:
    # Fail closed: an unknown status is not final here (the poller denies at the deadline),
    # even with an approving answer beside it.
    request = _request(status, response_data="approve")
    assert request.status == status and request.reported_status is None
    assert not request.is_terminal
    assert Decision.from_request(request) is None


def test_the_documented_statuses_report_no_other_spelling() -> None:
    for status in ("pending", "claimed", "completed", "timeout", "cancelled"):
        assert _request(status).reported_status is None
