"""``client.requests.update`` and the ``created_before``/``created_after`` filters, sync and
async, against the local server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hitl_agent import BadRequestError, ConfigError
from hitl_agent.testing import FakeClock, alocal_hitl, local_hitl

SELECT = {"options": [{"value": "approve", "label": "Approve"}, {"value": "reject", "label": "No"}]}


def test_update_changes_a_pending_request_and_returns_it() -> None:
    with local_hitl(clock=FakeClock()) as hitl:
        created = hitl.client.requests.create(
            hitl.loop_id, request_text="Ship?", response_type="boolean", default_response=False,
            timeout_seconds=600,
        )  # fmt: skip
        updated = hitl.client.requests.update(
            created.request_id, priority="high", request_text="Ship v2?", timeout_seconds=900
        )
        assert (updated.id, updated.priority, updated.request_text) == (
            created.request_id, "high", "Ship v2?",
        )  # fmt: skip
        assert updated == hitl.client.requests.get(created.request_id)
        switched = hitl.client.requests.update(
            created.request_id, response_type="single_select", response_config=SELECT,
            default_response="reject",
        )  # fmt: skip
        assert switched.response_type == "single_select" and switched.default_response == "reject"
        hitl.reviewer.respond(created.request_id, "approve")
        with pytest.raises(BadRequestError) as err:
            hitl.client.requests.update(created.request_id, priority="low")
        assert err.value.msg == "Request cannot be updated in current state"


def test_update_checks_fields_before_sending() -> None:
    with local_hitl() as hitl:
        requests = hitl.client.requests
        for kwargs, field in (
            ({}, "update"),
            ({"priority": "urgent"}, "priority"),
            ({"timeout_seconds": 5}, "timeout_seconds"),
            ({"response_config": SELECT}, "response_type"),
            ({"response_type": "single_select", "response_config": SELECT,
              "default_response": "maybe"}, "default_response"),
            ({"callback_url": "ftp://x"}, "callback_url"),
        ):  # fmt: skip
            with pytest.raises(ConfigError) as err:
                requests.update("0123456789abcdef01234567", **kwargs)  # type: ignore[arg-type]
            assert err.value.field == field, kwargs


def _make(hitl: object, clock: FakeClock, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        created = hitl.client.requests.create(  # type: ignore[attr-defined]
            hitl.loop_id,  # type: ignore[attr-defined]
            request_text="Go?", response_type="boolean", default_response=False,
            timeout_seconds=600,
        )  # fmt: skip
        ids.append(created.request_id)
        clock.advance(60)
    return ids


def test_list_and_iter_filter_by_creation_time() -> None:
    clock = FakeClock()
    with local_hitl(clock=clock) as hitl:
        ids = _make(hitl, clock, 5)
        start = datetime.fromtimestamp(FakeClock().now(), tz=UTC)
        page = hitl.client.requests.list(
            created_after=start + timedelta(seconds=30),
            created_before=start + timedelta(seconds=200),
            sort="created_at_asc",
        )
        assert [r.id for r in page.requests] == ids[1:4]
        third = hitl.client.requests.get(ids[2])
        assert third.created_at is not None
        older = list(hitl.client.requests.iter(created_before=third.created_at, page_size=1))
        assert [r.id for r in older] == [ids[1], ids[0]]
        # The string the API printed works as a bound too (the docs' cursor snippet).
        raw = hitl.http.get(
            f"/v1/api/requests/{ids[2]}", headers={"Authorization": f"Bearer {hitl.api_key}"}
        ).json()["data"]["request"]["created_at"]
        newer = hitl.client.requests.list(created_after=raw, sort="created_at_asc")
        assert [r.id for r in newer.requests] == ids[3:]
        with pytest.raises(ConfigError) as err:
            hitl.client.requests.list(created_before=datetime(2026, 1, 1))  # noqa: DTZ001
        assert err.value.field == "created_before"


@pytest.mark.anyio
async def test_async_update_and_time_filters() -> None:
    clock = FakeClock()
    async with alocal_hitl(clock=clock) as hitl:
        ids = []
        for _ in range(3):
            created = await hitl.client.requests.create(
                hitl.loop_id, request_text="Go?", response_type="boolean",
                default_response=False, timeout_seconds=600,
            )  # fmt: skip
            ids.append(created.request_id)
            clock.advance(60)
        updated = await hitl.client.requests.update(ids[0], priority="critical")
        assert updated.priority == "critical"
        start = datetime.fromtimestamp(FakeClock().now(), tz=UTC)
        seen = [
            r.id
            async for r in hitl.client.requests.iter(
                created_after=start + timedelta(seconds=1), page_size=1, sort="created_at_asc"
            )
        ]
        assert seen == ids[1:]
        page = await hitl.client.requests.list(created_before=start + timedelta(seconds=1))
        assert [r.id for r in page.requests] == ids[:1]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
