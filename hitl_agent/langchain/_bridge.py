"""The ``HumanInTheLoopMiddleware`` bridge: an unchanged LangChain agent gets HITL.sh reviewers.

::

    agent = create_agent(model, tools, middleware=[HumanInTheLoopMiddleware(...)],
                         checkpointer=saver)                  # the app's agent, unchanged
    bridge = keeper.bridge(agent)
    out = agent.invoke(inputs, config)                         # stops on the middleware's interrupt
    bridge.submit(config)                                      # one HITL request per gated action
    dispatcher = keeper.dispatcher(bridge.resumer)             # webhook + poll: resumes once
    bridge.sweep()                                             # or: find every interrupted thread

The reviewers' answers come back in LangChain's own format (``{"decisions": [...]}`` in
batched mode, one decision per interrupt id in per_call mode), validated first: see
:mod:`hitl_agent.langchain._bridge_form` and docs/bridge.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

try:
    import langchain.agents.middleware  # noqa: F401  (the extra this module serves)
except ImportError as err:  # pragma: no cover - exercised by a test with the module hidden
    raise ImportError(
        "The HumanInTheLoopMiddleware bridge needs LangChain: pip install 'hitl-agent[langchain]'"
    ) from err

from langchain_core.runnables import RunnableConfig
from langgraph.prebuilt import ToolNode
from langgraph.types import Command

from .._exceptions import ConfigError
from ..gate import CreateTarget
from ..langgraph import GraphResumer
from ._bridge_codec import MiddlewareCodec
from ._bridge_core import (
    _UNSET,
    IN_FLIGHT_SECONDS,
    BridgeResumer,
    PendingAction,
    SpecBuilder,
    asend_action,
    pending_actions,
    send_action,
)
from ._bridge_grants import claim_resume, covering_use, granted_value
from ._bridge_policy import BridgePolicies, gated_decisions
from ._bridge_schema import parse_key

if TYPE_CHECKING:
    from ..gate import Gatekeeper
    from ..ledger import ReviewRecord

__all__ = ["MiddlewareBridge", "agent_tools"]

log = logging.getLogger("hitl_agent.bridge")


def agent_tools(graph: Any) -> dict[str, Any]:
    """Every tool of the graph's ToolNodes, its subgraphs' included (nested agents)."""
    graphs: list[Any] = [graph]
    with contextlib.suppress(AttributeError, NotImplementedError):
        graphs += [sub for _, sub in graph.get_subgraphs(recurse=True)]
    tools: dict[str, Any] = {}
    for each in graphs:
        for node in (getattr(each, "nodes", None) or {}).values():
            bound = getattr(node, "bound", None)
            if isinstance(bound, ToolNode):
                for name, tool in bound.tools_by_name.items():
                    tools.setdefault(name, tool)
    return tools


def _thread_id(config: RunnableConfig) -> str:
    thread_id = (config.get("configurable") or {}).get("thread_id")
    if thread_id is None:
        raise ConfigError(
            "config.configurable.thread_id",
            "missing",
            'pass the config the agent ran with: {"configurable": {"thread_id": "..."}}',
        )
    return str(thread_id)


class MiddlewareBridge:
    """Serves a compiled graph's ``HumanInTheLoopMiddleware`` (and agent-inbox) interrupts.

    Built by :func:`hitl_agent.langchain.bridge` (``keeper.bridge(agent)``).

    Args:
        keeper: the keeper whose loop, ledger and callback the requests use.
        graph: the compiled agent (or a parent graph holding it), with its checkpointer.
        priority: the requests' priority (default: the keeper's).
        timeout_seconds: how long reviewers have (default: the keeper's); a timeout is a
            reject saying *timed out*.
        durability: the resume runs' durability (``"sync"`` or ``"async"``).
        config: extra config merged into every resume.
        policies: approval policies per gated tool, with ``keeper.review``'s keyword
            arguments: ``{"execute_sql": {"quorum": 2, "exclude": ..., "escalate": [...]}}``
            (docs/bridge.md, "Policies"). An ``exclude`` callable gets the thread's
            ``configurable`` (the one it last ran with, under ``config``'s and
            :meth:`submit`'s), once per action; the result is kept with its first request.

    Raises:
        ConfigError: ``policies.<tool>`` names a tool ``interrupt_on`` does not gate, or
            holds a value ``keeper.review`` would refuse.
    """

    def __init__(
        self,
        keeper: Gatekeeper,
        graph: Any,
        *,
        priority: str | None = None,
        timeout_seconds: int | None = _UNSET,
        durability: Literal["sync", "async"] = "sync",
        config: RunnableConfig | None = None,
        policies: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        if not (hasattr(graph, "get_state") and hasattr(graph, "invoke")):
            raise ConfigError(
                "agent", f"{type(graph).__name__} is not a compiled graph", "pass create_agent(...)"
            )
        self.keeper = keeper
        self.graph = graph
        self._target: CreateTarget = keeper.create_target
        self.tools = agent_tools(graph)
        gated = gated_decisions(graph)
        self.policies = BridgePolicies(policies, gated if gated is not None else set(self.tools))
        self._configurable = dict((config or {}).get("configurable") or {})
        self._config: RunnableConfig = config or {}
        self._durability = durability
        self.spec = SpecBuilder(
            keeper,
            priority=priority,
            timeout_seconds=timeout_seconds,
            tools=self.tools,
            policies=self.policies,
        )
        self.codec = MiddlewareCodec(keeper.ledger, self.spec, self.tools)
        self.resumer = BridgeResumer(
            GraphResumer(graph, durability=durability, config=config, codec=self.codec),
            GraphResumer(graph, durability=durability, config=config),
            codec=self.codec,
            keeper=keeper,
        )

    def __repr__(self) -> str:
        return f"MiddlewareBridge({type(self.graph).__name__}, tools={sorted(self.tools)})"

    # -- finding -------------------------------------------------------------------------

    def pending(self, config: RunnableConfig) -> list[PendingAction]:
        """The gated actions this thread waits on (nothing is created)."""
        return pending_actions(self.graph.get_state(config, subgraphs=True), _thread_id(config))

    async def _astate(self, config: RunnableConfig) -> Any:
        try:
            return await self.graph.aget_state(config, subgraphs=True)
        except NotImplementedError:  # a sync-only checkpointer (SqliteSaver)
            return await asyncio.to_thread(self.graph.get_state, config, subgraphs=True)

    async def apending(self, config: RunnableConfig) -> list[PendingAction]:
        """Async twin of :meth:`pending`."""
        thread_id = _thread_id(config)
        return pending_actions(await self._astate(config), thread_id)

    # -- sending -------------------------------------------------------------------------

    def submit(self, config: RunnableConfig) -> list[ReviewRecord]:
        """Create one HITL request per pending action of this thread (at most once each).

        Repeating it, or running it on several replicas, creates nothing new: each action's
        correlation key is its thread, namespace, interrupt id and index.

        Returns:
            The actions' ledger rows (existing ones included).
        """
        thread_id = _thread_id(config)
        state = self.graph.get_state(config, subgraphs=True)
        configurable = self._configurable_of(config, state)
        rows: list[ReviewRecord] = []
        covered: dict[str, list[PendingAction]] = {}
        for item in pending_actions(state, thread_id):
            if self._covered(item):
                covered.setdefault(item.interrupt_id, []).append(item)
            else:
                rows.append(send_action(self.keeper, self._target, self.spec, item, configurable))
        for items in self._fully_granted(covered, rows):
            self._resume_granted(config, items)
        return rows

    # -- standing grants -------------------------------------------------------------------

    def _covered(self, item: PendingAction) -> bool:
        """True when a standing grant covers the action (its use recorded): no request."""
        if self.policies.grants(item.action.name) is None or "approve" not in item.action.allowed:
            return False
        return (
            covering_use(
                self.keeper.ledger,
                key=item.key,
                action=item.action,
                thread_id=item.thread_id,
                loop_id=self.keeper.loop_id,
                now=self.keeper.clock(),
            )
            is not None
        )

    @staticmethod
    def _fully_granted(
        covered: Mapping[str, list[PendingAction]], rows: list[ReviewRecord]
    ) -> list[list[PendingAction]]:
        """The interrupts whose every action a grant covers: no row's resume will answer
        them (one with a reviewed sibling is answered by that row's resume)."""
        parts = [parse_key(row.key) for row in rows]
        asked = {p.interrupt_id for p in parts if p is not None}
        return [
            items
            for interrupt_id, items in covered.items()
            if interrupt_id not in asked and len(items) == items[0].action.count
        ]

    def _resume_config(self, config: RunnableConfig, thread_id: str) -> RunnableConfig:
        merged = {**self._config, **config}
        configurable = {
            **(self._config.get("configurable") or {}),
            **(config.get("configurable") or {}),
            "thread_id": thread_id,
        }
        return {**merged, "configurable": configurable}  # type: ignore[typeddict-item]

    def _claim(self, items: list[PendingAction]) -> Any:
        return claim_resume(
            self.keeper.ledger,
            items[0].key,
            thread_id=items[0].thread_id,
            tool=",".join(sorted({i.action.name for i in items})),
            now=self.keeper.clock(),
            stale_after=IN_FLIGHT_SECONDS,
        )

    def _resume_granted(self, config: RunnableConfig, items: list[PendingAction]) -> None:
        """Resume an interrupt every action of which a grant approved, once (claimed)."""
        done = self._claim(items)
        if done is None:
            return  # another process resumes it (or did)
        first = items[0]
        command: Command[Any] = Command(
            resume={first.interrupt_id: granted_value(first.action.kind, len(items))}
        )
        log.info(
            "bridge resumes thread_id=%s interrupt=%s under standing grants (%d action(s))",
            first.thread_id,
            first.interrupt_id,
            len(items),
        )
        try:
            self.graph.invoke(
                command, self._resume_config(config, first.thread_id), durability=self._durability
            )
        except BaseException:
            done(False)
            raise
        done(True)

    async def _aresume_granted(self, config: RunnableConfig, items: list[PendingAction]) -> None:
        """Async twin of :meth:`_resume_granted`."""
        done = await asyncio.to_thread(self._claim, items)
        if done is None:
            return
        first = items[0]
        command: Command[Any] = Command(
            resume={first.interrupt_id: granted_value(first.action.kind, len(items))}
        )
        resume_config = self._resume_config(config, first.thread_id)
        try:
            try:
                await self.graph.ainvoke(command, resume_config, durability=self._durability)
            except NotImplementedError:  # a sync-only checkpointer (SqliteSaver)
                await asyncio.to_thread(
                    self.graph.invoke, command, resume_config, durability=self._durability
                )
        except BaseException:
            await asyncio.to_thread(done, False)
            raise
        await asyncio.to_thread(done, True)

    def _configurable_of(self, config: RunnableConfig, state: Any) -> dict[str, Any]:
        """What a policy's ``exclude`` callable gets: the ``configurable`` the thread last ran
        with (LangGraph copies it into the checkpoint's metadata, so a sweep that knows only
        the thread id finds the run's user too), under the bridge's ``config`` and this call's,
        LangGraph's internal keys left out (as the gate does)."""
        ran = getattr(state, "metadata", None) if self.policies else None
        merged = {
            **(ran if isinstance(ran, Mapping) else {}),
            **self._configurable,
            **(config.get("configurable") or {}),
        }
        return {k: v for k, v in merged.items() if not str(k).startswith("__")}

    async def asubmit(self, config: RunnableConfig) -> list[ReviewRecord]:
        """Async twin of :meth:`submit` (the keeper's async client when it has one)."""
        thread_id = _thread_id(config)
        state = await self._astate(config)
        configurable = self._configurable_of(config, state)
        rows: list[ReviewRecord] = []
        covered: dict[str, list[PendingAction]] = {}
        for item in pending_actions(state, thread_id):
            if await asyncio.to_thread(self._covered, item):
                covered.setdefault(item.interrupt_id, []).append(item)
            else:
                row = await asend_action(self.keeper, self._target, self.spec, item, configurable)
                rows.append(row)
        for items in self._fully_granted(covered, rows):
            await self._aresume_granted(config, items)
        return rows

    def _thread_ids(self) -> Iterator[str]:
        saver = getattr(self.graph, "checkpointer", None)
        if saver is None or not hasattr(saver, "list"):
            raise ConfigError(
                "checkpointer",
                "sweep needs the graph's checkpointer to find interrupted threads",
                "compile the agent with checkpointer=SqliteSaver(...) or PostgresSaver(...)",
            )
        seen: set[str] = set()
        for checkpoint in saver.list(None):
            thread_id = (checkpoint.config.get("configurable") or {}).get("thread_id")
            if thread_id is not None and str(thread_id) not in seen:
                seen.add(str(thread_id))
                yield str(thread_id)

    def sweep(self) -> list[ReviewRecord]:
        """Submit every interrupted thread in the graph's checkpointer.

        Reads each thread's latest state once (the checkpointer has no index of interrupted
        threads, so this lists its checkpoints); a failing thread is logged and skipped.
        """
        rows: list[ReviewRecord] = []
        for thread_id in list(self._thread_ids()):
            try:
                rows += self.submit({"configurable": {"thread_id": thread_id}})
            except Exception:
                log.exception("bridge sweep failed thread_id=%s", thread_id)
        return rows

    async def asweep(self) -> list[ReviewRecord]:
        """Async twin of :meth:`sweep`."""
        thread_ids = await asyncio.to_thread(lambda: list(self._thread_ids()))
        rows: list[ReviewRecord] = []
        for thread_id in thread_ids:
            try:
                rows += await self.asubmit({"configurable": {"thread_id": thread_id}})
            except Exception:
                log.exception("bridge sweep failed thread_id=%s", thread_id)
        return rows
