"""Only an option of the review's own form approves (issue 20, M5): an answer outside the
form is refused with a reason, whatever words it contains; approve and reject values that
overlap are a ConfigError naming the field."""

from __future__ import annotations

import collections
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from hitl_harness import Env

from hitl_agent import ConfigError, HITLClient
from hitl_agent.decision import Decision
from hitl_agent.dispatch._resolver import Resolver
from hitl_agent.gate import Gatekeeper, ReviewSpec
from hitl_agent.ledger import SqliteLedger
from hitl_agent.models import Request

SHIP_OR_HOLD = {"options": [{"value": "ship_it", "label": "Ship it"}, "Hold"]}
_REQUEST_PATH = re.compile(r"/requests/[^/]+$")


def _completed(data: Any, response_type: str | None = "single_select", **extra: Any) -> Request:
    return Request.model_validate(
        {
            "id": "r1",
            "status": "completed",
            "response_type": response_type,
            "response_data": data,
            **extra,
        }
    )


@pytest.mark.parametrize(
    "data", ["yes", "allow", "Approved", "APPROVE", {"selected_value": "yes"}, {"value": "allow"}]
)
def test_an_answer_outside_the_form_never_approves(data: Any) -> None:
    decision = Decision.from_request(_completed(data, response_config=SHIP_OR_HOLD))
    assert decision is not None
    assert not decision.approved and decision.outcome == "rejected"
    assert decision.action is None  # no reviewer rejected either: the answer was refused
    assert "is not one of the form's options ('ship_it', 'Hold', 'hold')" in decision.reason
    assert "failed closed" in decision.reason


@pytest.mark.parametrize(
    ("data", "approve_values", "outcome"),
    [
        ("ship_it", None, "answered"),  # an option, but not an approving one
        ("ship_it", ["ship_it"], "approved"),  # the explicit approve values
        ({"selected_value": "ship_it"}, ["ship_it"], "approved"),  # both documented shapes
        ("Ship_It", ["ship_it"], "approved"),
        ("Hold", None, "answered"),  # a plain-string option, by its text
        ("hold", ["hold"], "approved"),  # ... and by the value HITL.sh derives
    ],
)
def test_only_the_forms_approving_options_approve(
    data: Any, approve_values: list[str] | None, outcome: str
) -> None:
    kwargs: dict[str, Any] = {} if approve_values is None else {"approve_values": approve_values}
    decision = Decision.from_request(_completed(data, response_config=SHIP_OR_HOLD), **kwargs)
    assert decision is not None and decision.outcome == outcome
    assert decision.approved is (outcome == "approved")


def test_the_default_options_still_approve_and_reject() -> None:
    form = {"options": ["Approve", "Reject"]}
    for data, outcome in [
        ("Approve", "approved"),
        ({"selected_value": "approve"}, "approved"),
        ("reject", "rejected"),
    ]:
        decision = Decision.from_request(_completed(data, response_config=form))
        assert decision is not None and decision.outcome == outcome, data


@pytest.mark.parametrize("data", [True, {"boolean": True}, "true", "approve"])
def test_an_answer_without_a_response_type_is_refused(data: Any) -> None:
    decision = Decision.from_request(_completed(data, response_type=None))
    assert decision is not None and not decision.approved and decision.outcome == "rejected"
    assert "no response_type" in decision.reason


def test_a_row_read_without_its_form_approves_only_its_approving_options() -> None:
    # A list item carries no response_config: the row's stored approve values decide, and
    # they are the form's approving options, not every default word.
    spec = ReviewSpec.build(
        "Deploy?",
        response_type="single_select",
        response_config={"options": ["Approve", "Hold"]},
        default_response="hold",
    )
    reading = spec.interpretation()
    assert reading["approve_values"] == ["approve"]
    for data, approved in [("yes", False), ("allow", False), ("Approve", True)]:
        decision = Decision.from_request(
            _completed(data),
            approve_values=reading["approve_values"],
            reject_values=reading["reject_values"],
        )
        assert decision is not None and decision.approved is approved, data


