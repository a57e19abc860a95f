"""A first-form answer that is no option of the form is refused, and the tool result says so
(not "a reviewer rejected"): issue 20, M5."""

from __future__ import annotations

from hitl_agent.decision import Decision
from hitl_agent.langchain._flow import ApprovalFlow, Ask, Verdict
from hitl_agent.langchain._render import ToolCallView
from hitl_agent.models import Request


def test_an_answer_outside_the_tool_form_is_refused_not_rejected() -> None:
    flow = ApprovalFlow(
        view=ToolCallView(tool="refund", args={"order_id": "A1", "amount": 5}),
        properties={"order_id": {"type": "string"}, "amount": {"type": "integer"}},
        validate=lambda args: args,
    )
    ask = flow.first()
    assert isinstance(ask, Ask)
    request = Request.model_validate(
        {
            "id": "r1",
            "status": "completed",
            "response_type": ask.kwargs["response_type"],
            "response_config": ask.kwargs["response_config"],
            "response_data": "yes",
        }
    )
    decision = Decision.from_request(request, approve_values=ask.kwargs["approve_values"])
    assert decision is not None
    verdict = flow.next(ask, decision)
    assert isinstance(verdict, Verdict) and not verdict.run
    assert "not one of the form's options" in verdict.message
    assert "rejected this call" not in verdict.message
