"""The bridge for an agent served by a LangGraph Server: the same requests and decisions,
with threads found and resumed through ``langgraph-sdk``.

::

    bridge = keeper.bridge(langgraph_url="http://127.0.0.1:2024", assistant_id="agent")
    bridge.sweep()            # threads.search(status="interrupted") → one request per action
    dispatcher = keeper.dispatcher(bridge.resumer)      # resumes with runs.wait(command=...)

The agent's tools are not visible from here, so an edit may only change the args of the tool
the model called (and must give a JSON object); per_call mode's server checks the args
against the tool's schema before saving anything.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from langgraph_sdk.errors import NotFoundError

from .._exceptions import ConfigError
from ..gate import CreateTarget
from ..langgraph.remote import RemoteGraphResumer, RemoteResumeError, snapshot_from_thread_state
from ._bridge_codec import MiddlewareCodec
from ._bridge_core import (
    _UNSET,
    BridgeResumer,
    PendingAction,
    SpecBuilder,
    asend_action,
    pending_actions,
    send_action,
)
from ._bridge_policy import BridgePolicies

if TYPE_CHECKING:
    from langgraph_sdk.client import LangGraphClient, SyncLangGraphClient

    from ..gate import Gatekeeper
    from ..ledger import ReviewRecord

__all__ = ["RemoteMiddlewareBridge"]

log = logging.getLogger("hitl_agent.bridge")

_PAGE = 100


def _schemas(state: Mapping[str, Any]) -> dict[str, Any]:
    """per_call ``response_schema`` by interrupt id, from a ThreadState JSON (nested too)."""
    found: dict[str, Any] = {}
    for task in state.get("tasks") or ():
        for item in task.get("interrupts") or ():
            if isinstance(item, Mapping) and item.get("response_schema") is not None:
                found[str(item.get("id"))] = item["response_schema"]
        nested = task.get("state")
        if isinstance(nested, Mapping) and "tasks" in nested:
            found.update(_schemas(nested))
    return found


def _thread_of(config: Mapping[str, Any] | str) -> str:
    if isinstance(config, str):
        return config
    thread_id = (config.get("configurable") or {}).get("thread_id")
    if thread_id is None:
        raise ConfigError(
            "config.configurable.thread_id",
            "missing",
            'pass the thread id or {"configurable": {"thread_id": "..."}}',
        )
    return str(thread_id)


class RemoteMiddlewareBridge:
    """Serves the middleware interrupts of threads on a LangGraph Server.

    Built by :func:`hitl_agent.langchain.bridge`
    (``keeper.bridge(langgraph_url=..., assistant_id=...)``).

    Args:
        keeper: the keeper whose loop, ledger and callback the requests use.
        url: the server's base URL.
        assistant_id: the assistant (or graph id) the threads run; resumes use it and
            :meth:`sweep` keeps to its threads.
        priority, timeout_seconds: as for the local bridge.
        durability, config, api_key, headers, client, aclient: passed to the
            :class:`~hitl_agent.langgraph.RemoteGraphResumer`.
        policies: approval policies per gated tool, as for the local bridge (the server's
            middleware is not visible here: the tool names are not checked against it).
    """

    def __init__(
        self,
        keeper: Gatekeeper,
        url: str,
        assistant_id: str,
        *,
        priority: str | None = None,
        timeout_seconds: int | None = _UNSET,
        durability: Literal["sync", "async"] = "sync",
        config: Mapping[str, Any] | None = None,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        client: SyncLangGraphClient | None = None,
        aclient: LangGraphClient | None = None,
        policies: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.keeper = keeper
        self._target: CreateTarget = keeper.create_target
        self.assistant_id = assistant_id
        self.policies = BridgePolicies(policies, grants=False)
        self._configurable = dict((config or {}).get("configurable") or {})
        self.spec = SpecBuilder(
            keeper, priority=priority, timeout_seconds=timeout_seconds, policies=self.policies
        )
        self.codec = MiddlewareCodec(keeper.ledger, self.spec, None)
        common: dict[str, Any] = {
            "api_key": api_key,
            "headers": headers,
            "client": client,
            "aclient": aclient,
            "durability": durability,
            "config": config,
        }
        self.remote = RemoteGraphResumer(url, assistant_id, codec=self.codec, **common)
        self.resumer = BridgeResumer(
            self.remote,
            RemoteGraphResumer(url, assistant_id, **common),
            codec=self.codec,
            keeper=keeper,
        )

    def __repr__(self) -> str:
        url, assistant = self.remote.url, self.assistant_id
        return f"RemoteMiddlewareBridge(url={url!r}, assistant_id={assistant!r})"

    def _ours(self, thread: Mapping[str, Any]) -> bool:
        meta = thread.get("metadata") or {}
        named = {meta.get("assistant_id"), meta.get("graph_id")} - {None}
        return not named or self.assistant_id in named

    # -- finding -------------------------------------------------------------------------

    def pending(self, config: Mapping[str, Any] | str) -> list[PendingAction]:
        """The gated actions the thread waits on (nothing is created)."""
        thread_id = _thread_of(config)
        try:
            state = self.remote.client.threads.get_state(thread_id, subgraphs=True)
        except NotFoundError:
            return []
        except Exception as exc:
            raise RemoteResumeError.wrap(f"reading thread {thread_id}", exc) from exc
        return pending_actions(snapshot_from_thread_state(state), thread_id, _schemas(state))

    async def apending(self, config: Mapping[str, Any] | str) -> list[PendingAction]:
        """Async twin of :meth:`pending`."""
        thread_id = _thread_of(config)
        try:
            state = await self.remote.aclient.threads.get_state(thread_id, subgraphs=True)
        except NotFoundError:
            return []
        except Exception as exc:
            raise RemoteResumeError.wrap(f"reading thread {thread_id}", exc) from exc
        return pending_actions(snapshot_from_thread_state(state), thread_id, _schemas(state))

    # -- sending -------------------------------------------------------------------------

    def submit(self, config: Mapping[str, Any] | str) -> list[ReviewRecord]:
        """One HITL request per pending action of the thread (a thread id or its config)."""
        configurable = self._configurable_of(config)
        return [
            send_action(self.keeper, self._target, self.spec, item, configurable)
            for item in self.pending(config)
        ]

    def _configurable_of(self, config: Mapping[str, Any] | str) -> dict[str, Any]:
        """What a policy's ``exclude`` callable gets (LangGraph's internal keys left out)."""
        given = config.get("configurable") or {} if isinstance(config, Mapping) else {}
        merged = {**self._configurable, "thread_id": _thread_of(config), **given}
        return {k: v for k, v in merged.items() if not str(k).startswith("__")}

    async def asubmit(self, config: Mapping[str, Any] | str) -> list[ReviewRecord]:
        """Async twin of :meth:`submit`."""
        configurable = self._configurable_of(config)
        return [
            await asend_action(self.keeper, self._target, self.spec, item, configurable)
            for item in await self.apending(config)
        ]

    def interrupted_threads(self) -> list[str]:
        """Ids of the server's interrupted threads of this assistant (``threads.search``)."""
        found: list[str] = []
        offset = 0
        while True:
            try:
                page = self.remote.client.threads.search(
                    status="interrupted", limit=_PAGE, offset=offset
                )
            except Exception as exc:
                raise RemoteResumeError.wrap("searching interrupted threads", exc) from exc
            found += [str(t["thread_id"]) for t in page if self._ours(t)]
            if len(page) < _PAGE:
                return found
            offset += _PAGE

    async def ainterrupted_threads(self) -> list[str]:
        """Async twin of :meth:`interrupted_threads`."""
        found: list[str] = []
        offset = 0
        while True:
            try:
                page = await self.remote.aclient.threads.search(
                    status="interrupted", limit=_PAGE, offset=offset
                )
            except Exception as exc:
                raise RemoteResumeError.wrap("searching interrupted threads", exc) from exc
            found += [str(t["thread_id"]) for t in page if self._ours(t)]
            if len(page) < _PAGE:
                return found
            offset += _PAGE

    def sweep(self) -> list[ReviewRecord]:
        """Submit every interrupted thread of the assistant; a failing thread is logged."""
        rows: list[ReviewRecord] = []
        for thread_id in self.interrupted_threads():
            try:
                rows += self.submit(thread_id)
            except Exception:
                log.exception("bridge sweep failed thread_id=%s", thread_id)
        return rows

    async def asweep(self) -> list[ReviewRecord]:
        """Async twin of :meth:`sweep`."""
        rows: list[ReviewRecord] = []
        for thread_id in await self.ainterrupted_threads():
            try:
                rows += await self.asubmit(thread_id)
            except Exception:
                log.exception("bridge sweep failed thread_id=%s", thread_id)
        return rows
