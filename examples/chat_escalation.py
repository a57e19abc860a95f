"""A support chat bot that escalates to a human with ``keeper.ask_human_tool()``.

The bot is LangChain's ``create_agent`` with one tool, ``ask_human``; a small rule-based chat
model stands in for the LLM (swap in any tool-calling model). When a customer asks something
only staff can answer, the bot calls ``ask_human(question, response_type, options)``; the
thread suspends durably until a person answers, and the bot passes their answer on. The tool
asks with a short deadline (``timeout_seconds=60``): a chat customer should not wait long.

It shows three chats:

1. a free-text question (``response_type="text"``): the staff member's words come back as
   the tool result;
2. a choice (``single_select`` over the bot's options): the chosen option comes back exactly
   as the model wrote it;
3. a question nobody answers within 60 s: the tool result is an error saying no one answered
   (never a made-up answer), and the bot tells the customer so.

Run it offline (an in-process local HITL server; the script plays the staff member, and a
``FakeClock`` plus one server scheduler pass make the 60 s pass instantly)::

    python examples/chat_escalation.py

or against the real HITL.sh: answer the first two questions on the phone app and ignore the
third (it times out after 60 s; the script sweeps every 15 s)::

    HITL_LIVE=1 HITL_API_KEY=... HITL_LOOP_ID=... python examples/chat_escalation.py

``HITL_LIVE=1`` is the switch: an exported ``HITL_API_KEY`` alone (as after
``hitl-agent serve``) still runs offline. ``HITL_BASE_URL`` sends the live run elsewhere,
e.g. to a ``hitl-agent serve`` whose console you answer in.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from langchain.agents import create_agent
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.checkpoint.sqlite import SqliteSaver

from hitl_agent import Gatekeeper, HITLClient
from hitl_agent.langgraph import GraphResumer
from hitl_agent.testing import FakeClock, LocalHITL, local_hitl

CHATS = {
    "chat-1": "Can I still return the boots I bought 45 days ago?",
    "chat-2": "Which plan should I take for a team of 12?",
    "chat-3": "Can your lawyer review my contract today?",
}
PLANS = ["Starter", "Team", "Enterprise"]
STAFF_ANSWERS: dict[str, Any] = {
    "chat-1": "Yes: we extend returns to 60 days for boots. Use the label in your account.",
    "chat-2": "Team",  # taps the option labelled Team; the bot gets "Team", as it wrote it
}
"""Offline: what the staff member answers in each chat (chat-3: nobody answers)."""


class SupportBot(BaseChatModel):
    """Stands in for an LLM: escalates what it cannot answer, then relays the answer."""

    @property
    def _llm_type(self) -> str:
        return "support-bot-script"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self  # a script needs no tool schemas

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            if last.status == "error":
                reply = (
                    "I'm sorry: nobody from the team could answer right now. I have logged "
                    "your question and someone will email you."
                )
            else:
                reply = f"I checked with the team: {last.content}"
            return _result(AIMessage(reply))
        question = str(last.content)
        args: dict[str, Any] = {"question": f"A customer asks: {question}"}
        if "plan" in question:
            args |= {"response_type": "single_select", "options": PLANS}
        call = {"name": "ask_human", "args": args, "id": f"ask_{len(messages)}"}
        return _result(AIMessage("Let me check with a colleague.", tool_calls=[call]))


def _result(message: AIMessage) -> ChatResult:
    return ChatResult(generations=[ChatGeneration(message=message)])


@dataclass
class Chat:
    reply: str  # the bot's last message to the customer
    tool_status: str  # the ask_human result: success or error
    tool_result: str


@dataclass
class Result:
    chats: dict[str, Chat]
    requests: dict[str, str]  # thread id -> the request's final status on the server


def live() -> bool:
    """The real HITL.sh only when asked for: an exported HITL_API_KEY alone stays offline."""
    return os.environ.get("HITL_LIVE") == "1"


@contextlib.contextmanager
def open_keeper() -> Iterator[tuple[Gatekeeper, LocalHITL | None, FakeClock | None]]:
    """A Gatekeeper on the real HITL.sh when HITL_LIVE=1 asks for it, else on a local server
    that shares a FakeClock with the keeper."""
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="hitl-chat-"))
        ledger = f"sqlite:///{tmp}/ledger.db"
        if live():
            loop_id = os.environ.get("HITL_LOOP_ID")
            if not loop_id:
                raise SystemExit("HITL_LIVE=1: set HITL_LOOP_ID to the loop to ask in")
            client = stack.enter_context(HITLClient())  # reads HITL_API_KEY, HITL_BASE_URL
            keeper = Gatekeeper(client=client, loop_id=loop_id, ledger=ledger)
            yield stack.enter_context(keeper), None, None
        else:
            clock = FakeClock()
            hitl = stack.enter_context(local_hitl(clock=clock))
            keeper = Gatekeeper(
                client=hitl.client, loop_id=hitl.loop_id, ledger=ledger, clock=clock
            )
            yield stack.enter_context(keeper), hitl, clock


def main() -> Result:
    with (
        open_keeper() as (keeper, hitl, clock),
        contextlib.closing(sqlite3.connect(":memory:", check_same_thread=False)) as db,
    ):
        ask = keeper.ask_human_tool(timeout_seconds=60)  # a chat customer is waiting
        bot = create_agent(SupportBot(), tools=[ask], checkpointer=SqliteSaver(db))
        dispatcher = keeper.dispatcher(GraphResumer(bot))

        def config(thread_id: str) -> Any:
            return {"configurable": {"thread_id": thread_id}}

        request_of: dict[str, str] = {}
        for thread_id, question in CHATS.items():
            print(f"{thread_id} customer: {question}")
            result = bot.invoke({"messages": [HumanMessage(question)]}, config(thread_id))
            (interrupt,) = result["__interrupt__"]  # suspended until staff answer
            request_of[thread_id] = interrupt.value["hitl_agent"]["request_id"]
            print(f"{thread_id} bot: {result['messages'][-1].content} (escalated)")

        if hitl is not None and clock is not None:
            for thread_id, answer in STAFF_ANSWERS.items():
                request_id = request_of[thread_id]
                hitl.reviewer.respond(
                    request_id, staff_value(hitl.reviewer.get(request_id), answer)
                )
            dispatcher.poll_once()  # chat-1 and chat-2 resume with the answers
            clock.advance(61)  # chat-3: a minute passes; nobody answered
            hitl.tick_sync()  # the server's scheduler pass: chat-3's request times out
        wait_for(
            lambda: not any(bot.get_state(config(t)).next for t in CHATS), dispatcher.poll_once
        )

        chats: dict[str, Chat] = {}
        for thread_id in CHATS:
            messages = bot.get_state(config(thread_id)).values["messages"]
            tool = next(m for m in messages if isinstance(m, ToolMessage))
            chats[thread_id] = Chat(str(messages[-1].content), tool.status, str(tool.content))
            print(f"{thread_id} bot: {chats[thread_id].reply}")
        requests = {t: keeper.client.requests.get(r).status for t, r in request_of.items()}
    return Result(chats, requests)


def staff_value(request: dict[str, Any], answer: str) -> Any:
    """Offline: the value the reviewer app sends for ``answer`` (a select's option by its
    label: the wrapper owns the values, the model's words are the labels)."""
    for option in (request.get("response_config") or {}).get("options") or []:
        if isinstance(option, dict) and option.get("label") == answer:
            return option["value"]
    return answer


def wait_for(done: Callable[[], bool], sweep: Callable[[], Sequence[Any]]) -> None:
    """Sweep until ``done()``; offline everything is decided, so one sweep does."""
    while not done():
        if not sweep() and not live():
            raise RuntimeError("decided, yet not resumed")
        if not done():
            time.sleep(15 if live() else 0)


if __name__ == "__main__":
    main()
