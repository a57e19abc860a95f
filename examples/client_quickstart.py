"""The typed HITL.sh client in one page.

It shows:

* a bad response config caught as ``ConfigError`` (field, problem and fix) before anything
  is sent — the client points at an unreachable host and no connection error happens;
* a ``single_select`` review request with safe defaults (``default_response="reject"``, a
  timeout, a priority), answered by a reviewer, read back with its status and typed
  ``response_value``;
* listing one page of requests and iterating over all of them;
* cancelling a request nobody needs any more, and the quota refund that comes with it.

Run it offline (an in-process local HITL server and a scripted reviewer)::

    python examples/client_quickstart.py

or against the real HITL.sh, where you answer on the phone app (it checks every 10 s)::

    HITL_LIVE=1 HITL_API_KEY=... HITL_LOOP_ID=... python examples/client_quickstart.py
    # HITL_BASE_URL defaults to https://api.hitl.sh/v1

``HITL_LIVE=1`` is the switch: an exported ``HITL_API_KEY`` alone (as after
``hitl-agent serve``) still runs offline. ``HITL_BASE_URL`` sends the live run elsewhere,
e.g. to a ``hitl-agent serve`` whose console you answer in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from hitl_agent import ConfigError, HITLClient, Request
from hitl_agent.testing import hitl_or_local as connect  # HITL.sh or offline


@dataclass
class Result:
    """What the run saw, for the curious (and for tests)."""

    config_error: ConfigError
    answered: Request
    listed: int
    cancelled_refunded: bool | None


def show_config_error() -> ConfigError:
    """A config mistake is refused locally: nothing reaches the (unreachable) server."""
    with HITLClient("unused-key", base_url="http://unreachable.invalid/v1") as client:
        try:
            client.requests.create(
                "0" * 24,
                request_text="Which labels apply?",
                response_type="multi_select",
                response_config={"options": ["Spam", "Abuse"], "max_selections": 3},
                default_response=[],
                timeout_seconds=600,
            )
        except ConfigError as err:
            print(f"ConfigError on {err.field!r}: {err.problem}. Fix: {err.fix}")
            return err
    raise AssertionError("the bad config was not refused")


def wait_for_answer(client: HITLClient, request_id: str, every: float = 10.0) -> Request:
    """GET the request until it is terminal (completed, timeout or cancelled).

    One GET per check: fine for a script, but services should poll with ``requests.list``
    (one call covers 100 requests) or take callbacks — see blocking_review.py.
    """
    while True:
        request = client.requests.get(request_id)
        if request.is_terminal:
            return request
        print(f"  {request_id} is {request.status}; checking again in {every:.0f} s")
        time.sleep(every)


def main() -> Result:
    config_error = show_config_error()

    with connect() as (client, loop_id, reviewer):
        created = client.requests.create(
            loop_id,
            request_text="Refund **$120** to order 981?",
            response_type="single_select",
            response_config={"options": ["Approve", "Reject"]},  # values: approve, reject
            default_response="reject",  # what a timeout means: no refund
            timeout_seconds=600,
            priority="high",
            context={"order": 981},
        )
        print(f"created {created.request_id} ({created.status}, times out {created.timeout_at})")

        if reviewer is not None:
            reviewer.respond(created.request_id, "approve")  # the scripted reviewer taps Approve
        else:
            print("  answer it in the HITL.sh app")
        answered = wait_for_answer(client, created.request_id)
        print(f"status={answered.status} response_value={answered.response_value!r}")

        page = client.requests.list(loop_id=loop_id, limit=10)
        print(f"first page: {len(page.requests)} of {page.total} request(s) in the loop")

        unneeded = client.requests.create(
            loop_id,
            request_text="Ship release 2.3 tonight?",
            response_type="boolean",
            default_response=False,
            timeout_seconds=3600,
        )
        for request in client.requests.iter(loop_id=loop_id, status="pending"):
            print(f"  pending: {request.id} {request.request_text!r}")

        cancelled = client.requests.cancel(unneeded.request_id)
        refund = cancelled.refund_info
        print(
            f"cancelled {cancelled.request_id} (was {cancelled.previous_status}); "
            f"refunded={refund.refunded if refund else None} ({refund.reason if refund else ''})"
        )
        return Result(
            config_error=config_error,
            answered=answered,
            listed=len(page.requests),
            cancelled_refunded=refund.refunded if refund else None,
        )


if __name__ == "__main__":
    main()
