"""The sync and async surfaces stay twins: same methods, same parameters, same defaults."""

from __future__ import annotations

import inspect

import pytest

from hitl_agent import AsyncHITLClient, HITLClient
from hitl_agent.resources import AsyncLoops, AsyncRequests, Loops, Requests

PAIRS = [(HITLClient, AsyncHITLClient), (Loops, AsyncLoops), (Requests, AsyncRequests)]


def _public(cls: type) -> dict[str, object]:
    return {
        name: member
        for name, member in vars(cls).items()
        if not name.startswith("_") and (callable(member) or isinstance(member, property))
    }


def _async_name(annotation: str) -> str:
    return annotation.replace("AsyncIterator", "Iterator").replace("Async", "")


@pytest.mark.parametrize(("sync_cls", "async_cls"), PAIRS)
def test_same_public_methods(sync_cls: type, async_cls: type) -> None:
    assert set(_public(sync_cls)) == set(_public(async_cls))


@pytest.mark.parametrize(("sync_cls", "async_cls"), PAIRS)
def test_same_signatures(sync_cls: type, async_cls: type) -> None:
    checked = 0
    members = {**_public(sync_cls), "__init__": vars(sync_cls)["__init__"]}
    for name, member in members.items():
        twin = getattr(async_cls, name)
        if not inspect.isfunction(member):
            continue
        sync_sig, async_sig = inspect.signature(member), inspect.signature(twin)
        assert [
            (p.name, p.kind, p.default, _async_name(str(p.annotation)))
            for p in sync_sig.parameters.values()
        ] == [
            (p.name, p.kind, p.default, _async_name(str(p.annotation)))
            for p in async_sig.parameters.values()
        ], name
        assert _async_name(str(sync_sig.return_annotation)) == _async_name(
            str(async_sig.return_annotation)
        ), name
        if name not in {"__init__"}:
            # Every IO method of the async twin must be awaitable or an async iterator.
            assert inspect.iscoroutinefunction(twin) or inspect.isasyncgenfunction(twin), name
            assert not inspect.iscoroutinefunction(member), name
        checked += 1
    assert checked >= 3


def test_both_clients_expose_the_same_resources() -> None:
    client, aclient = HITLClient(api_key="k"), AsyncHITLClient(api_key="k")
    assert type(client.requests) is Requests and type(aclient.requests) is AsyncRequests
    assert type(client.loops) is Loops and type(aclient.loops) is AsyncLoops
    # Lazily built once, then cached.
    assert client.requests is client.requests
