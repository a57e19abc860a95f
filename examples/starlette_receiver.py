"""Your own web app, with the HITL webhook receiver mounted next to its routes.

A Starlette app (FastAPI mounts it the same way: ``app.mount(path, dispatcher.asgi_app)``)
serves a small refunds API and, under ``/hitl``, the dispatcher's receiver::

    Starlette(routes=[
        Route("/orders/{order_id}", ...),            # the app's own routes
        Route("/refunds", ..., methods=["POST"]),    # starts a refund graph thread
        Route("/refunds/{thread_id}", ...),          # how that thread stands
        Mount(dispatcher.receiver.path, app=dispatcher.asgi_app),  # POST /hitl/<token>
    ])

``POST /refunds`` runs a LangGraph graph up to its ``keeper.review(...)``: the thread is
checkpointed and the request answers ``202`` at once, with no process waiting. When a reviewer
answers, the HITL server POSTs the request's callback to ``/hitl/<token>``; the receiver checks
the token, answers ``202``, fetches the decision with the API key (the body is only a
doorbell) and resumes exactly that thread. No poller runs here: the webhook alone resumes.

It shows, with the app served by uvicorn on 127.0.0.1:

* the app's own route answering next to the receiver;
* two refunds started over HTTP and suspended; one approved, one rejected;
* each resumed by its callback (``dispatcher.receiver.accepted`` counts them), the approved
  refund paid once, the rejected one not.

Run it offline (an in-process local HITL server with its scheduler on, which delivers the
callbacks to the app; the script plays the reviewer)::

    python examples/starlette_receiver.py

or against the real HITL.sh, which must reach the app: expose the port (``PORT``, default
8000) at a public URL, e.g. with a tunnel, and answer on the phone app::

    HITL_LIVE=1 HITL_API_KEY=... HITL_LOOP_ID=... HITL_CALLBACK_URL=https://<public host>/hitl \\
        python examples/starlette_receiver.py

``HITL_LIVE=1`` is the switch: an exported ``HITL_API_KEY`` alone (as after
``hitl-agent serve``) still runs offline. ``HITL_BASE_URL`` sends the live run elsewhere,
e.g. to a ``hitl-agent serve`` whose console you answer in.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypedDict

import httpx
import uvicorn
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from hitl_agent import Gatekeeper, HITLClient
from hitl_agent.dispatch import Dispatcher
from hitl_agent.langgraph import GraphResumer
from hitl_agent.testing import ScriptedReviewer, local_hitl

ORDERS = {"1234": "boots, delivered broken", "5678": "a sofa, delivered fine"}
REFUNDS = {"1234": (250, "approve"), "5678": (1900, "reject")}
"""order -> (amount, what the offline reviewer answers)."""


class State(TypedDict, total=False):
    order_id: str
    amount: int
    result: str


def build_graph(keeper: Gatekeeper, checkpointer: Any, paid: list[str]) -> Any:
    def refund(state: State) -> dict[str, Any]:
        decision = keeper.review(  # creates the request once, then suspends the thread
            f"Refund **${state['amount']:,}** for order {state['order_id']}?",
            response_type="single_select",
            response_config={"options": ["Approve", "Reject"]},
            default_response="reject",
            priority="high",
        )
        if not decision.approved:
            return {"result": f"not refunded ({decision.outcome})"}
        paid.append(state["order_id"])  # stands in for your payments API
        return {"result": f"refunded ${state['amount']:,}"}

    builder = StateGraph(State)
    builder.add_node("refund", refund)
    builder.add_edge(START, "refund")
    builder.add_edge("refund", END)
    return builder.compile(checkpointer=checkpointer)


def build_app(graph: Any, dispatcher: Dispatcher) -> Starlette:
    """The app: its own routes, and the receiver mounted at the callback URL's path."""

    def order(request: Request) -> JSONResponse:
        order_id = request.path_params["order_id"]
        if order_id not in ORDERS:
            return JSONResponse({"error": "no such order"}, status_code=404)
        return JSONResponse({"order_id": order_id, "item": ORDERS[order_id]})

    async def start_refund(request: Request) -> JSONResponse:
        body = await request.json()
        thread_id = f"refund-{body['order_id']}"
        config = {"configurable": {"thread_id": thread_id}}
        inputs = {"order_id": str(body["order_id"]), "amount": int(body["amount"])}
        # graph.invoke is synchronous: run it off the event loop.
        result = await run_in_threadpool(graph.invoke, inputs, config)
        (interrupt,) = result["__interrupt__"]
        request_id = interrupt.value["hitl_agent"]["request_id"]
        payload = {"thread_id": thread_id, "request_id": request_id, "state": "waiting"}
        return JSONResponse(payload, status_code=202)

    def refund_status(request: Request) -> JSONResponse:
        config = {"configurable": {"thread_id": request.path_params["thread_id"]}}
        snapshot = graph.get_state(config)
        if snapshot.next:
            return JSONResponse({"state": "waiting"})
        return JSONResponse({"state": "finished", "result": snapshot.values.get("result")})

    return Starlette(
        routes=[
            Route("/orders/{order_id}", order),
            Route("/refunds", start_refund, methods=["POST"]),
            Route("/refunds/{thread_id}", refund_status),
            Mount(dispatcher.receiver.path, app=dispatcher.asgi_app),
        ]
    )


