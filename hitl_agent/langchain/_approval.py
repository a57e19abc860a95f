"""``require_approval``: the same tool, but a human decides each call first.

::

    safe_refund = keeper.require_approval(refund, when=lambda args: args["amount"] > 100)
    agent = create_agent(model, tools=[safe_refund], checkpointer=SqliteSaver(conn))

The wrapper is a :class:`~langchain_core.tools.BaseTool` with the wrapped tool's name,
description, argument schema (``tool_call_schema`` is the same: the model sees the same
tool), tags, metadata, callbacks, ``response_format`` and error handling. Arguments LangChain
injects (``ToolRuntime``, ``InjectedState``, ``InjectedStore``, ``InjectedToolCallId``) reach
it as they reach the tool, are never shown to the reviewer nor hashed, and are passed on to the
tool (see :mod:`hitl_agent.langchain._inner`). An approved call runs the tool's ``_run`` inside
the wrapper's own tool run: one tool run per call for callbacks and ``astream_events``. Each
call asks a reviewer (see :mod:`hitl_agent.langchain._forms` for the forms) through
``keeper.review(..., tool_call_id=..., mode="auto")``: inside a graph run it suspends the
thread durably, one review per tool call keyed by the call's id; outside one it blocks on the
process's shared poll loop.

The tool call id comes from LangChain's documented path: ``BaseTool.invoke`` hands a ``ToolCall``
dict's ``id`` to :meth:`BaseTool.run` as ``tool_call_id=`` (the id that also names the
resulting ``ToolMessage``). The wrapper's ``run`` reads it there and keeps it in a context
variable for its ``_run``, so no parameter is added to the tool's schema.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.errors import GraphInterrupt
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_jsonable_python

from .._exceptions import ConfigError
from .._keys import gate_key
from ..gate import ReviewMismatchError, args_hash
from ..gate._policy import Exclude, resolve_policy
from ..langgraph.pregel import graph_context
from ..policies import Escalate, Grants, Quorum
from ._attach import attach_document
from ._callid import CALL_ID as _CALL_ID
from ._flow import ApprovalFlow, Ask, Verdict, not_run
from ._grants import covering_grant, not_run_message, ran_under_grant, record_grant
from ._inner import RUNTIME, acall_inner, call_inner, sync_unsupported, wrapper_schema
from ._once import Execution
from ._render import ToolCallView
from ._settings import check_settings
from ._siblings import ahold_for_siblings, hold_for_siblings, note_started, note_suspended
from ._tasks import shares_task
from ._turns import earlier_unanswered, retire_earlier

if TYPE_CHECKING:
    from ..decision import Decision
    from ..gate import Gatekeeper
    from ..ledger import Ledger, ReviewRecord

__all__ = ["ApprovalTool", "Policy", "require_approval"]

log = logging.getLogger("hitl_agent.langchain")

Policy = Callable[[dict[str, Any]], bool]
"""``when=``: the call's arguments (as the model sent them) -> True to ask a human."""


_ASYNC_ONLY = (
    "tool {name!r} is async-only (a coroutine and no sync function), so it cannot run in a "
    "sync call; no reviewer was asked. Call it with `ainvoke` (an agent: `ainvoke` / "
    "`astream`), or give the tool a sync function too."
)

_MISMATCH = (
    "the arguments of this call are not the ones the reviewer saw (their hash differs from "
    "the one stored with the review); the approval does not cover them."
)


def _v2(schema: Any) -> type[BaseModel] | None:
    """``schema`` when it is a pydantic v2 model class (else a JSON schema or a v1 model)."""
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema
    return None


def _model_fields(tool: BaseTool) -> tuple[list[str], dict[str, Any]]:
    """The model-visible argument names and their JSON-schema properties."""
    schema = tool.tool_call_schema
    model = _v2(schema)
    if model is None:
        raw = schema if isinstance(schema, dict) else schema.schema()
        properties = dict(raw.get("properties") or {})
        return list(properties), properties
    properties = dict(model.model_json_schema().get("properties") or {})
    return list(model.model_fields), properties