def test_a_row_whose_form_has_no_approving_option_approves_nothing_read_without_it() -> None:
    # ship_it/hold under the default approve words: no option approves, so the row stores
    # no approve value, and the resolver keeps that empty list instead of the default words.
    spec = ReviewSpec.build(
        "Ship?",
        response_type="single_select",
        response_config=SHIP_OR_HOLD,
        default_response="hold",
    )
    reading = spec.interpretation()
    assert reading["approve_values"] == []
    resolver = Resolver.__new__(Resolver)
    resolver.stats = collections.Counter()
    row = SimpleNamespace(request_id="r1", loop_id=None, payload={"interpretation": reading})
    for data in ("yes", "approve", "ship_it"):
        decision = resolver._interpret(row, _completed(data))  # type: ignore[arg-type]
        assert decision is not None and not decision.approved, data


def test_the_timeout_default_must_be_an_option_to_approve() -> None:
    request = Request.model_validate(
        {
            "id": "r1",
            "status": "timeout",
            "response_type": "single_select",
            "response_config": SHIP_OR_HOLD,
            "default_response": "yes",
        }
    )
    decision = Decision.from_request(request, approve_on_timeout=True)
    assert decision is not None and not decision.approved


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"approve_values": ["ship_it"], "reject_values": ["Ship_It"]}, "reject_values"),
        ({"approve_values": ["no"]}, "approve_values"),  # "no" is a default reject value
        ({"reject_values": ["yes"]}, "reject_values"),  # "yes" is a default approve value
        ({"approve_values": "ship_it"}, "approve_values"),  # a string, not a list
        ({"reject_values": ["hold", ""]}, "reject_values"),
    ],
)
def test_bad_approve_or_reject_values_are_a_config_error(
    env: Env, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        env.keeper.spec(
            "Ship?",
            response_type="single_select",
            response_config=SHIP_OR_HOLD,
            default_response="hold",
            **kwargs,
        )
    assert caught.value.field == field


@pytest.mark.parametrize("approve_values", ["approve", ["deny"]])
def test_the_keepers_approve_values_are_checked_up_front(env: Env, approve_values: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        Gatekeeper(
            client=env.hitl.client,
            loop_id=env.hitl.loop_id,
            ledger=env.ledger,
            approve_values=approve_values,
        )
    assert caught.value.field == "approve_values"


def test_the_safe_default_follows_the_reviews_reject_values(env: Env) -> None:
    spec = env.keeper.spec(
        "Publish?",
        response_type="single_select",
        response_config={"options": ["Publish", "Remove"]},
        approve_values=["publish"],
        reject_values=["remove"],
    )
    assert spec.default_response == "remove"


def _answering_client(env: Env, answer: Any) -> HITLClient:
    """A client of the local server whose every open request reads as answered ``answer``
    (what a server, a proxy or a bug could return; the local reviewer API refuses it)."""

    def handle(request: httpx.Request) -> httpx.Response:
        sent = env.hitl.http.request(
            request.method,
            str(request.url),
            content=request.content,
            headers={k: v for k, v in request.headers.items() if k.lower() != "content-length"},
        )
        body = sent.json()
        if request.method == "GET" and isinstance(body.get("data"), dict):
            data = body["data"]
            items = data.get("requests") if "requests" in data else [data.get("request")]
            for item in items or []:
                if isinstance(item, dict) and item.get("status") == "pending":
                    item.update(status="completed", response_data=answer)
        headers = {
            k: v
            for k, v in sent.headers.items()
            if k.lower() not in ("content-length", "content-encoding")
        }
        return httpx.Response(sent.status_code, headers=headers, json=body)

    return HITLClient(
        env.hitl.api_key,
        base_url=env.hitl.base_url,
        http_client=httpx.Client(transport=httpx.MockTransport(handle)),
    )


@pytest.mark.parametrize("answer", ["yes", "allow", "Approved"])
def test_keeper_review_end_to_end_refuses_an_answer_outside_the_form(
    env: Env, tmp_path: Path, answer: str
) -> None:
    ledger = SqliteLedger(tmp_path / f"e2e-{answer}.db")
    ledger.setup()
    keeper = Gatekeeper(
        client=_answering_client(env, answer),
        loop_id=env.hitl.loop_id,
        ledger=ledger,
        poll_interval=0.02,
    )
    try:
        decision = keeper.review(
            "Ship release 4.2?",
            response_type="single_select",
            response_config=SHIP_OR_HOLD,
            default_response="hold",
            key=f"ship-{answer}",
            wait_timeout=30,
        )
    finally:
        keeper.close()
        ledger.close()
    assert not decision.approved and decision.outcome == "rejected"
    assert "not one of the form's options" in decision.reason
