"""Fidelity rows of issue 10, one by one: what HITL.sh's own code sends is accepted, what the
docs refuse is refused with the documented message, and what comes back keeps its shape."""

from __future__ import annotations

from typing import Any

import pytest

from hitl_agent.models import Request, normalize_response_data

from .conftest import Env, request_body

LIST = "/api/requests"


def _post(env: Env, **fields: Any) -> Any:
    return env.api("POST", f"/api/loops/{env.creds.loop_id}/requests", json=request_body(**fields))


# -- create returns both ids ------------------------------------------------------------------


def test_create_returns_id_and_request_id(env: Env) -> None:
    data = _post(env).json()["data"]
    assert data["id"] == data["request_id"] and len(data["id"]) == 24


# -- tolerant input ----------------------------------------------------------------------------


def test_undocumented_fields_are_stored_and_returned_but_never_shadow_server_fields(
    env: Env,
) -> None:
    response = _post(
        env, tags=["test", "mcp"], campaign={"id": 7}, status="completed", response_data="approve"
    )
    assert response.status_code == 201, response.json()
    request = env.get(response.json()["data"]["id"])
    assert request["tags"] == ["test", "mcp"] and request["campaign"] == {"id": 7}
    assert request["status"] == "pending" and request["response_data"] is None
    listed = env.api("GET", LIST).json()["data"]["requests"][0]
    assert listed["tags"] == ["test", "mcp"]


def test_unknown_response_config_keys_are_kept(env: Env) -> None:
    # n8n sends prompt: "" with text configs.
    request_id = env.create(response_type="text", response_config={"max_length": 50, "prompt": ""},
                            default_response="none")  # fmt: skip
    assert env.get(request_id)["response_config"]["prompt"] == ""


def test_plain_options_keep_their_written_values_and_take_a_label_default(env: Env) -> None:
    response = _post(env, response_config={"options": ["Approve", "Reject", "Needs Changes"]},
                     default_response="Reject")  # fmt: skip
    assert response.status_code == 201, response.json()
    request = env.get(response.json()["data"]["id"])
    assert request["response_config"]["options"] == ["Approve", "Reject", "Needs Changes"]
    assert request["default_response"] == "Reject"
    multi = _post(env, response_type="multi_select", default_response=["Needs Changes"],
                  response_config={"options": ["Approve", "Needs Changes"]})  # fmt: skip
    assert multi.status_code == 201, multi.json()


def test_a_text_default_shorter_than_min_length_is_accepted_but_an_answer_is_not(
    env: Env,
) -> None:
    config = {"min_length": 20, "max_length": 500}
    response = _post(env, response_type="text", response_config=config,
                     default_response="No summary provided")  # fmt: skip
    assert response.status_code == 201, response.json()
    request_id = response.json()["data"]["id"]
    short = env.rev("POST", f"/requests/{request_id}/respond", json={"response_data": "too short"})
    assert short.status_code == 400 and "response_data" in short.json()["data"]


def test_time_sensitive_without_timeout_gets_the_documented_message(env: Env) -> None:
    body = request_body()
    del body["timeout_seconds"]
    response = env.api("POST", f"/api/loops/{env.creds.loop_id}/requests", json=body)
    assert response.status_code == 400
    assert response.json()["msg"] == "timeout_seconds is required for time-sensitive requests"
    assert "timeout_seconds" in response.json()["data"]


def test_what_the_docs_refuse_is_still_refused(env: Env) -> None:
    for fields, needle in (
        ({"priority": "urgent"}, "priority"),
        ({"request_text": "x" * 2001}, "request_text"),
        ({"default_response": "Maybe"}, "default_response"),
        ({"response_config": {"options": []}}, "options"),
        ({"timeout_seconds": 86401}, "timeout_seconds"),
        ({"type": "image"}, "image_url"),
    ):
        response = _post(env, **fields)
        assert response.status_code == 400 and needle in response.json()["data"], fields
    assert env.api("GET", LIST).json()["data"]["total"] == 0


# -- PATCH /requests/{id} -----------------------------------------------------------------------


def _patch(env: Env, request_id: str, body: Any, key: str | None = None) -> Any:
    return env.api("PATCH", f"/api/requests/{request_id}", key=key, json=body)


