"""RemoteGraphResumer against a real LangGraph API server (``langgraph dev``, in-memory).

Each test starts a thread on the server through ``langgraph-sdk``; the graph's ``gate`` node
asks the local HITL server through a Gatekeeper and interrupts; the reviewer answers over the
reviewer API; the test's own Gatekeeper (same ledger, same HITL API) builds the dispatcher
whose resolver resumes the remote thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from typing import Any

import pytest
from conftest import Remote
from langgraph_sdk import get_client, get_sync_client
from langgraph_sdk.client import SyncLangGraphClient
from langgraph_sdk.errors import NotFoundError

from hitl_agent.decision import Decision
from hitl_agent.gate import Gatekeeper
from hitl_agent.langgraph import PAYLOAD_KEY
from hitl_agent.langgraph.remote import RemoteGraphResumer, RemoteResumeError
from hitl_agent.ledger import ReviewRecord

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def sdk(remote: Remote) -> Any:
    client = get_sync_client(url=remote.url, api_key=None)
    yield client
    client.close()


@pytest.fixture
def keeper(remote: Remote) -> Any:
    with remote.keeper() as gatekeeper:
        yield gatekeeper


def _park(sdk: SyncLangGraphClient, assistant: str, amount: int) -> tuple[str, dict[str, Any]]:
    """Start a thread; return its id and the one interrupt it parked on."""
    thread_id = str(sdk.threads.create()["thread_id"])
    result = sdk.runs.wait(thread_id, assistant, input={"amount": amount})
    assert isinstance(result, dict)
    (interrupt,) = result["__interrupt__"]
    return thread_id, interrupt


def _row(keeper: Gatekeeper, interrupt: dict[str, Any]) -> ReviewRecord:
    row = keeper.ledger.get_by_request_id(interrupt["value"][PAYLOAD_KEY]["request_id"])
    assert row is not None
    return row


def _runs(sdk: SyncLangGraphClient, thread_id: str) -> list[str]:
    return [run["status"] for run in sdk.runs.list(thread_id)]


def test_poll_resumes_the_remote_thread_and_the_action_runs_once(
    remote: Remote, sdk: SyncLangGraphClient, keeper: Gatekeeper
) -> None:
    thread_id, interrupt = _park(sdk, "refund", 250)
    row = _row(keeper, interrupt)
    assert row.thread_id == thread_id
    assert row.checkpoint_ns is not None and row.checkpoint_ns.startswith("gate:")
    resumer = RemoteGraphResumer(remote.url, "refund", client=sdk)
    assert resumer.target(row) == interrupt["id"]

    dispatcher = keeper.dispatcher(resumer)
    assert dispatcher.poll_once() == []  # not answered yet: nothing resumed
    assert _runs(sdk, thread_id) == ["success"]
    assert row.request_id is not None
    remote.hitl.reviewer.respond(row.request_id, "approve")

    delivered = dispatcher.poll_once()
    assert [d.outcome for d in delivered] == ["approved"]
    state = sdk.threads.get_state(thread_id)
    assert isinstance(state["values"], dict)
    assert state["values"]["done"] is True and list(state["next"]) == []
    assert Decision.model_validate(state["values"]["decision"]).approved
    assert sdk.threads.get(thread_id)["status"] == "idle"
    assert remote.effects_of(thread_id) == ["gate", "gate", "refund 250"]
    assert _runs(sdk, thread_id) == ["success", "success"]
    done = keeper.ledger.get_by_request_id(row.request_id)
    assert done is not None and done.state == "resumed"

    # A later sweep, a manual resolve and a direct resume of the finished thread: no-ops.
    assert dispatcher.poll_once() == []
    assert dispatcher.resolve(row.request_id) == []
    assert resumer.target(row) is None
    assert resumer.resume(row, delivered) is False
    assert _runs(sdk, thread_id) == ["success", "success"]
    assert remote.effects_of(thread_id) == ["gate", "gate", "refund 250"]

    # The thread finished after the decision: a row still open for it can be closed; a
    # decision newer than the last checkpoint, or an unknown thread, cannot tell.
    assert done.decided_at is not None
    assert resumer.finished(done) is True
    assert resumer.finished(dataclasses.replace(done, decided_at=time.time() + 3600)) is False
    assert resumer.finished(dataclasses.replace(done, thread_id=str(uuid.uuid4()))) is False


def test_an_unknown_thread_is_not_created_nor_run(remote: Remote, sdk: SyncLangGraphClient) -> None:
    resumer = RemoteGraphResumer(remote.url, "refund", client=sdk)
    ghost = str(uuid.uuid4())
    record = ReviewRecord(
        key=f"lg|{ghost}|gate:{uuid.uuid4()}|node|0",
        state="decided",
        request_id="r-ghost",
        thread_id=ghost,
        checkpoint_ns=f"gate:{uuid.uuid4()}",
    )
    approve = Decision(request_id="r-ghost", status="completed", outcome="approved", approved=True)
    threads_before = sdk.threads.count()

    assert resumer.resume(record, [approve]) is False

    async def aresume() -> bool:
        aresumer = RemoteGraphResumer(
            remote.url, "refund", aclient=get_client(url=remote.url, api_key=None)
        )
        try:
            return await aresumer.aresume(record, [approve])
        finally:
            await aresumer.aclose()

    assert asyncio.run(aresume()) is False
    with pytest.raises(NotFoundError):
        sdk.threads.get(ghost)
    assert sdk.threads.count() == threads_before
    assert remote.effects_of(ghost) == []
    # A row without a thread (blocking mode) never reaches the server either.
    assert resumer.resume(ReviewRecord(key="blk|x", state="decided"), [approve]) is False


def test_a_thread_that_is_not_waiting_in_the_gate_gets_no_run(
    remote: Remote, sdk: SyncLangGraphClient, keeper: Gatekeeper
) -> None:
    resumer = RemoteGraphResumer(remote.url, "refund", client=sdk)
    approve = Decision(request_id="r", status="completed", outcome="approved", approved=True)

    # A thread that exists but never ran.
    idle = str(sdk.threads.create()["thread_id"])
    fresh = ReviewRecord(
        key="k", state="decided", request_id="r", thread_id=idle, checkpoint_ns="gate:x"
    )
    assert resumer.resume(fresh, [approve]) is False
    assert _runs(sdk, idle) == []
    assert remote.effects_of(idle) == []

    # A waiting thread, but the row names another task (checkpoint namespace).
    thread_id, interrupt = _park(sdk, "refund", 3)
    row = _row(keeper, interrupt)
    other = ReviewRecord(
        key=row.key,
        state="decided",
        request_id=row.request_id,
        thread_id=thread_id,
        checkpoint_ns=f"gate:{uuid.uuid4()}",
    )
    assert resumer.resume(other, [approve]) is False
    assert _runs(sdk, thread_id) == ["success"]
    assert remote.effects_of(thread_id) == ["gate"]
    assert sdk.threads.get(thread_id)["status"] == "interrupted"


def test_a_server_error_raises_and_the_dispatcher_retries(
    remote: Remote, sdk: SyncLangGraphClient, keeper: Gatekeeper
) -> None:
    thread_id, interrupt = _park(sdk, "refund", 40)
    row = _row(keeper, interrupt)
    assert row.request_id is not None
    approve = Decision(
        request_id=row.request_id, status="completed", outcome="approved", approved=True
    )
    wrong = RemoteGraphResumer(remote.url, "no-such-assistant", client=sdk)
    with pytest.raises(RemoteResumeError, match=r"HTTP 4\d\d") as raised:
        wrong.resume(row, [approve])
    assert raised.value.status_code in (404, 422)
    assert _runs(sdk, thread_id) == ["success"]
    assert sdk.threads.get(thread_id)["status"] == "interrupted"

    remote.hitl.reviewer.respond(row.request_id, "approve")
    failing = keeper.dispatcher(wrong)
    assert failing.poll_once() == []
    assert failing.resolver.stats["resume_failed"] == 1
    released = keeper.ledger.get_by_request_id(row.request_id)
    assert released is not None and released.state == "decided"  # claim released for a retry
    assert remote.effects_of(thread_id) == ["gate"]

    working = keeper.dispatcher(RemoteGraphResumer(remote.url, "refund", client=sdk))
    assert [d.outcome for d in working.poll_once()] == ["approved"]
    assert remote.effects_of(thread_id) == ["gate", "gate", "refund 40"]


def test_async_poll_delivers_a_rejection_and_nothing_runs(
    remote: Remote, sdk: SyncLangGraphClient, keeper: Gatekeeper, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("LANGGRAPH_API_KEY", "LANGSMITH_API_KEY", "LANGCHAIN_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    thread_id, interrupt = _park(sdk, "refund", 9)
    row = _row(keeper, interrupt)
    assert row.request_id is not None
    remote.hitl.reviewer.respond(row.request_id, "reject")

    async def poll() -> list[Decision]:
        resumer = RemoteGraphResumer(remote.url, "refund")  # clients built from the URL
        try:
            assert await resumer.atarget(row) == interrupt["id"]
            first = await keeper.dispatcher(resumer).apoll_once()
            assert await keeper.dispatcher(resumer).apoll_once() == []
            assert await resumer.aresume(row, first) is False
            return first
        finally:
            await resumer.aclose()

    delivered = asyncio.run(poll())
    assert [d.outcome for d in delivered] == ["rejected"]
    values = sdk.threads.get_state(thread_id)["values"]
    assert isinstance(values, dict)
    assert values["done"] is True and values["decision"]["approved"] is False
    assert remote.effects_of(thread_id) == ["gate", "gate"]
    assert _runs(sdk, thread_id) == ["success", "success"]


def test_a_gate_inside_a_subgraph_is_found_and_resumed(
    remote: Remote, sdk: SyncLangGraphClient, keeper: Gatekeeper
) -> None:
    thread_id, interrupt = _park(sdk, "nested", 7)
    row = _row(keeper, interrupt)
    assert row.checkpoint_ns is not None and row.checkpoint_ns.startswith("review:")
    assert "|gate:" in row.checkpoint_ns
    resumer = RemoteGraphResumer(remote.url, "nested", client=sdk)
    assert resumer.target(row) == interrupt["id"]
    assert row.request_id is not None
    remote.hitl.reviewer.respond(row.request_id, "approve")

    assert [d.outcome for d in keeper.dispatcher(resumer).poll_once()] == ["approved"]
    assert remote.effects_of(thread_id) == ["gate", "gate", "refund 7"]
    assert sdk.threads.get(thread_id)["status"] == "idle"
    assert resumer.resume(row, []) is False