class ApprovalTool(BaseTool):
    """A tool whose every call (or every call ``when`` selects) waits for a human decision.

    Build it with :func:`require_approval` / ``Gatekeeper.require_approval``. Results:

    * approve: the wrapped tool's own result (run once, with exactly the reviewed args);
    * edit: the wrapped tool's result with the reviewer's args (validated against the schema
      first; invalid edits do not run and the message names the field);
    * reject: a ``ToolMessage`` with ``status="error"`` saying *rejected* and the reason;
    * timeout / cancel: ``status="error"``, saying *timed out* / *cancelled*;
    * respond: the reviewer's text as the tool result;
    * args changed since the review: not run, ``status="error"``, saying why.

    Each not-run result carries the typed :class:`~hitl_agent.Decision` (``action`` set) as
    the message's ``artifact["decision"]``. Called without a tool call id (``tool.invoke(
    {...})``), the result is the message text.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    # GraphResumer refuses to resume a tool call's review into a ToolNode whose tool lacks
    # this (a redeploy dropped the gate): read by duck typing, the adapter imports no wrapper.
    gates_calls: ClassVar[bool] = True

    inner: BaseTool
    keeper: Any = Field(exclude=True, repr=False)
    when: Policy | None = Field(default=None, exclude=True)
    allow_edit: bool = False
    allow_respond: bool = False
    gate_description: str | None = None
    priority: str | None = None
    timeout_seconds: int | None = None
    grants: Grants | None = Field(default=None, exclude=True)
    policy_: dict[str, Any] = Field(default_factory=dict, exclude=True, repr=False)
    """``quorum``/``exclude``/``escalate`` as given (docs/policies.md), for the first form."""
    runtime_arg_: str | None = Field(default=None, exclude=True, repr=False)
    fields_: list[str] = Field(default_factory=list, exclude=True, repr=False)
    properties_: dict[str, Any] = Field(default_factory=dict, exclude=True, repr=False)

    def model_post_init(self, context: Any) -> None:
        """Record the model-visible argument names once."""
        super().model_post_init(context)
        self.fields_, self.properties_ = _model_fields(self.inner)

    # -- the schema the model sees is the wrapped tool's ------------------------------------
    # (``args_schema`` is the wrapped tool's input schema plus what ToolNode must inject: see
    # hitl_agent.langchain._inner.wrapper_schema.)

    @property
    def tool_call_schema(self) -> Any:
        """Exactly the wrapped tool's: the model sees the same tool."""
        return self.inner.tool_call_schema

    # -- policy and the tool call id, before LangChain's run machinery ----------------------

    def _asks(self, tool_input: Any) -> bool:
        when = self.when
        if when is None:
            return True
        if isinstance(tool_input, dict):
            args = {k: v for k, v in tool_input.items() if k in self.properties_}
        else:
            args = {self.fields_[0]: tool_input} if self.fields_ else {}
        try:
            return bool(when(args))
        except Exception:  # a policy that cannot decide asks a human (fail closed)
            log.warning("when= policy of tool %s raised; asking a reviewer", self.name)
            return True

    def _unreviewed(self, tool_input: Any) -> tuple[Any] | None:
        """``(input for the tool,)`` when ``when`` lets the call through without a review
        (the wrapper's own runtime left out), None when a reviewer decides."""
        if self._asks(tool_input):
            return None
        if isinstance(tool_input, dict):
            tool_input = {k: v for k, v in tool_input.items() if k != RUNTIME}
        return (tool_input,)

    def run(self, tool_input: Any, *args: Any, **kwargs: Any) -> Any:
        """Run through the gate, or straight through when ``when`` says no review."""
        direct = self._unreviewed(tool_input)
        earlier = self._earlier_review(kwargs) if direct is not None else None
        if earlier is not None and self.keeper.ledger.get(earlier):
            direct = None
        if direct is not None:
            once = self._unreviewed_once(tool_input, kwargs, sync=True)
            if once is None:
                return self.inner.run(direct[0], *args, **kwargs)
            return once.run(lambda: self.inner.run(direct[0], *args, **kwargs))
        with _call_id(kwargs):
            return super().run(tool_input, *args, **kwargs)

    async def arun(self, tool_input: Any, *args: Any, **kwargs: Any) -> Any:
        """Async twin of :meth:`run`."""
        direct = self._unreviewed(tool_input)
        earlier = self._earlier_review(kwargs) if direct is not None else None
        if earlier is not None and await self.keeper.ledger.aget(earlier):
            direct = None
        if direct is not None:
            once = self._unreviewed_once(tool_input, kwargs, sync=False)
            if once is None:
                return await self.inner.arun(direct[0], *args, **kwargs)
            return await once.arun(lambda: self.inner.arun(direct[0], *args, **kwargs))
        with _call_id(kwargs):
            return await super().arun(tool_input, *args, **kwargs)

    def _earlier_review(self, kwargs: Mapping[str, Any]) -> str | None:
        """The key of this call's review from an earlier run, to look up when ``when`` lets
        the call through in a *resumed* task: a redeploy that loosened the policy must not
        run a call its reviewer already decided on (rejected stays rejected). None when the
        task is not resumed (no lookup: the policy-skipped path stays free of IO)."""
        call_id = kwargs.get("tool_call_id")
        if call_id is None:
            return None
        try:
            ctx = graph_context()
        except ConfigError:
            return None  # a graph without a checkpointer never suspended this call
        if ctx is None or not ctx.resumed:
            return None
        return gate_key(ctx.thread_id, ctx.checkpoint_ns, call_id, 0)

    def _unreviewed_once(
        self, tool_input: Any, kwargs: Mapping[str, Any], *, sync: bool
    ) -> Execution | None:
        """An at-most-once record for a call ``when=`` lets through, when LangGraph may
        re-run it: it shares its ToolNode task with a sibling call that waits for a reviewer
        (LangGraph's own ``tools_condition``). None when it runs in a task of its own."""
        call_id = kwargs.get("tool_call_id")
        config = kwargs.get("config") or {}
        runtime = (
            tool_input.get(self.runtime_arg_ or RUNTIME) if isinstance(tool_input, dict) else None
        )
        if call_id is None or runtime is None or not shares_task(config):
            return None
        if not _gated_siblings(runtime, call_id, sync=sync):
            return None
        ctx = graph_context()
        if ctx is None:
            return None
        return Execution(
            ledger=self.keeper.ledger,
            key=f"exec|{ctx.thread_id}|{ctx.checkpoint_ns}|{call_id}",
            tool=self.name,
            request_id="",
            thread_id=ctx.thread_id,
            tool_call_id=call_id,
            decision=None,
            not_run=lambda message: ToolMessage(
                f"Not run: {message}", tool_call_id=call_id, name=self.name, status="error"
            ),
            clock=getattr(self.keeper, "clock", time.time),
        )

    # -- the gated call ----------------------------------------------------------------------

    def _flow(self, full: dict[str, Any], runtime: Any, config: RunnableConfig) -> ApprovalFlow:
        # As given: the flow makes them canonical JSON (sets sorted; see hitl_agent.protocol).
        model_args = {k: v for k, v in full.items() if k in self.properties_}
        call_id = _CALL_ID.get()
        index, count = _position(runtime, call_id)
        thread = (config.get("configurable") or {}).get("thread_id")
        asked_by = "an AI agent" + (f" (thread {thread})" if thread else "")
        view = ToolCallView(
            tool=self.name,
            args=model_args,
            description=self.gate_description or self.description,
            asked_by=asked_by,
            tool_call_id=call_id,
            call_index=index,
            call_count=count,
        )
        return ApprovalFlow(
            view=view,
            properties=self.properties_,
            validate=self._validate,
            allow_edit=self.allow_edit,
            allow_respond=self.allow_respond,
            priority=self.priority,
            timeout_seconds=self.timeout_seconds,
            grants=self.grants,
            policy=self.policy_,
            thread_id=str(thread) if thread else None,
            attach=self._attach_document,
        )

    def _attach_document(self, body: str, name: str) -> str:
        """Host ``body`` as a document on HITL.sh and return its URL, charged to the keeper's
        budget and kept in the ledger under its name (see :func:`._attach.attach_document`):
        every re-run and replica renders the same request text, so the spec hash holds."""
        return attach_document(self.keeper, body, name)

    def _validate(self, edited: dict[str, Any]) -> dict[str, Any]:
        schema = self.inner.tool_call_schema
        missing = [
            name
            for name, prop in self.properties_.items()
            if name not in edited and _required(schema, name, prop)
        ]
        if missing:
            raise ValueError(f"field `{missing[0]}` is required")
        model_class = _v2(schema)
        if model_class is None:
            return edited
        try:
            model = model_class.model_validate(edited)
        except ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(part) for part in first.get("loc", ())) or "(arguments)"
            raise ValueError(f"field `{loc}`: {first.get('msg', 'invalid')}") from None
        return {name: getattr(model, name) for name in edited}

    def _split(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """The call's arguments (injected ones included, the wrapper's runtime left out) and
        the ToolRuntime (the tool's own, or the wrapper's)."""
        full = dict(kwargs)
        if args and self.fields_:
            full[self.fields_[0]] = args[0]
        runtime = full.pop(RUNTIME, None)
        if self.runtime_arg_ is not None and self.runtime_arg_ != RUNTIME:
            runtime = full.get(self.runtime_arg_)
        return full, runtime

    def _invoke_args(self, full: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
        """The reviewed (or edited) arguments, with the injected ones passed on."""
        return {**{k: v for k, v in full.items() if k not in self.properties_}, **args}

    def _result(self, verdict: Verdict) -> Any:
        """A not-run result, in the shape ``BaseTool.run`` expects of ``_run``."""
        call_id = _CALL_ID.get()
        result: Any = verdict.message
        if call_id is not None:
            decision = verdict.decision
            artifact = {"decision": decision.model_dump(mode="json") if decision else None}
            result = ToolMessage(
                verdict.message,
                tool_call_id=call_id,
                name=self.name,
                status="error" if verdict.error else "success",
                artifact=artifact,
            )
        if self.response_format == "content_and_artifact":
            # BaseTool.run unpacks (content, artifact); a ToolMessage content passes as is.
            return result, None
        return result

    # _run and _arun only review (review / areview), wait for siblings, read the first
    # review's row and run the tool (_run / _arun); what to review next, what a decision or a
    # failed review means and whether the reviewed args still bind are _GatedCall's.

    def _run(
        self,
        *args: Any,
        config: RunnableConfig,
        run_manager: CallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> Any:
        if sync_unsupported(self.inner):
            raise NotImplementedError(_ASYNC_ONLY.format(name=self.name))
        call = _GatedCall.start(self, args, kwargs, config)
        if stale := call.earlier_unanswered():
            retire_earlier(self.keeper, call.thread_id(config), stale, call.call_id or "")
        granted = call.granted()
        if granted is not None:  # a standing grant covers it: no request
            return granted.run(
                lambda: call_inner(
                    self.inner, call.granted_input(), call.call_id, config, run_manager
                )
            )
        while isinstance(call.step, Ask):
            try:
                kwargs = call.review_kwargs()
                if call.follow_up_excludes:
                    kwargs["exclude"] = _stored_exclusion(self.keeper.ledger, call.request_id)
                decision = self.keeper.review(call.step.text, **kwargs)
            except (ReviewMismatchError, GraphInterrupt) as err:
                return call.review_failed(err)
            call.answered(decision)
        if not call.runs:
            return call.result()
        hold_for_siblings(self.keeper.ledger, call.request_id, call.siblings(sync=True))
        row = self.keeper.ledger.get_by_request_id(call.request_id)
        refused = call.unbound(row)
        if refused is not None:
            return refused
        assert row is not None  # unbound() refuses a missing row
        call.record_grant(row)
        return call.execution(row, config).run(
            lambda: call_inner(self.inner, call.tool_input(), call.call_id, config, run_manager)
        )

    async def _arun(
        self,
        *args: Any,
        config: RunnableConfig,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> Any:
        # Off the loop: a call too long to show uploads its arguments (_flow._attached).
        call = await asyncio.to_thread(_GatedCall.start, self, args, kwargs, config)
        if stale := call.earlier_unanswered():
            await asyncio.to_thread(
                retire_earlier, self.keeper, call.thread_id(config), stale, call.call_id or ""
            )
        granted = await asyncio.to_thread(call.granted) if self.grants is not None else None
        if granted is not None:  # a standing grant covers it: no request
            return await granted.arun(
                lambda: acall_inner(
                    self.inner, call.granted_input(), call.call_id, config, run_manager
                )
            )
        while isinstance(call.step, Ask):
            try:
                kwargs = call.review_kwargs()
                if call.follow_up_excludes:
                    kwargs["exclude"] = await asyncio.to_thread(
                        _stored_exclusion, self.keeper.ledger, call.request_id
                    )
                decision = await self.keeper.areview(call.step.text, **kwargs)
            except (ReviewMismatchError, GraphInterrupt) as err:
                return call.review_failed(err)
            call.answered(decision)
        if not call.runs:
            return call.result()
        await ahold_for_siblings(self.keeper.ledger, call.request_id, call.siblings(sync=False))
        row = await self.keeper.ledger.aget_by_request_id(call.request_id)
        refused = call.unbound(row)
        if refused is not None:
            return refused
        assert row is not None  # unbound() refuses a missing row
        await asyncio.to_thread(call.record_grant, row)
        return await call.execution(row, config).arun(
            lambda: acall_inner(self.inner, call.tool_input(), call.call_id, config, run_manager)
        )


@contextmanager
def _call_id(kwargs: Mapping[str, Any]) -> Iterator[None]:
    """The tool call id ``BaseTool.run``/``arun`` got, visible to ``_run``/``_arun``."""
    token = _CALL_ID.set(kwargs.get("tool_call_id"))
    try:
        yield
    finally:
        _CALL_ID.reset(token)


@dataclass
class _GatedCall:
    """One gated call of an :class:`ApprovalTool`, without IO.

    ``_run`` and ``_arun`` drive it: ask each :class:`Ask` in :attr:`step`, hand the decision
    to :meth:`answered`, and once :attr:`step` is a :class:`Verdict`, either return
    :meth:`result` or (it :attr:`runs`) wait for the sibling calls, check the first review's
    row with :meth:`unbound` and run the tool with :meth:`tool_input`. Everything they must
    agree on (the forms, what a decision means, the result's shape, the log line) is here.
    """

    tool: ApprovalTool
    full: dict[str, Any]
    runtime: Any
    flow: ApprovalFlow
    call_id: str | None
    step: Ask | Verdict
    shared: bool = True

    @classmethod
    def start(
        cls,
        tool: ApprovalTool,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        config: RunnableConfig,
    ) -> _GatedCall:
        """The call's arguments split from its runtime, noted as started, its first form."""
        full, runtime = tool._split(args, kwargs)
        call_id = _CALL_ID.get()
        note_started(call_id)
        _warn_if_exposed(tool.name, runtime, call_id, config)
        flow = tool._flow(full, runtime, config)
        shared = shares_task(config) or not (config.get("metadata") or {})
        return cls(tool, full, runtime, flow, call_id, flow.first(), shared)

    def earlier_unanswered(self) -> set[str]:
        """Calls of earlier turns of this thread that never got a result (the thread moved
        on past them): their open requests are retired (:mod:`._turns`)."""
        if graph_context() is None:
            return set()
        return earlier_unanswered(self.runtime, self.call_id)

    @staticmethod
    def thread_id(config: RunnableConfig) -> str:
        """The graph thread of this run (``earlier_unanswered`` is empty outside one)."""
        return str((config.get("configurable") or {}).get("thread_id"))

    def review_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of the current form's ``keeper.review``/``areview``."""
        assert isinstance(self.step, Ask)
        return {"tool_call_id": self.call_id, **self.step.kwargs}

    @property
    def follow_up_excludes(self) -> bool:
        """The current form is a follow-up under an exclusion: it takes the exclusion kept
        with the first form's row (a resumed run may not have the context it came from)."""
        return (
            isinstance(self.step, Ask)
            and self.step.step != "choice"
            and "exclude" in self.step.kwargs
            and bool(self.request_id)
        )

    def answered(self, decision: Decision) -> None:
        """The next form after ``decision`` answered the current one, or the verdict."""
        assert isinstance(self.step, Ask)
        self.step = self.flow.next(self.step, decision)

    def review_failed(self, err: Exception) -> Any:
        """A review that raised: the thread suspends (the interrupt propagates), or the
        call's key belongs to another question (not run, the result says why)."""
        if isinstance(err, GraphInterrupt):
            note_suspended()
            raise err
        return self.tool._result(not_run(_MISMATCH))

    @property
    def _verdict(self) -> Verdict:
        assert isinstance(self.step, Verdict)
        return self.step

    @property
    def runs(self) -> bool:
        """The verdict runs the tool (approved, or a valid edit)."""
        return self._verdict.run

    def result(self) -> Any:
        """The not-run verdict as ``_run``'s result (a ToolMessage with a tool call id)."""
        return self.tool._result(self._verdict)

    @property
    def request_id(self) -> str:
        """The first review's request id (its row holds the reviewed args' hash)."""
        return self.flow.first_request_id or ""

    def siblings(self, *, sync: bool) -> list[str]:
        """The ids of this turn's other calls that will ask a reviewer (wait for them);
        none when this call runs in a task of its own (a ``Send`` per call: LangGraph never
        re-runs a finished task, so nothing here can act twice)."""
        if not self.shared:
            return []
        return _gated_siblings(self.runtime, self.call_id, sync=sync)

    def unbound(self, row: ReviewRecord | None) -> Any:
        """Not-run result when the first review's row does not bind these args; else None
        (and the run is logged)."""
        verdict = self._verdict
        if not self.flow.bound(row.payload.get("args_hash") if row is not None else None):
            return self.tool._result(not_run(_MISMATCH, verdict.decision))
        _log_run(self.tool.name, verdict)
        return None

    def tool_input(self) -> dict[str, Any]:
        """The reviewed (or edited) arguments, with the injected ones passed on."""
        return self.tool._invoke_args(self.full, self._verdict.args)

    def granted(self) -> Execution | None:
        """The execution of a call a standing grant covers (no request), or None: ask.
        A grant that cannot be read asks a reviewer (fail closed)."""
        tool = self.tool
        if tool.grants is None or not isinstance(self.step, Ask) or self.call_id is None:
            return None
        try:
            return covering_grant(
                tool.keeper.ledger,
                tool=tool.name,
                loop_id=getattr(tool.keeper, "loop_id", None),
                args_hash=self.flow.binding,
                call_id=self.call_id,
                clock=getattr(tool.keeper, "clock", time.time),
                not_run=not_run_message(tool.name, self.call_id),
            )
        except Exception:
            log.warning("tool %s: standing grants could not be read; asking a reviewer", tool.name)
            return None

    def granted_input(self) -> dict[str, Any]:
        """The call's own arguments (as a reviewer would have seen them), with the injected
        ones passed on."""
        return self.tool._invoke_args(self.full, dict(self.flow.view.args))

    def record_grant(self, row: ReviewRecord) -> None:
        """Write the standing grant the reviewer chose with this approval (none: nothing)."""
        verdict, grants = self._verdict, self.tool.grants
        if verdict.grant is None or grants is None:
            return
        clock = getattr(self.tool.keeper, "clock", time.time)
        record_grant(
            self.tool.keeper.ledger,
            scope=verdict.grant,
            grants=grants,
            tool=self.tool.name,
            row=row,
            decision=verdict.decision,
            now=clock(),
        )

    def execution(self, row: ReviewRecord, config: RunnableConfig) -> Execution:
        """The at-most-once record of this approved call's action, keyed by its first
        review's row (see :mod:`hitl_agent.langchain._once`)."""
        keeper = self.tool.keeper
        return Execution(
            ledger=keeper.ledger,
            key=row.key,
            tool=self.tool.name,
            request_id=self.request_id,
            thread_id=row.thread_id or (config.get("configurable") or {}).get("thread_id"),
            tool_call_id=self.call_id,
            decision=self._verdict.decision,
            not_run=lambda message: self.tool._result(not_run(message, self._verdict.decision)),
            clock=getattr(keeper, "clock", time.time),
        )


def _stored_exclusion(ledger: Ledger, request_id: str) -> Any:
    """The identities the first form's policy excluded, as kept with its row. The row was
    decided under the policy, so it holds them; if it does not, the follow-up is not asked
    (ConfigError) rather than asked without the exclusion."""
    row = ledger.get_by_request_id(request_id)
    policy = row.payload.get("policy") if row is not None else None
    if not isinstance(policy, dict):
        raise ConfigError(
            "exclude",
            f"the first review {request_id} has no stored policy to take the exclusion from",
            "this is a bug or a hand-edited ledger: the call is not run",
        )
    return list(policy.get("exclude") or ())


def _required(schema: Any, name: str, prop: Mapping[str, Any]) -> bool:
    model = _v2(schema)
    if model is None:
        raw = schema if isinstance(schema, dict) else schema.schema()
        return name in (raw.get("required") or [])
    field = model.model_fields.get(name)
    return field is not None and field.is_required()


def _log_run(tool: str, verdict: Verdict) -> None:
    action = verdict.decision.action if verdict.decision else None
    log.info(
        "running tool=%s action=%s request_id=%s args_hash=%s",
        tool,
        action.type if action else None,
        verdict.decision.request_id if verdict.decision else None,
        # 16 hex digits name the args in a log; the full 64 look like a capability token to
        # every redaction filter and log scanner.
        args_hash(tool, to_jsonable_python(verdict.args, fallback=repr))[:16],
    )


def _turn(runtime: Any, call_id: str | None) -> list[Any]:
    """The tool calls of the model turn that made this call (from the ToolRuntime's state)."""
    if call_id is None or runtime is None:
        return []
    state = getattr(runtime, "state", None)
    if isinstance(state, dict):
        messages = state.get("messages")
    else:
        messages = getattr(state, "messages", None)
    for message in reversed(messages or []):
        calls = message.tool_calls if isinstance(message, AIMessage) else []
        if any(call.get("id") == call_id for call in calls):
            return list(calls)
    return []


def _position(runtime: Any, call_id: str | None) -> tuple[int | None, int | None]:
    """This call's 1-based position among the tool calls of its model turn, when known."""
    ids = [call.get("id") for call in _turn(runtime, call_id)]
    if call_id is None or call_id not in ids:
        return None, None
    return ids.index(call_id) + 1, len(ids)


def _reviews(tool: BaseTool | None, args: Any, *, sync: bool) -> bool:
    """Whether a sibling call will ask a reviewer (so this call must not act before it has)."""
    from ._ask import AskHumanTool

    if isinstance(tool, AskHumanTool):
        return True
    if not isinstance(tool, ApprovalTool) or not tool._asks(args):
        return False
    if sync and sync_unsupported(tool.inner):
        return False  # it fails before asking anyone
    model = _v2(tool.tool_call_schema)
    if model is not None:
        try:
            model.model_validate(args)
        except ValidationError:
            return False  # ToolNode answers it with a validation error; no review comes
    return True


def _gated_siblings(runtime: Any, call_id: str | None, *, sync: bool) -> list[str]:
    """The ids of this turn's other calls that will ask a reviewer, in the same ToolNode."""
    tools = {tool.name: tool for tool in getattr(runtime, "tools", None) or []}
    return [
        call["id"]
        for call in _turn(runtime, call_id)
        if call.get("id") != call_id
        and _reviews(tools.get(call.get("name")), call.get("args"), sync=sync)
        and not ran_under_grant(tools.get(call.get("name")), call.get("id"))
    ]


_WARNED: set[tuple[str, ...]] = set()


def _warn_if_exposed(tool: str, runtime: Any, call_id: str | None, config: RunnableConfig) -> None:
    """Warn once when a gated call shares its ToolNode task with tools no wrapper guards:
    LangGraph re-runs the whole task on each resume, so they run again."""
    calls = _turn(runtime, call_id)
    if len(calls) < 2 or not shares_task(config):
        return
    tools = {t.name: t for t in getattr(runtime, "tools", None) or []}
    from ._ask import AskHumanTool

    exposed = sorted(
        {
            str(call.get("name"))
            for call in calls
            if call.get("id") != call_id
            and not isinstance(tools.get(call.get("name")), ApprovalTool | AskHumanTool)
        }
    )
    gated = 1 + len(_gated_siblings(runtime, call_id, sync=True))
    # ToolNode runs a shared turn on LangGraph's executor: max_concurrency threads, else
    # ThreadPoolExecutor's default. Calls beyond it cannot start while the others wait.
    pool = config.get("max_concurrency") or min(32, (os.cpu_count() or 1) + 4)
    if gated > pool and ("pool", tool) not in _WARNED:
        _WARNED.add(("pool", tool))
        log.warning(
            "tool %s: %d calls of one model turn wait for reviewers in one ToolNode task, "
            "more than its %d threads: the calls beyond them start only after the others, "
            "and each resume may wait up to 30 s for them. Route tool calls with "
            "hitl_agent.langgraph.tools_condition (one task per call)",
            tool,
            gated,
            pool,
        )
    if not exposed or (tool, *exposed) in _WARNED:
        return
    _WARNED.add((tool, *exposed))
    log.warning(
        "tool %s waits for a reviewer in the same ToolNode task as %s: LangGraph re-runs the "
        "whole task on each resume, so %s may run again. Route tool calls with "
        "hitl_agent.langgraph.tools_condition (one task per call), or use create_agent",
        tool,
        ", ".join(exposed),
        "they" if len(exposed) > 1 else "it",
    )


def _as_tool(tool_or_fn: BaseTool | Callable[..., Any]) -> BaseTool:
    if isinstance(tool_or_fn, ApprovalTool):
        raise TypeError(f"tool {tool_or_fn.name!r} already requires approval")
    if isinstance(tool_or_fn, BaseTool):
        return tool_or_fn
    if callable(tool_or_fn):
        return StructuredTool.from_function(tool_or_fn)
    raise TypeError(f"require_approval expects a BaseTool or a function, got {tool_or_fn!r}")


def require_approval(
    keeper: Gatekeeper,
    tool_or_fn: BaseTool | Callable[..., Any],
    *,
    when: Policy | None = None,
    allow_edit: bool = False,
    allow_respond: bool = False,
    description: str | None = None,
    priority: str | None = None,
    timeout_seconds: int | None = None,
    grants: Grants | None = None,
    quorum: int | Quorum | None = None,
    exclude: Exclude | None = None,
    escalate: Sequence[Escalate] | None = None,
) -> ApprovalTool:
    """Wrap a tool (or a plain function, made a tool first) so a human decides each call.

    Args:
        keeper: the Gatekeeper whose loop, ledger and defaults the reviews use.
        tool_or_fn: the tool, or a function with type hints and a docstring.
        when: ``args -> bool``; False lets the call run without a review (no request, no
            ledger row). None: every call is reviewed. A policy that raises asks a reviewer.
        allow_edit: offer "Edit the arguments" (a second request with the args as text).
        allow_respond: offer "Answer instead" (a second request for the reply).
        description: what the reviewer reads under the tool's name (default: the tool's
            description).
        priority, timeout_seconds: for these reviews (None: the keeper's defaults).
        grants: the standing grants the reviewer may give besides "approve once"
            (:class:`hitl_agent.policies.Grants`): later calls in a grant's scope run
            without a new request until it expires (see docs/policies.md). None: none.
        quorum, exclude, escalate: the approval policy of the first form, as
            ``keeper.review`` takes it (docs/policies.md): ``quorum`` different reviewers must
            approve; answers by ``exclude`` (identities, or a callable of the run's
            ``configurable``) never count, on the follow-up forms either; ``escalate`` asks
            the next loop when nobody answered in time. With ``quorum`` above 1, an edit or a
            standing grant (one reviewer's choice) is refused: ConfigError.
    """
    inner = _as_tool(tool_or_fn)
    policy = _check_policy(quorum, exclude, escalate, allow_edit=allow_edit, grants=grants)
    check_settings(keeper, priority, timeout_seconds)
    schema, runtime_arg = wrapper_schema(inner)
    fields: dict[str, Any] = {}
    extras = getattr(inner, "extras", None)
    if extras is not None:
        fields["extras"] = extras
    return ApprovalTool(
        # The same tool to the model, to callbacks and tracing, and to ToolNode's result
        # handling (response_format, error handlers).
        name=inner.name,
        description=inner.description,
        args_schema=schema,
        return_direct=inner.return_direct,
        verbose=inner.verbose,
        callbacks=inner.callbacks,
        tags=inner.tags,
        metadata=inner.metadata,
        handle_tool_error=inner.handle_tool_error,
        handle_validation_error=inner.handle_validation_error,
        response_format=inner.response_format,
        runtime_arg_=runtime_arg,
        inner=inner,
        keeper=keeper,
        when=when,
        allow_edit=allow_edit,
        allow_respond=allow_respond,
        gate_description=description,
        priority=priority,
        timeout_seconds=timeout_seconds,
        grants=_check_grants(grants),
        policy_=policy,
        **fields,
    )


def _check_policy(
    quorum: int | Quorum | None,
    exclude: Exclude | None,
    escalate: Sequence[Escalate] | None,
    *,
    allow_edit: bool,
    grants: Grants | None,
) -> dict[str, Any]:
    """The policy's ``keeper.review`` arguments, checked now (an identity callable is
    called per call, on its run's ``configurable``)."""
    checked = resolve_policy(
        quorum, None if callable(exclude) else exclude, escalate, configurable={}
    )
    if checked is not None and checked.approvals > 1 and (allow_edit or grants is not None):
        raise ConfigError(
            "quorum",
            f"needs {checked.approvals} reviewers' approvals, and "
            + ("an edit" if allow_edit else "a standing grant")
            + " is one reviewer's choice that would run without the others'",
            "leave allow_edit and grants out with quorum above 1 (reject and answer-instead "
            "stay available)",
        )
    given = {"quorum": quorum, "exclude": exclude, "escalate": list(escalate or ()) or None}
    return {name: value for name, value in given.items() if value is not None}


def _check_grants(grants: Any) -> Grants | None:
    if grants is None or isinstance(grants, Grants):
        return grants
    raise ConfigError(
        "grants",
        f"expected a hitl_agent.policies.Grants, got {type(grants).__name__}",
        "pass grants=Grants(thread=SECONDS, args=SECONDS)",
    )