def test_patch_changes_mutable_fields_of_a_pending_request(env: Env) -> None:
    request_id = env.create(tags=["a"])
    created = env.get(request_id)
    env.clock.advance(5)
    response = _patch(env, request_id, {"priority": "critical", "request_text": "Updated",
                                        "timeout_seconds": 3600, "tags": ["a", "b"]})  # fmt: skip
    assert response.status_code == 200, response.json()
    assert response.json()["msg"] == "Request updated successfully"
    request = env.get(request_id)
    assert response.json()["data"]["request"] == request
    assert (request["priority"], request["request_text"], request["tags"]) == (
        "critical", "Updated", ["a", "b"],
    )  # fmt: skip
    assert request["timeout_at"] == "2026-01-01T01:00:00Z"  # counted from creation
    assert request["created_at"] == created["created_at"]
    assert request["updated_at"] != created["updated_at"]
    # The new priority orders the list.
    other = env.create()
    ordered = env.api("GET", LIST, params={"sort": "priority_desc"}).json()["data"]["requests"]
    assert [r["id"] for r in ordered] == [request_id, other]


def test_patch_can_change_the_response_form_consistently(env: Env) -> None:
    request_id = env.create()
    half = _patch(env, request_id, {"response_type": "boolean"})
    assert half.status_code == 400 and half.json()["data"].startswith("default_response")
    whole = _patch(env, request_id, {"response_type": "boolean", "response_config": {},
                                     "default_response": False})  # fmt: skip
    assert whole.status_code == 200, whole.json()
    assert env.rev(
        "POST", f"/requests/{request_id}/respond", json={"response_data": True}
    ).is_success


@pytest.mark.parametrize(
    ("body", "msg", "needle"),
    [
        ({}, "At least one field must be provided for update", "priority"),
        ([1], "Invalid request body", "JSON object"),
        ({"status": "completed"}, "Validation failed", "status: set by the server"),
        ({"priority": "urgent"}, "Validation failed", "priority"),
        ({"timeout_seconds": 5}, "Validation failed", "timeout_seconds"),
        ({"response_config": {"options": []}}, "Invalid response configuration", "options"),
        ({"processing_type": "time-sensitive", "timeout_seconds": None},
         "timeout_seconds is required for time-sensitive requests", "timeout_seconds"),
    ],
)  # fmt: skip
def test_patch_refuses_bad_bodies_and_changes_nothing(
    env: Env, body: Any, msg: str, needle: str
) -> None:
    request_id = env.create()
    before = env.get(request_id)
    response = _patch(env, request_id, body)
    assert (response.status_code, response.json()["msg"]) == (400, msg), response.json()
    assert needle in response.json()["data"]
    assert env.get(request_id) == before


def test_patch_only_touches_this_keys_pending_requests(env: Env) -> None:
    env.server.add_api_key("key-two", email="other@localhost")
    request_id = env.create()
    denied = _patch(env, request_id, {"priority": "high"}, key="key-two")
    assert (denied.status_code, denied.json()["msg"]) == (403, "Access denied to this request")
    assert _patch(env, "nope", {"priority": "high"}).json()["msg"] == "Invalid request ID format"
    missing = _patch(env, "0123456789abcdef01234567", {"priority": "high"})
    assert (missing.status_code, missing.json()["msg"]) == (404, "Request not found")

    env.rev("POST", f"/requests/{request_id}/claim")
    claimed = _patch(env, request_id, {"priority": "high"})
    assert (claimed.status_code, claimed.json()["msg"]) == (
        400, "Request cannot be updated in current state",
    )  # fmt: skip
    assert "claimed" in claimed.json()["data"]
    env.rev("POST", f"/requests/{request_id}/respond", json={"response_data": "approve"})
    done = _patch(env, request_id, {"priority": "high"})
    assert "completed" in done.json()["data"] and env.get(request_id)["priority"] == "medium"


# -- created_before / created_after -------------------------------------------------------------


def test_list_filters_by_creation_time_exclusively(env: Env) -> None:
    ids = []
    for _ in range(4):
        ids.append(env.create())
        env.clock.advance(60.0004)  # sub-millisecond parts must not break the bounds
    times = [env.get(i)["created_at"] for i in ids]

    def listed(**params: str) -> list[str]:
        response = env.api("GET", LIST, params={"sort": "created_at_asc", **params})
        assert response.status_code == 200, response.json()
        return [r["id"] for r in response.json()["data"]["requests"]]

    assert listed(created_before=times[2]) == ids[:2]
    assert listed(created_after=times[1]) == ids[2:]
    assert listed(created_after=times[0], created_before=times[3]) == ids[1:3]
    assert listed(created_before=times[0].replace("Z", "+00:00")) == []
    assert listed(created_after="2020-01-01T00:00:00") == ids  # naive = UTC
    assert listed(created_after=str(int(env.clock.now()))) == []  # epoch seconds


