"""``requests.iter``: every page, fetched only as the caller consumes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from hitl_agent import ConfigError

from .conftest import Harness, envelope

pytestmark = pytest.mark.anyio


def _item(n: int) -> dict[str, Any]:
    return {"id": f"r{n:03d}", "status": "pending", "response_type": "boolean"}


def _pager(total: int, *, style: str = "documented") -> Callable[[httpx.Request], httpx.Response]:
    """A list endpoint over ``total`` requests that honours limit and offset."""

    def handler(request: httpx.Request) -> httpx.Response:
        limit = int(request.url.params["limit"])
        offset = int(request.url.params["offset"])
        items = [_item(n) for n in range(offset, min(offset + limit, total))]
        data: dict[str, Any] = {"requests": items, "count": len(items)}
        if style == "documented":
            more = offset + len(items) < total
            data.update(total=total, has_more=more,
                        pagination={"limit": limit, "offset": offset,
                                    "next_offset": offset + limit if more else None})  # fmt: skip
        return httpx.Response(200, json=envelope(data))

    return handler


async def test_iter_walks_every_page_in_order(make: Callable[..., Harness]) -> None:
    api = make(_pager(7))
    items = await api.iterate(page_size=3, status="pending", loop_id="L1")
    assert [r.id for r in items] == [f"r{n:03d}" for n in range(7)]
    offsets = [r.url.params["offset"] for r in api.recorder.seen]
    assert offsets == ["0", "3", "6"]
    assert {r.url.params["limit"] for r in api.recorder.seen} == {"3"}
    assert {r.url.params["status"] for r in api.recorder.seen} == {"pending"}
    assert {r.url.params["loop_id"] for r in api.recorder.seen} == {"L1"}


@pytest.mark.parametrize(("take", "pages"), [(1, 1), (3, 1), (4, 2), (9, 3)])
async def test_iter_fetches_lazily(take: int, pages: int, make: Callable[..., Harness]) -> None:
    api = make(_pager(100))
    items = await api.iterate(take=take, page_size=3)
    assert len(items) == take
    assert len(api.recorder.seen) == pages


async def test_nothing_is_fetched_before_the_first_item(make: Callable[..., Harness]) -> None:
    api = make(_pager(5))
    iterator = api.client.requests.iter(page_size=2)
    assert api.recorder.seen == []
    if hasattr(iterator, "aclose"):
        await iterator.aclose()


async def test_iter_without_paging_fields_stops_on_a_short_page(
    make: Callable[..., Harness],
) -> None:
    # The MCP/third-party shape has only ``requests`` and ``count``.
    api = make(_pager(5, style="bare"))
    items = await api.iterate(page_size=2)
    assert len(items) == 5
    assert [r.url.params["offset"] for r in api.recorder.seen] == ["0", "2", "4"]


async def test_iter_on_an_exact_multiple_ends_with_one_empty_page(
    make: Callable[..., Harness],
) -> None:
    api = make(_pager(4, style="bare"))
    items = await api.iterate(page_size=2)
    assert len(items) == 4
    assert len(api.recorder.seen) == 3


async def test_iter_survives_a_next_offset_that_does_not_advance(
    make: Callable[..., Harness],
) -> None:
    def stuck(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        items = [_item(n) for n in range(offset, min(offset + 2, 5))]
        data = {"requests": items, "has_more": offset + 2 < 5,
                "pagination": {"next_offset": 0}}  # fmt: skip
        return httpx.Response(200, json=envelope(data))

    api = make(stuck)
    items = await api.iterate(page_size=2)
    assert [r.id for r in items] == [f"r{n:03d}" for n in range(5)]


@pytest.mark.parametrize("page_size", [0, 101])
async def test_iter_page_size_is_checked(page_size: int, make: Callable[..., Harness]) -> None:
    api = make(_pager(5))
    with pytest.raises(ConfigError) as caught:
        await api.iterate(page_size=page_size)
    assert caught.value.field == "limit"
    assert api.recorder.seen == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"limit": 0}, "limit"), ({"offset": -1}, "offset"), ({"status": "done"}, "status"),
     ({"sort": "newest"}, "sort"), ({"priority": "urgent"}, "priority")],
)  # fmt: skip
async def test_list_query_is_checked_before_sending(
    kwargs: dict[str, Any], field: str, make: Callable[..., Harness]
) -> None:
    api = make(_pager(5))
    with pytest.raises(ConfigError) as caught:
        await api.call("requests.list", **kwargs)
    assert caught.value.field == field
    assert api.recorder.seen == []
