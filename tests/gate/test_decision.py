"""Decision.from_request: the one fail-closed interpretation (property-tested)."""

from __future__ import annotations

from typing import Any

import pytest
from hitl_harness import Env
from hypothesis import given, settings
from hypothesis import strategies as st

from hitl_agent.decision import DEFAULT_APPROVE_VALUES, Decision
from hitl_agent.models import STATUS_ALIASES, Request

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
TYPES = st.sampled_from(
    [
        "boolean",
        "single_select",
        "multi_select",
        "text",
        "rating",
        "number",
        "editable_text",
        "mystery",
        None,
    ]
)
STATUSES = st.sampled_from(
    ["pending", "claimed", "completed", "timeout", "cancelled", "failed", "answered", ""]
)


def _request(status: str, response_type: str | None, data: Any, default: Any = None) -> Request:
    return Request.model_validate(
        {
            "id": "r1",
            "status": status,
            "response_type": response_type,
            "response_data": data,
            "default_response": default,
        }
    )


def _explicit_approval(status: str, response_type: str | None, data: Any) -> bool:
    if status != "completed":
        return False
    if isinstance(data, dict):
        if response_type == "editable_text":
            text = data.get("revised_text")
            return isinstance(text, str) and bool(text.strip())
        data = data.get("boolean", data.get("selected_value", data.get("value")))
    if response_type in ("boolean", None) and (data is True or data in ("true", "True", "TRUE")):
        return True
    if response_type == "boolean" and isinstance(data, str) and data.lower() == "true":
        return True
    if response_type == "single_select" and isinstance(data, str):
        return data.strip().lower() in DEFAULT_APPROVE_VALUES
    if response_type == "editable_text" and isinstance(data, str):
        return bool(data.strip())
    return False


@settings(max_examples=400, deadline=None)
@given(status=STATUSES, response_type=TYPES, data=JSON, default=JSON)
def test_only_an_explicit_approving_answer_approves(
    status: str, response_type: str | None, data: Any, default: Any
) -> None:
    decision = Decision.from_request(_request(status, response_type, data, default))
    meaning = STATUS_ALIASES.get(status, status)  # issue 22 W2: "answered" is "completed"...
    if meaning not in ("completed", "timeout", "cancelled"):
        assert decision is None  # keep waiting
        return
    assert decision is not None
    if decision.approved:
        assert _explicit_approval(meaning, response_type, data), decision
    assert decision.reason
    # Round-trips as the checkpointed resume value.
    assert Decision.model_validate_json(decision.model_dump_json()) == decision


@settings(max_examples=200, deadline=None)
@given(response_type=TYPES, default=JSON | st.sampled_from(["approve", True, "yes"]))
def test_timeout_never_approves_without_the_opt_in(response_type: str | None, default: Any) -> None:
    decision = Decision.from_request(_request("timeout", response_type, None, default))
    assert decision is not None
    assert decision.outcome == "timed_out" and not decision.approved and decision.used_default
    assert "timed out" in decision.reason


@pytest.mark.parametrize(
    ("response_type", "data", "outcome", "approved"),
    [
        ("boolean", True, "approved", True),
        ("boolean", {"boolean": True, "boolean_label": "Yes"}, "approved", True),
        ("boolean", False, "rejected", False),
        ("single_select", "Approve", "approved", True),
        ("single_select", {"selected_value": "approve"}, "approved", True),
        ("single_select", "reject", "rejected", False),
        ("single_select", "needs_changes", "answered", False),
        ("multi_select", ["approve"], "answered", False),
        ("text", "approve", "answered", False),
        ("rating", 5, "answered", False),
        ("number", 250, "answered", False),
        ("editable_text", {"revised_text": "Hi", "was_edited": True}, "edited", True),
        ("editable_text", "  ", "rejected", False),
        ("boolean", {"garbage": 1}, "rejected", False),
        ("single_select", 42, "rejected", False),
        ("boolean", None, "rejected", False),
    ],
)
def test_completed_answers(response_type: str, data: Any, outcome: str, approved: bool) -> None:
    decision = Decision.from_request(_request("completed", response_type, data))
    assert decision is not None
    assert (decision.outcome, decision.approved) == (outcome, approved)


def test_timeout_opt_in_approves_only_an_approving_default() -> None:
    approving = _request("timeout", "single_select", None, "approve")
    rejecting = _request("timeout", "single_select", None, "reject")
    assert Decision.from_request(approving, approve_on_timeout=True).approved  # type: ignore[union-attr]
    assert not Decision.from_request(rejecting, approve_on_timeout=True).approved  # type: ignore[union-attr]
    assert not Decision.from_request(approving).approved  # type: ignore[union-attr]


def test_cancelled_and_custom_approve_values() -> None:
    cancelled = Decision.from_request(_request("cancelled", "boolean", True))
    assert cancelled is not None and cancelled.outcome == "cancelled" and not cancelled.approved
    ship = _request("completed", "single_select", "ship_it")
    assert not Decision.from_request(ship).approved  # type: ignore[union-attr]
    assert Decision.from_request(ship, approve_values={"ship_it"}).approved  # type: ignore[union-attr]


def test_fail_closed_decision() -> None:
    decision = Decision.fail_closed("r9", "API down")
    assert decision.outcome == "timed_out" and not decision.approved
    assert "failed closed" in decision.reason


def test_idempotency_key_is_stable_for_a_decision_and_distinct_between_decisions() -> None:
    first = Decision(request_id="a" * 24, status="completed", outcome="approved", approved=True)
    replayed = Decision.model_validate(first.model_dump(mode="json"))
    other = Decision(request_id="b" * 24, status="completed", outcome="approved", approved=True)

    assert replayed.idempotency_key == first.idempotency_key
    assert other.idempotency_key != first.idempotency_key
    assert first.request_id in first.idempotency_key


def test_a_review_can_name_its_own_reject_values(env: Env) -> None:
    spec = env.keeper.spec(
        "Publish this post?",
        response_type="single_select",
        response_config={"options": ["Publish", "Remove"]},
        default_response="remove",
        approve_values=["publish"],
        reject_values=["remove"],
    )
    assert spec.reject_values == ("remove",) and spec.approve_values == ("publish",)
    plain = env.keeper.spec(
        "Publish this post?",
        response_type="single_select",
        response_config={"options": ["Publish", "Remove"]},
        default_response="remove",
    )
    assert "remove" not in plain.reject_values  # without it, "Remove" is only "answered"


@pytest.mark.parametrize(
    ("stored", "default", "approved"),
    [
        ("approve", "reject", False),  # stored data says approve, the default rejects
        ({"selected_value": "approve"}, "reject", False),
        ("reject", "approve", True),  # the default decides, whatever is stored
        (None, "approve", True),
        (None, "reject", False),
    ],
)
def test_a_timeout_is_judged_by_its_default_alone(
    stored: Any, default: str, approved: bool
) -> None:
    request = _request("timeout", "single_select", stored, default)
    decision = Decision.from_request(request, approve_on_timeout=True)
    assert decision is not None and decision.outcome == "timed_out"
    assert decision.approved is approved
    assert decision.value == default and decision.used_default
    assert ("the default approves" in decision.reason) is approved
    assert "timed out" in decision.reason or approved