def test_the_docs_cursor_walk_with_created_before_visits_each_request_once(env: Env) -> None:
    ids = []
    for _ in range(7):
        ids.append(env.create())
        env.clock.advance(0.25)
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):  # bounded: a server ignoring the filter would loop for ever
        params = {"limit": "3", **({"created_before": cursor} if cursor else {})}
        page = env.api("GET", LIST, params=params).json()["data"]["requests"]
        if not page:
            break
        seen += [r["id"] for r in page]
        cursor = page[-1]["created_at"]
    assert seen == ids[::-1]


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01T00:00:00Z", "nan", "-5", "1e20"])
def test_a_bad_time_filter_is_a_400_naming_it(env: Env, value: str) -> None:
    response = env.api("GET", LIST, params={"created_after": value})
    assert (response.status_code, response.json()["msg"]) == (400, "Invalid date filter value")
    assert "created_after" in response.json()["data"]


# -- answers keep the documented shapes ---------------------------------------------------------

_ANSWERS = [
    ("text", {"max_length": 100}, "none", "Looks fine", {"text": "Looks fine"}),
    ("single_select", {"options": [{"value": "approve", "label": "Approve"},
                                   {"value": "reject", "label": "Reject"}]},
     "reject", "approve", {"selected_value": "approve", "selected_label": "Approve"}),
    ("multi_select", {"options": ["Spam", "Grammar", "Tone"], "max_selections": 2},
     ["Spam"], ["Spam", "Tone"], {"selected_values": ["Spam", "Tone"]}),
    ("rating", {"scale_max": 5}, 1, 4, {"rating": 4, "rating_label": "Good"}),
    ("number", {"max_value": 1000}, 1, 299.99, {"number": 299.99, "formatted_value": "$299.99"}),
    ("boolean", {}, False, True, {"boolean": True, "boolean_label": "Yes"}),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "config", "default", "answer", "shape_b"), _ANSWERS)
def test_answers_are_shape_a_and_agree_with_shape_b(
    env: Env, kind: str, config: dict[str, Any], default: Any, answer: Any, shape_b: Any
) -> None:
    """§7.2: the server stores shape A (what the reviewer app posts); a reader of either
    documented shape gets the same value."""
    request_id = env.create(response_type=kind, response_config=config, default_response=default)
    reply = env.rev("POST", f"/requests/{request_id}/respond", json={"response_data": answer})
    assert reply.status_code == 200, reply.json()
    request = env.get(request_id)
    assert request["response_data"] == answer  # shape A: the plain value
    typed = Request.model_validate(request).response_value
    assert typed == normalize_response_data(kind, shape_b)
    # §6.2's documented fields are all there.
    for name in (
        "id",
        "loop_id",
        "status",
        "response_by",
        "response_at",
        "response_data",
        "response_time_seconds",
        "default_response",
        "timeout_at",
        "broadcasted_to",
    ):
        assert name in request  # fmt: skip


# -- OpenAPI ----------------------------------------------------------------------------------


def test_openapi_has_the_id_pattern_offset_bounds_and_the_patch_route(env: Env) -> None:
    document = env.http.get("/openapi.json").json()
    one = document["paths"]["/v1/api/requests/{request_id}"]
    assert "patch" in one
    for operation in one.values():
        (param,) = operation["parameters"]
        assert param["schema"]["pattern"] == "^[0-9a-f]{24}$"
    listing = {p["name"]: p["schema"] for p in document["paths"]["/v1/api/requests"]["get"]
               ["parameters"]}  # fmt: skip
    assert listing["offset"]["minimum"] == 0 and listing["offset"]["maximum"] == 2**62
    assert listing["created_before"]["format"] == "date-time"
    huge = env.api("GET", LIST, params={"offset": 2**62 + 1})
    assert huge.status_code == 400
    assert env.api("GET", LIST, params={"offset": 2**62}).status_code == 200
    created = document["components"]["schemas"]["CreateRequestParams"]
    assert created["additionalProperties"] is True


def test_patch_keeps_to_the_create_limits_and_callback_policy(env: Env) -> None:
    request_id = env.create()
    before = env.get(request_id)
    metadata = _patch(env, request_id, {"callback_url": "http://169.254.169.254/latest/"})
    assert metadata.status_code == 400 and "callback_url" in metadata.json()["data"]
    huge_context = _patch(env, request_id, {"context": {"blob": "x" * 70_000}})
    assert huge_context.status_code == 400 and "context" in huge_context.json()["data"]
    # Many PATCHes each within the body limit may not grow a request past it.
    for n in range(3):
        grown = _patch(env, request_id, {f"note{n}": "y" * 100_000})
    assert grown.status_code == 413, grown.json()
    assert env.get(request_id).keys() >= before.keys()
    assert "note2" not in env.get(request_id)
