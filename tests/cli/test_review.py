"""``hitl-agent review``: a terminal reviewer, driven through CliRunner against the real app."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.testclient import TestClient

from hitl_agent import HITLClient
from hitl_agent.cli._review import ReviewerSeam, review
from hitl_agent.models.response_types import EditedText
from hitl_agent.server import create_app

BASE = "http://testserver/v1"


@dataclass
class Local:
    app: Starlette
    http: TestClient
    client: HITLClient
    loop_id: str
    token: str

    def create(self, response_type: str, config: dict[str, Any], default: Any, **kw: Any) -> str:
        created = self.client.requests.create(
            self.loop_id,
            request_text=kw.pop("text", f"Please answer the {response_type} request"),
            response_type=response_type,
            response_config=config,
            default_response=default,
            timeout_seconds=3600,
            **kw,
        )
        return created.request_id

    def run(self, *args: str, input: str) -> Any:
        return CliRunner().invoke(
            review,
            ["--base-url", BASE, "--token", self.token, *args],
            input=input,
            obj=ReviewerSeam(http_client=self.http),
        )


@pytest.fixture
def local() -> Iterator[Local]:
    # scheduler_interval=None: no lifespan task; the TestClient is used without its lifespan.
    app = create_app(":memory:", scheduler_interval=None)
    boot = app.state.hitl.bootstrap()
    http = TestClient(app)
    client = HITLClient(api_key=boot.api_key, base_url=BASE, http_client=http)
    try:
        yield Local(app, http, client, boot.loop_id, boot.reviewer_token)
    finally:
        client.close()
        http.close()
        app.state.hitl.close()


def test_answers_four_types_in_priority_order_with_local_validation(local: Local) -> None:
    select = local.create(
        "single_select",
        {
            "options": [
                {"value": "approve", "label": "Approve"},
                {"value": "no", "label": "Reject"},
            ]
        },
        "no",
        priority="critical",
    )
    number = local.create("number", {"max_value": 100, "decimal_places": 2}, 0, priority="high")
    edit = local.create(
        "editable_text", {"draft_text": "Dear customer,", "max_length": 50}, "Dear customer,"
    )
    yes_no = local.create(
        "boolean", {"true_label": "Ship it", "false_label": "Hold"}, False, priority="low"
    )

    keystrokes = [
        "1", "9", "Reject",  # critical first: "9" is not an option; a label picks its value
        "1", "5.555", "abc", "12.5",  # number: too many decimals, not a number, then valid
        "1", "x" * 51, "Dear customer, thanks!",  # editable: over max_length, then valid
        "1", "maybe", "y",  # boolean: neither, then yes
    ]  # fmt: skip
    result = local.run(input="\n".join(keystrokes) + "\n")

    assert result.exit_code == 0, result.output
    assert "Nothing to review." in result.output
    assert "Not valid: '9' is not one of the options" in result.output
    assert "Not valid: use at most 2 decimal places" in result.output
    assert "51 characters" in result.output  # the local check names the limit
    assert local.token not in result.output
    got = {rid: local.client.requests.get(rid) for rid in (select, number, edit, yes_no)}
    assert all(request.status == "completed" for request in got.values())
    assert got[select].response_value == "no"
    assert got[number].response_value == 12.5
    edited = got[edit].response_value
    assert isinstance(edited, EditedText)
    assert edited.text == "Dear customer, thanks!"
    assert edited.was_edited is True
    assert got[yes_no].response_value is True


def test_once_answers_one_and_leaves_the_rest(local: Local) -> None:
    first = local.create(
        "multi_select",
        {"options": ["Spam", "Abuse", "Fine"], "max_selections": 2, "min_selections": 1},
        ["fine"],
        priority="critical",
    )
    second = local.create("rating", {"scale_min": 1, "scale_max": 5}, 3, priority="low")

    result = local.run("--once", input="1\nspam,abuse,fine\n1,2\n")

    assert result.exit_code == 0, result.output
    assert "3 selections, outside 1..2" in result.output
    assert local.client.requests.get(first).response_value == ["spam", "abuse"]
    assert local.client.requests.get(second).status == "pending"


def test_text_and_rating_answers(local: Local) -> None:
    text = local.create("text", {"max_length": 20, "min_length": 2}, "n/a", priority="high")
    rating = local.create(
        "rating", {"scale_min": 0, "scale_max": 10, "scale_step": 2}, 4, priority="low"
    )

    result = local.run(input="1\nx\nlooks fine\n1\n5\n8\n")

    assert result.exit_code == 0, result.output
    assert "outside 2..20" in result.output
    assert "is not on the scale" in result.output
    assert local.client.requests.get(text).response_value == "looks fine"
    assert local.client.requests.get(rating).response_value == 8


def test_request_text_is_shown_with_invisible_characters_revealed(local: Local) -> None:
    local.create(
        "boolean",
        {},
        False,
        text="Approve\u202e refund\x1b[2J of $10",
        context={"note": "zero\u200bwidth"},
    )

    result = local.run("--once", input="1\nn\n")

    assert result.exit_code == 0, result.output
    assert "\u202e" not in result.output and "\x1b" not in result.output
    assert "Approve⟦U+202E⟧ refund⟦U+001B⟧[2J of $10" in result.output
    assert "zero⟦U+200B⟧width" in result.output


def test_aborting_mid_answer_releases_the_claim(local: Local) -> None:
    request_id = local.create("text", {"max_length": 100}, "n/a")

    result = local.run(input="1\n")  # input ends at the answer prompt: click aborts

    assert result.exit_code == 1
    queue = local.http.get(
        f"{BASE}/reviewer/queue", headers={"Authorization": f"Bearer {local.token}"}
    ).json()
    [item] = queue["data"]["requests"]
    assert item["id"] == request_id
    assert item["status"] == "pending"


def test_quit_and_empty_queue(local: Local) -> None:
    empty = local.run(input="")
    assert empty.exit_code == 0
    assert "Nothing to review." in empty.output

    local.create("boolean", {}, False)
    quit_ = local.run(input="q\n")
    assert quit_.exit_code == 0
    assert "1 open request(s)" in quit_.output


def test_bad_token_is_a_clear_error_without_the_token(local: Local) -> None:
    result = CliRunner().invoke(
        review,
        ["--base-url", BASE, "--token", "wrong-token-123456"],
        obj=ReviewerSeam(http_client=local.http),
    )
    assert result.exit_code == 1
    assert "rejected the reviewer token (401" in result.output
    assert "wrong-token-123456" not in result.output


def test_unreachable_server_is_a_clear_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    result = CliRunner().invoke(
        review,
        ["--base-url", "http://127.0.0.1:9/v1", "--token", "t" * 20],
        obj=ReviewerSeam(http_client=httpx.Client(transport=httpx.MockTransport(refuse))),
    )
    assert result.exit_code == 1
    assert "cannot reach http://127.0.0.1:9/v1/reviewer/" in result.output
    assert "t" * 20 not in result.output


def test_server_refusal_is_printed_and_the_reviewer_can_retry() -> None:
    item = {
        "id": "r1",
        "priority": "high",
        "status": "pending",
        "request_text": "Approve?",
        "response_type": "text",
        "response_config": {"max_length": 100},
        "timeout_at": "2999-01-01T00:00:00Z",
    }
    answers: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/queue"):
            data = {"requests": [] if answers else [item]}
            return httpx.Response(200, json={"error": False, "msg": "ok", "data": data})
        if path.endswith("/respond"):
            value = json.loads(request.content)["response_data"]
            if value == "first":
                return httpx.Response(
                    400, json={"error": True, "msg": "Invalid response: the server says no"}
                )
            answers.append(value)
        return httpx.Response(200, json={"error": False, "msg": "ok", "data": {}})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    result = CliRunner().invoke(
        review,
        ["--base-url", "http://h/v1", "--token", "t" * 20],
        input="1\nfirst\nsecond\n",
        obj=ReviewerSeam(http_client=http),
    )
    assert result.exit_code == 0, result.output
    assert "The server refused the answer: Invalid response: the server says no (400)" in (
        result.output
    )
    assert answers == ["second"]


def test_watch_waits_for_a_new_request_instead_of_quitting(
    local: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    naps: list[float] = []

    def nap(seconds: float) -> None:
        # The first wait is when a request arrives (an agent asks while the reviewer waits).
        naps.append(seconds)
        if len(naps) == 1:
            local.create(
                "single_select",
                {"options": [{"value": "rej", "label": "Reject refund"}, "Approve"]},
                "rej",
                context={"order": 7, "hitl_agent": {"key": "lg|t|gate:1|node|0"}},
            )

    monkeypatch.setattr("hitl_agent.cli._review.time.sleep", nap)
    result = local.run("--watch", "--interval", "2", "--once", input="1\n1\n")
    assert result.exit_code == 0, result.output
    assert naps == [2.0]
    assert "waiting for new requests" in result.output
    assert "Nothing to review.\n" not in result.output
    # A gate's request (its context carries the hitl_agent key): the line says what a timeout
    # does, as the console does (issue 21, S6).
    assert (
        "If nobody answers in time: it times out and the agent is told nobody answered."
        in result.output
    )
    assert '"order": 7' in result.output
    assert "lg|t|gate:1" not in result.output  # the correlation key is not for reviewers
    assert "Answer sent" in result.output


def test_watch_interval_is_validated(local: Local) -> None:
    result = local.run("--watch", "--interval", "0", input="")
    assert result.exit_code == 2
    assert "--interval" in result.output


def test_the_base_url_comes_from_hitl_base_url_like_every_other_command() -> None:
    # `hitl-agent serve` prints `export HITL_BASE_URL=...`; review must follow it too.
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(str(request.url))
        return httpx2.Response(200, json={"error": False, "msg": "ok", "data": {"requests": []}})

    result = CliRunner().invoke(
        review,
        ["--token", "t" * 20],
        obj=ReviewerSeam(http_client=httpx2.Client(transport=httpx2.MockTransport(handler))),
        env={"HITL_BASE_URL": "http://hitl.example:9999/v1"},
    )
    assert result.exit_code == 0, result.output
    assert "Nothing to review." in result.output
    assert seen == ["http://hitl.example:9999/v1/reviewer/queue"]


@pytest.mark.parametrize("base_url", ["http://testserver", "http://testserver/console/"])
def test_a_base_url_that_is_not_the_v1_root_gets_the_same_hint_as_check(
    local: Local, base_url: str
) -> None:
    result = CliRunner().invoke(
        review,
        ["--base-url", base_url, "--token", local.token],
        obj=ReviewerSeam(http_client=local.http),
    )
    assert result.exit_code == 1
    assert "has no /v1; use http://testserver/v1" in result.output
    assert local.token not in result.output
