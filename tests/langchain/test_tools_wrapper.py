"""The wrapper is the same tool to the model (name, description, schema), in every form of
``require_approval``; ``when=`` lets calls through with no request and no ledger row."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hitl_harness import Env
from langchain_core.tools import BaseTool, StructuredTool, tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, Field
from tools_support import drive

from hitl_agent.langchain import ApprovalTool


def _same_to_the_model(wrapped: BaseTool, bare: BaseTool) -> None:
    assert isinstance(wrapped, ApprovalTool)
    assert wrapped.name == bare.name and wrapped.description == bare.description
    assert convert_to_openai_tool(wrapped) == convert_to_openai_tool(bare)
    assert json.dumps(wrapped.tool_call_schema.model_json_schema(), sort_keys=True) == json.dumps(
        bare.tool_call_schema.model_json_schema(), sort_keys=True
    )
    assert wrapped.args == bare.args


class RefundArgs(BaseModel):
    order_id: str = Field(description="The order.")
    amount: int = Field(gt=0, description="Cents.")


def test_every_form_keeps_the_schema(env: Env) -> None:
    @tool
    def refund(order_id: str, amount: int) -> str:
        """Refund an order."""
        return "ok"

    _same_to_the_model(env.keeper.require_approval(refund), refund)

    def plain(order_id: str, amount: int = 5) -> str:
        """Refund, as a plain function."""
        return "ok"

    _same_to_the_model(env.keeper.require_approval(plain), StructuredTool.from_function(plain))

    @env.keeper.require_approval
    def bare_decorated(order_id: str) -> str:
        """Decorated without arguments."""
        return "ok"

    assert isinstance(bare_decorated, ApprovalTool) and bare_decorated.name == "bare_decorated"

    @env.keeper.require_approval(when=lambda args: args["amount"] > 100, priority="high")
    def refund_big(order_id: str, amount: int) -> str:
        """Decorated with arguments."""
        return "ok"

    assert isinstance(refund_big, ApprovalTool) and refund_big.priority == "high"
    _same_to_the_model(refund_big, StructuredTool.from_function(refund_big.inner.func))  # type: ignore[attr-defined]

    modelled = StructuredTool.from_function(
        lambda order_id, amount: "ok", name="refund_m", description="M.", args_schema=RefundArgs
    )
    _same_to_the_model(env.keeper.require_approval(modelled), modelled)
    with pytest.raises(TypeError, match="already requires approval"):
        env.keeper.require_approval(env.keeper.require_approval(modelled))


def test_when_false_runs_with_no_request_and_no_ledger_row(env: Env) -> None:
    seen: list[dict[str, Any]] = []

    def policy(args: dict[str, Any]) -> bool:
        seen.append(args)
        return bool(args["amount"] > 100)

    @env.keeper.require_approval(when=policy)
    def refund(order_id: str, amount: int) -> str:
        """Refund an order."""
        return f"refunded {amount}"

    call = {
        "type": "tool_call",
        "id": "small",
        "name": "refund",
        "args": {"order_id": "A", "amount": 5},
    }
    message = refund.invoke(call)
    assert message.content == "refunded 5" and message.tool_call_id == "small"
    assert refund.invoke({"order_id": "A", "amount": 7}) == "refunded 7"
    assert env.requests() == [] and env.ledger.list_open() == []
    assert seen == [{"order_id": "A", "amount": 5}, {"order_id": "A", "amount": 7}]
    # Over the limit: a review.
    big = {**call, "id": "big", "args": {"order_id": "A", "amount": 500}}
    result = drive(env, lambda: refund.invoke(big), lambda r: "approve")
    assert result.content == "refunded 500" and len(env.requests()) == 1


def test_a_policy_that_raises_asks_a_reviewer(env: Env) -> None:
    @env.keeper.require_approval(when=lambda args: args["missing"] > 1)
    def refund(order_id: str) -> str:
        """Refund an order."""
        return "refunded"

    result = drive(env, lambda: refund.invoke({"order_id": "A"}), lambda r: "reject")
    assert result.startswith("Not run: a reviewer rejected") and len(env.requests()) == 1


def test_the_reviewer_form_owns_its_option_values(env: Env) -> None:
    """'Yes, refund' style labels never decide: the values are the wrapper's own."""

    @env.keeper.require_approval(allow_edit=True, allow_respond=True)
    def refund(order_id: str) -> str:
        """Refund an order."""
        return "refunded"

    captured: list[Any] = []

    def reviewer(request: Any) -> str:
        captured.append(request)
        return "approve"

    assert drive(env, lambda: refund.invoke({"order_id": "A"}), reviewer) == "refunded"
    (request,) = captured
    assert request.response_type == "single_select"
    values = [o["value"] for o in request.response_config["options"]]
    assert values == ["approve", "reject", "reject_with_reason", "edit", "respond"]
    assert request.default_response == "reject"
    assert "hitl_agent_args_hash" not in json.dumps(request.context or {})
    assert "lg|" not in (request.request_text or "") and "blk|" not in (request.request_text or "")


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"priority": "urgent"}, "priority"), ({"timeout_seconds": 5}, "timeout")]
)
def test_bad_settings_fail_when_wrapping(env: Env, kwargs: dict[str, Any], field: str) -> None:
    from hitl_agent import ConfigError

    @tool
    def refund(order_id: str) -> str:
        """Refund an order."""
        return "refunded"

    with pytest.raises(ConfigError, match=field):
        env.keeper.require_approval(refund, **kwargs)
    with pytest.raises(ConfigError, match=field):
        env.keeper.ask_human_tool(**kwargs)