@contextlib.contextmanager
def serve(app: Starlette, port: int) -> Iterator[None]:
    """The app under uvicorn on 127.0.0.1:port, in a thread, for the ``with`` block."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False
    )  # no access log: callback paths carry capability tokens
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="app", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the app did not start on port {port}")
        time.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def connect() -> Iterator[tuple[HITLClient, str, str, int, ScriptedReviewer | None]]:
    """(client, loop id, callback URL, app port, scripted reviewer): the real HITL.sh when
    HITL_LIVE=1 asks for it, else a local server whose scheduler delivers the callbacks."""
    if os.environ.get("HITL_LIVE") == "1":
        loop_id, callback_url = os.environ.get("HITL_LOOP_ID"), os.environ.get("HITL_CALLBACK_URL")
        if not loop_id or not callback_url:
            raise SystemExit("set HITL_LOOP_ID and HITL_CALLBACK_URL (the app's public /hitl URL)")
        with HITLClient() as client:  # reads HITL_API_KEY and HITL_BASE_URL
            yield client, loop_id, callback_url, int(os.environ.get("PORT", "8000")), None
    else:
        port = free_port()
        # scheduler_interval: the server's background pass that delivers callbacks.
        with local_hitl(scheduler_interval=0.05, callback_base_delay=0.05) as hitl:
            yield hitl.client, hitl.loop_id, f"http://127.0.0.1:{port}/hitl", port, hitl.reviewer


def wait(check: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Result:
    order: dict[str, Any]  # the app's own route
    started: dict[str, dict[str, Any]]  # order -> POST /refunds answer
    finished: dict[str, dict[str, Any]]  # order -> GET /refunds/<thread> once resumed
    callbacks_accepted: int  # callbacks the mounted receiver took
    paid: list[str]


def main() -> Result:
    paid: list[str] = []
    real = os.environ.get("HITL_LIVE") == "1"
    with (
        tempfile.TemporaryDirectory(prefix="hitl-receiver-") as tmp,
        connect() as (client, loop_id, callback_url, port, reviewer),
        Gatekeeper(
            client=client,
            loop_id=loop_id,
            ledger=f"sqlite:///{tmp}/ledger.db",
            callback_url=callback_url,  # each request gets {callback_url}/{token}
        ) as keeper,
        contextlib.closing(sqlite3.connect(f"{tmp}/checkpoints.db", check_same_thread=False)) as db,
    ):
        graph = build_graph(keeper, SqliteSaver(db), paid)
        dispatcher = keeper.dispatcher(GraphResumer(graph))
        with (
            serve(build_app(graph, dispatcher), port),
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http,
        ):
            order = http.get("/orders/1234").json()
            print(f"GET /orders/1234 -> {order}")
            started: dict[str, dict[str, Any]] = {}
            for order_id, (amount, _) in REFUNDS.items():
                response = http.post("/refunds", json={"order_id": order_id, "amount": amount})
                started[order_id] = response.json()
                print(f"POST /refunds {order_id} ${amount} -> {response.status_code}", end=" ")
                print(started[order_id])
            for order_id, (_, answer) in REFUNDS.items():
                if reviewer is not None:
                    reviewer.respond(started[order_id]["request_id"], answer)
                    print(f"reviewer answers {answer!r} for order {order_id}")
            if real:
                print("answer both requests in the HITL.sh app; HITL.sh then calls the app back")

            def status(order_id: str) -> dict[str, Any]:
                data: dict[str, Any] = http.get(f"/refunds/refund-{order_id}").json()
                return data

            wait(
                lambda: all(status(o)["state"] == "finished" for o in REFUNDS),
                "the callbacks to resume both threads",
                timeout=3600 if real else 30,
            )
            finished = {order_id: status(order_id) for order_id in REFUNDS}
            for order_id, state in finished.items():
                print(f"GET /refunds/refund-{order_id} -> {state}")
            accepted = dispatcher.receiver.accepted
            print(f"callbacks accepted by the mounted receiver: {accepted}; paid: {paid}")
    return Result(order, started, finished, accepted, paid)


if __name__ == "__main__":
    main()
