"""An approval-gated tool agent: LangChain's ``create_agent`` with the one-line wrapper.

The agent's ``refund`` tool is ``keeper.require_approval(refund, when=...)``: refunds of $100 or
less run at once, bigger ones wait for a human. ``keeper.ask_human_tool()`` lets the model ask
a person a question. A scripted chat model stands in for the LLM (swap in any tool-calling
model); it proposes three refunds in one turn, then asks the support lead a question, then
sums up.

It shows:

1. ``refund(A-1, $40)``: under the limit, runs at once — no request, no ledger row;
2. ``refund(A-2, $250)``: the thread suspends durably (a checkpoint row and a ledger row);
   the reviewer picks *Approve* and the dispatcher resumes it: the refund runs once, with
   exactly the reviewed arguments;
3. ``refund(A-3, $900)``: the reviewer picks *Reject and say why…* and types the reason in a
   second request; the tool does not run and the model gets an error ``ToolMessage`` carrying
   the reason;
4. ``ask_human``: the model asks a free-text question and gets the reviewer's words back as
   the tool result.

Each resume is one ``dispatcher.poll_once()`` sweep (no webhook needed; mount
``dispatcher.asgi_app`` for callbacks, see starlette_receiver.py).

Run it offline (an in-process local HITL server; the script plays the reviewer through the
reviewer API)::

    python examples/approval_tool_agent.py

or against the real HITL.sh, answering on the phone app (it sweeps every 20 s)::

    HITL_LIVE=1 HITL_API_KEY=... HITL_LOOP_ID=... python examples/approval_tool_agent.py

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
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite import SqliteSaver

from hitl_agent import Gatekeeper
from hitl_agent.langgraph import GraphResumer
from hitl_agent.testing import hitl_or_local as connect  # HITL.sh or offline

REJECT_REASON = "A-3 was already refunded last week (ticket 77)."
LEAD_ANSWER = "Offer a 10% voucher on the next order."


class ScriptedModel(GenericFakeChatModel):
    """Stands in for an LLM: ``create_agent`` binds tools, which a script has no use for."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


def scripted_model() -> ScriptedModel:
    def refund_call(call_id: str, order_id: str, amount: int) -> dict[str, Any]:
        return {"name": "refund", "args": {"order_id": order_id, "amount": amount}, "id": call_id}

    question = "The customer of A-3 is upset. What may I offer them?"
    ask = {"name": "ask_human", "args": {"question": question}, "id": "call_q"}
    turns = [
        AIMessage(
            "",
            tool_calls=[
                refund_call("call_a1", "A-1", 40),
                refund_call("call_a2", "A-2", 250),
                refund_call("call_a3", "A-3", 900),
            ],
        ),
        AIMessage("", tool_calls=[ask]),
        AIMessage("Refunds handled; I will offer the voucher."),
    ]
    return ScriptedModel(messages=iter(turns))


def build_agent(keeper: Gatekeeper, checkpointer: Any, issued: list[tuple[str, int]]) -> Any:
    @tool
    def refund(order_id: str, amount: int) -> str:
        """Refund an order to the customer's card."""
        issued.append((order_id, amount))  # stands in for your payments API
        return f"Refunded ${amount} for order {order_id}."

    tools = [
        keeper.require_approval(refund, when=lambda args: args["amount"] > 100),  # the one line
        keeper.ask_human_tool(),
    ]
    return create_agent(scripted_model(), tools=tools, checkpointer=checkpointer)


def answer_for(request: dict[str, Any]) -> tuple[str, Any]:
    """Offline: (what the request asks, what this script's reviewer answers)."""
    text = request["request_text"]
    if request["response_type"] == "single_select" and "A-2" in text:
        # The wrapper's option values: approve, reject, reject_with_reason (edit, respond).
        return "approve refund A-2 $250?", "approve"
    if request["response_type"] == "single_select" and "A-3" in text:
        return "approve refund A-3 $900?", "reject_with_reason"  # asks again, for the reason
    if "What may I offer" in text:
        return "ask_human: what may I offer?", LEAD_ANSWER
    return "why not? (the follow-up)", REJECT_REASON


@dataclass
class Result:
    tool_results: dict[str, tuple[str, str]]  # tool call id -> (status, content)
    issued: list[tuple[str, int]]  # the refunds that really ran
    answers: list[str]  # what the offline reviewer answered, in order
    requests_created: int | None
    final: str  # the model's last message


def main() -> Result:
    issued: list[tuple[str, int]] = []
    answers: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="hitl-tool-agent-") as tmp,
        connect() as (client, loop_id, reviewer),
        Gatekeeper(client=client, loop_id=loop_id, ledger=f"sqlite:///{tmp}/ledger.db") as keeper,
        contextlib.closing(sqlite3.connect(f"{tmp}/checkpoints.db", check_same_thread=False)) as db,
    ):
        agent = build_agent(keeper, SqliteSaver(db), issued)
        dispatcher = keeper.dispatcher(GraphResumer(agent))
        config: Any = {"configurable": {"thread_id": "support-42"}}

        agent.invoke({"messages": [("user", "Refund orders A-1, A-2 and A-3.")]}, config)
        print(f"refunds run without review: {issued}")
        while agent.get_state(config).next:  # suspended: waiting on one or more reviews
            if reviewer is not None:
                for request in reviewer.queue():
                    asked, value = answer_for(request)
                    reviewer.respond(request["id"], value)
                    answers.append(value)
                    print(f"reviewer: {asked} -> {value!r}")
            else:
                print("  waiting: answer the open request(s) in the HITL.sh app")
            delivered = dispatcher.poll_once()  # resumes the thread with what was decided
            if not delivered:
                if reviewer is not None:
                    raise RuntimeError("answered, yet nothing was resumed")
                time.sleep(20)

        messages = agent.get_state(config).values["messages"]
        results: dict[str, tuple[str, str]] = {
            m.tool_call_id: (m.status, str(m.content))
            for m in messages
            if isinstance(m, ToolMessage)
        }
        requests_created = client.requests.list(loop_id=loop_id).total
    for call_id, (status, content) in results.items():
        print(f"{call_id}: [{status}] {content}")
    print(f"refunds issued: {issued}; review requests: {requests_created}")
    final = str(messages[-1].content)
    print(f"agent: {final}")
    return Result(results, issued, answers, requests_created, final)


if __name__ == "__main__":
    main()
