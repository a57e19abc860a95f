"""Gatekeeper: ask a human, durably inside LangGraph or blocking outside it.

::

    keeper = Gatekeeper(client=HITLClient(...), loop_id="...", ledger="sqlite:///hitl.db",
                        callback_url="https://my.app/hitl")
    decision = keeper.review("Refund $250 to order 1234?", response_type="single_select",
                             response_config={"options": ["Approve", "Reject"]},
                             default_response="reject", priority="high")
    if decision.approved:
        refund()

Inside a graph node or tool the review creates its request once (across replays and crashes),
suspends the thread with ``interrupt()`` and returns the Decision when a dispatcher resumes
it. Outside a graph it blocks, served by one poll thread per process.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any, overload

from pydantic import ValidationError

from .._callback_paths import canonical_callback_url
from .._config import (
    UNSET,
    CallbackConfig,
    PollConfig,
    ReviewDefaults,
    from_keywords,
    unset_if_none,
)
from .._exceptions import ConfigError
from .._hooks import checkpoint
from .._text import MAX_REQUEST_TEXT, PRODUCT_MARK
from ..decision import Decision
from ..dispatch import CallBudget, CompositeResumer, Dispatcher, Resumer
from ..ledger import Ledger, ReviewRecord, open_ledger
from ..models.workflows import WorkflowRef, workflow_ref
from ..policies import Escalate, Grants, Quorum
from ..protocol import WaitMode, review_payload
from ._blocking import BlockingResumer, hub
from ._create import CreateTarget, aensure_request, ensure_request
from ._errors import ReviewTimeoutError
from ._grants import ReviewGrants
from ._policy import (
    NOTES_MAX,
    Exclude,
    PolicyRun,
    ReviewPolicy,
    Stage,
    StagedReview,
    notes_text,
    resolve_policy,
)
from ._spec import ReviewSpec, answer_values

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from .._client import AsyncHITLClient, HITLClient
    from ..langchain import ApprovalTool, AskHumanTool, MiddlewareBridge, RemoteMiddlewareBridge
    from ..langgraph.pregel import GraphContext

__all__ = ["Gatekeeper"]

_UNSET: Any = object()


class Gatekeeper:
    """Creates reviews once, waits for them safely, and builds their dispatcher.

    Args:
        client: the HITL client (sync); it is used for creates, reconciliation and polling.
        loop_id: the loop reviews are created in.
        workflow: instead of ``loop_id``: the HITL.sh workflow each review triggers, as its
            id or its trigger URL (``https://api.hitl.sh/v1/workflows/{id}/trigger`` or the
            n8n node's ``.../v1/workflows/webhook/{id}``; only the id and the shape are read,
            the POST goes to the client's ``base_url``). The trigger carries the rendered
            request; the answer's ``request_id`` is waited on like a created request's.
            Exactly one of ``loop_id`` and ``workflow``: else a ConfigError naming both.
        ledger: a :class:`~hitl_agent.ledger.Ledger` or a URL for ``open_ledger``
            (``sqlite:///hitl.db``, ``postgresql://...``); a URL-opened ledger is closed by
            :meth:`close`.
        defaults: a :class:`~hitl_agent.ReviewDefaults`, what every review starts from:
            ``priority`` and ``timeout_seconds`` (medium, 3600 s), ``approve_on_timeout``
            (opt-in: a timeout whose default approves, approves; off by default, fail
            closed) and ``approve_values`` (``single_select`` option values that approve;
            default approve, approved, yes, allow; only an option of the review's form ever
            approves).
        callbacks: a :class:`~hitl_agent.CallbackConfig`. ``url``: the public base URL of
            the dispatcher's receiver; each request gets ``{url}/{token}``. Any path works,
            the root included (``http://host:8000``: tokens at ``/<token>``); the
            dispatcher answers under it. None: no callbacks, polling only. ``secret``: the
            HMAC secret for callback tokens (32 bytes or more); default
            ``HITL_CALLBACK_SECRET``. Without either, the keeper generates one and keeps it
            in the ledger, so every replica on a shared ledger derives the same tokens.
            ``path``: the receiver path of :meth:`dispatcher` (default: the URL's path).
        polling: a :class:`~hitl_agent.PollConfig`. ``interval``: the shortest gap between
            sweeps (default: 1 s); the schedule comes from the open rows and the budget
            (about a second against the local server, the budget's steady rate on HITL.sh;
            see ``docs/durable-reviews.md#quota``). ``budget``: the hourly call budget
            shared by every dispatcher of this keeper. ``deadline_grace``: seconds past a
            deadline before a row is decided fail-closed (300).
        async_client: optional async client for ``areview`` creates.
        clock: epoch seconds (inject a FakeClock in tests).
        priority, timeout_seconds, approve_on_timeout, approve_values: the flat spellings
            of ``defaults``' fields.
        callback_url, callback_secret: the flat spellings of ``callbacks``' ``url`` and
            ``secret``.
        budget, poll_interval: the flat spellings of ``polling``'s ``budget`` and
            ``interval``. A setting given both flat and in its group is a ConfigError.
    """

    def __init__(
        self,
        *,
        client: HITLClient,
        loop_id: str | None = None,
        ledger: Ledger | str,
        workflow: str | WorkflowRef | None = None,
        defaults: ReviewDefaults | None = None,
        callbacks: CallbackConfig | None = None,
        polling: PollConfig | None = None,
        async_client: AsyncHITLClient | None = None,
        clock: Callable[[], float] = time.time,
        # The flat spellings of defaults=, callbacks= and polling= (accepted as before):
        priority: str | None = None,
        timeout_seconds: int | None = UNSET,
        approve_on_timeout: bool | None = None,
        approve_values: Iterable[str] | None = None,
        callback_url: str | None = None,
        callback_secret: str | None = None,
        budget: CallBudget | None = None,
        poll_interval: float | None = None,
    ) -> None:
        defaults = from_keywords(
            ReviewDefaults,
            defaults,
            "defaults",
            {
                "priority": ("priority", unset_if_none(priority)),
                "timeout_seconds": ("timeout_seconds", timeout_seconds),
                "approve_on_timeout": ("approve_on_timeout", unset_if_none(approve_on_timeout)),
                "approve_values": ("approve_values", unset_if_none(approve_values)),
            },
        )
        callbacks = from_keywords(
            CallbackConfig,
            callbacks,
            "callbacks",
            {
                "callback_url": ("url", unset_if_none(callback_url)),
                "callback_secret": ("secret", unset_if_none(callback_secret)),
            },
        )
        polling = from_keywords(
            PollConfig,
            polling,
            "polling",
            {
                "budget": ("budget", unset_if_none(budget)),
                "poll_interval": ("interval", unset_if_none(poll_interval)),
            },
        )
        priority, timeout_seconds = defaults.priority, defaults.timeout_seconds
        approve_on_timeout, approve_values = defaults.approve_on_timeout, defaults.approve_values
        callback_url, callback_secret = callbacks.url, callbacks.secret
        budget, poll_interval = polling.budget, polling.interval
        target = _target_of(loop_id, workflow)
        secret = callback_secret or os.environ.get("HITL_CALLBACK_SECRET") or None
        canonical = canonical_callback_url(callback_url) if callback_url is not None else None
        if secret is not None:
            _check_secret(secret, "callback_secret" if callback_secret else "HITL_CALLBACK_SECRET")
        self._owns_ledger = isinstance(ledger, str)
        self.ledger: Ledger = open_ledger(ledger) if isinstance(ledger, str) else ledger
        if canonical is not None and secret is None:
            secret = self._shared_secret()
        self.client = client
        self.async_client = async_client
        self.loop_id = loop_id if target is None else None
        self.workflow = target
        """The workflow reviews are triggered through (None: created in ``loop_id``)."""
        self.callback_url = canonical
        self.clock = clock
        self.approve_on_timeout = approve_on_timeout
        # Checked now (a bare string, a value that is also a default reject value), not on
        # the first review an agent asks for.
        self.approve_values = (
            answer_values(approve_values, None)[0] if approve_values is not None else None
        )
        self.priority = priority
        self.timeout_seconds = timeout_seconds
        self.budget = budget or CallBudget(clock=clock)
        self.poll_interval = poll_interval
        self._target = CreateTarget(
            ledger=self.ledger,
            loop_id=self.loop_id,
            callback_url=self.callback_url,
            callback_secret=secret,
            clock=clock,
            budget=self.budget,  # reconciliation pays for its listing (issue 20 F5)
            workflow=target,
        )
        self._blocking = Dispatcher(
            ledger=self.ledger,
            client=client,
            resumer=BlockingResumer(hub),
            loop_id=self.loop_id,
            clock=clock,
            polling=PollConfig(
                poll_interval, self.budget, polling.deadline_grace, polling.fail_closed_after_outage
            ),
            row_filter=lambda row: row.thread_id is None,
            webhooks=self.callback_url is not None,
        )
        self.defaults = ReviewDefaults(
            self.priority, self.timeout_seconds, self.approve_on_timeout, self.approve_values
        )
        """What every review starts from (each ``review()`` may override it)."""
        self.callbacks = CallbackConfig(
            self.callback_url,
            callback_secret,
            callbacks.path,
            callbacks.signing_secret,
            callbacks.trust_signed_bodies,
        )
        """The callback settings (``url`` canonical; ``secret`` as passed, if it was)."""
        self.polling = PollConfig(
            poll_interval, self.budget, polling.deadline_grace, polling.fail_closed_after_outage
        )
        """The polling settings every dispatcher of this keeper starts from."""

    def __repr__(self) -> str:
        where = (
            f"loop_id={self.loop_id!r}"
            if self.workflow is None
            else f"workflow={self.workflow.id!r}"
        )
        return f"Gatekeeper({where}, ledger={self.ledger!r}, callback_url={self.callback_url!r})"

    def _shared_secret(self) -> str:
        """The ledger's callback secret, generated by whichever replica starts first."""
        try:
            return self.ledger.ensure_meta(CALLBACK_SECRET_META, secrets.token_urlsafe(32))
        except BaseException as exc:
            if self._owns_ledger:
                self.ledger.close()
            if not isinstance(exc, NotImplementedError):
                raise
            raise ConfigError(
                "callback_secret",
                f"callback_url is set, no secret was given, and {type(self.ledger).__name__} "
                "cannot keep a generated one",
                "pass callback_secret=... or set HITL_CALLBACK_SECRET (32+ random bytes)",
            ) from None

    def close(self) -> None:
        """Close the ledger if this keeper opened it from a URL."""
        if self._owns_ledger:
            self.ledger.close()

    def __enter__(self) -> Gatekeeper:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- building ------------------------------------------------------------------------

    def spec(
        self,
        request_text: str,
        *,
        response_type: str = "boolean",
        response_config: Mapping[str, Any] | None = None,
        default_response: Any = None,
        priority: str | None = None,
        timeout_seconds: int | None = _UNSET,
        processing_type: str = "time-sensitive",
        context: Mapping[str, Any] | None = None,
        summary: str | None = None,
        approve_values: Iterable[str] | None = None,
        reject_values: Iterable[str] | None = None,
        approve_on_timeout: bool | None = None,
    ) -> ReviewSpec:
        """The validated :class:`ReviewSpec` a review with these arguments would send.

        ``approve_values`` / ``reject_values``: the ``single_select`` values that approve or
        reject (e.g. ``reject_values=["remove"]``); any other option is ``answered``, never an
        approval, and an answer that is no option of the form is refused. A value in both
        lists (defaults included) is a ConfigError.
        """
        return ReviewSpec.build(
            request_text,
            response_type=response_type,
            response_config=response_config,
            default_response=default_response,
            priority=priority or self.priority,
            timeout_seconds=self.timeout_seconds if timeout_seconds is _UNSET else timeout_seconds,
            processing_type=processing_type,
            context=context,
            summary=summary,
            approve_values=approve_values or self.approve_values,
            reject_values=reject_values,
            approve_on_timeout=(
                self.approve_on_timeout if approve_on_timeout is None else approve_on_timeout
            ),
        )

    def dispatcher(
        self,
        resumer: Resumer | None = None,
        *,
        callback_path: str | None = None,
        poll_interval: float | None = None,
        deadline_grace: float | None = None,
    ) -> Dispatcher:
        """Receiver + poller + resolver for this keeper's reviews.

        Graph rows go to ``resumer`` (e.g. ``GraphResumer(graph)``); rows of blocking reviews
        complete the callers waiting in this process. The receiver answers under the path of
        the callback URL (``/hitl`` without one). ``callback_path``, ``poll_interval`` and
        ``deadline_grace`` override the keeper's ``callbacks.path`` and ``polling`` for this
        dispatcher.

        Raises:
            ConfigError: ``callback_path`` disagrees with ``callback_url``'s path (every
                callback would be a 404).
        """
        return Dispatcher(
            ledger=self.ledger,
            client=self.client,
            resumer=CompositeResumer(BlockingResumer(hub), resumer),
            loop_id=self.loop_id,
            clock=self.clock,
            callbacks=CallbackConfig(
                url=self.callback_url,
                path=self.callbacks.path if callback_path is None else callback_path,
                signing_secret=self.callbacks.signing_secret,
                trust_signed_bodies=self.callbacks.trust_signed_bodies,
            ),
            polling=PollConfig(
                self.poll_interval if poll_interval is None else poll_interval,
                self.budget,
                self.polling.deadline_grace if deadline_grace is None else deadline_grace,
                self.polling.fail_closed_after_outage,
            ),
            webhooks=self.callback_url is not None,
        )

    def review_node(self, **kwargs: Any) -> Callable[[Any], Any]:
        """A prebuilt LangGraph node; see :func:`hitl_agent.langgraph.review_node`."""
        from ..langgraph import review_node  # the adapter loads LangGraph: on use only

        return review_node(self, **kwargs)

    # -- reviewing -----------------------------------------------------------------------

    def review(
        self,
        request_text: str,
        *,
        tool_call_id: str | None = None,
        key: str | None = None,
        wait_timeout: float | None = None,
        mode: WaitMode = "auto",
        response_type: str = "boolean",
        response_config: Mapping[str, Any] | None = None,
        default_response: Any = None,
        priority: str | None = None,
        timeout_seconds: int | None = _UNSET,
        processing_type: str = "time-sensitive",
        context: Mapping[str, Any] | None = None,
        summary: str | None = None,
        approve_values: Iterable[str] | None = None,
        reject_values: Iterable[str] | None = None,
        approve_on_timeout: bool | None = None,
        quorum: int | Quorum | None = None,
        exclude: Exclude | None = None,
        escalate: Sequence[Escalate] | None = None,
        grants: Grants | None = None,
    ) -> Decision:
        """Ask a human and return the Decision (see the module docstring).

        Args:
            request_text: the markdown the reviewer sees.
            tool_call_id: the tool call this review guards (pass it from tools: parallel
                tool calls need it to keep their reviews apart).
            key: an explicit correlation key (blocking mode: makes a retried script reuse
                the same request).
            wait_timeout: blocking mode only: seconds to wait before ReviewTimeoutError.
            mode: ``auto`` (interrupt inside a graph run, block outside), ``interrupt``
                (ConfigError outside a graph run) or ``block`` (wait here even in a graph).
            response_type, response_config, default_response, priority, timeout_seconds,
                processing_type, context, summary, approve_values, reject_values,
                approve_on_timeout: the question, as :meth:`spec` takes it (priority,
                timeout_seconds, approve_values and approve_on_timeout default to the
                keeper's ``defaults``).
            quorum, exclude, escalate: an approval policy (docs/policies.md): approved only
                when ``quorum`` different reviewers approve; answers by the ``exclude``
                identities (or a callable of the run's ``configurable``) never count;
                ``escalate`` stages ask elsewhere when nobody answered in time. Each request
                the policy makes is its own gate (one ledger row, one review).
            grants: standing grants the reviewer may give (:class:`~hitl_agent.Grants`) on a
                plain approve/reject question: "approve for this thread" (later reviews of
                this node in this thread) and "approve these exact arguments" (later reviews
                asking exactly this); a review a live grant covers asks nobody and returns an
                approval naming the grant (gate/_grants.py, docs/policies.md).
        """
        question = dict(
            response_type=response_type,
            response_config=response_config,
            default_response=default_response,
            priority=priority,
            timeout_seconds=timeout_seconds,
            processing_type=processing_type,
            context=context,
            summary=summary,
            approve_values=approve_values,
            reject_values=reject_values,
            approve_on_timeout=approve_on_timeout,
        )
        review = self._review_of(
            request_text, question, mode, key, tool_call_id, wait_timeout, grants, quorum
        )
        review.policy = (quorum, exclude, escalate)
        covered = review.covered()
        if covered is not None:
            return covered
        decision = self._decide(review)
        if review.granting is not None and review.granting.chosen(decision):
            row = self.ledger.get_by_request_id(decision.request_id)
            review.granting.record(decision, row, review.asked)
        return decision

    def _decide(self, review: _Review) -> Decision:
        """The review's decision: one request, or the stages of its policy."""
        ctx, tool_call_id, left = review.ctx, review.tool_call_id, review.left
        if not review.has_policy:
            return self._ask(ctx, review.key, review.spec, self._target, tool_call_id, left())
        staged = self._staged(review)
        while isinstance(step := staged.step(), Stage):
            stage_spec, target = self._stage_spec(staged, step, review)
            stage_key = staged.key(step, partial(_next_key, ctx, tool_call_id))
            staged.answered(self._ask(ctx, stage_key, stage_spec, target, tool_call_id, left()))
            checkpoint("policy.after_stage_decided")
        return step

    def _ask(
        self,
        ctx: GraphContext | None,
        key: str | None,
        spec: ReviewSpec,
        target: CreateTarget,
        tool_call_id: str | None,
        wait_timeout: float | None,
    ) -> Decision:
        """One request: created once, waited for (interrupt or block), its trusted decision."""
        if ctx is not None:
            gate_key = key or ctx.key(tool_call_id)
            row = ensure_request(
                target,
                self.client,
                gate_key,
                spec,
                thread_id=ctx.thread_id,
                checkpoint_ns=ctx.checkpoint_ns,
            )
            return self._wait_in_graph(ctx, row, spec, tool_call_id)
        row = ensure_request(target, self.client, key or _blocking_key(), spec)
        return self._wait_blocking(row, wait_timeout)

    # -- approval policies (gate/_policy.py) ---------------------------------------------

    def _review_of(
        self,
        request_text: str,
        question: dict[str, Any],
        mode: WaitMode,
        key: str | None,
        tool_call_id: str | None,
        wait_timeout: float | None,
        grants: Any,
        quorum: Any,
    ) -> _Review:
        """One review as both twins ask it: its question checked, where it waits, and its
        grants (the choices added to the form, the correlation key fixed now: a grant use
        is keyed by it)."""
        spec = self.spec(request_text, **question)
        ctx = _context_for(mode)
        review = _Review(ctx, key, tool_call_id, request_text, question, spec, _Left(wait_timeout))
        if grants is None:
            return review
        if not isinstance(grants, Grants):
            raise ConfigError(
                "grants",
                f"expected a hitl_agent.Grants, got {type(grants).__name__}",
                "pass grants=Grants(thread=SECONDS, args=SECONDS)",
            )
        approvals = quorum.approvals if isinstance(quorum, Quorum) else (quorum or 1)
        if approvals != 1:
            raise ConfigError(
                "grants",
                "a standing grant is one reviewer's choice, and a quorum needs several",
                "leave grants= out with quorum above 1",
            )
        granting = ReviewGrants(self.ledger, grants, self.loop_id, ctx, self.clock)
        asked, lines = granting.form(question)
        footer = "\n\n".join(f"{PRODUCT_MARK} {line}" for line in lines)
        text = f"{request_text}\n\n{footer}" if footer else request_text
        review.granting, review.asked = granting, spec.spec_hash()  # the question as asked
        review.key = key or (ctx.key(tool_call_id) if ctx is not None else _blocking_key())
        review.request_text, review.question = text, asked
        review.spec = self.spec(text, **asked)
        return review

    def _staged(self, review: _Review) -> StagedReview:
        """The review's stages: the policy kept with its first stage's row when there is one
        (a resume applies what the first reviewer was shown), else the one asked for."""
        ctx, key, request_text = review.ctx, review.key, review.request_text
        limit = MAX_REQUEST_TEXT - NOTES_MAX - 2
        if len(request_text) > limit:
            raise ConfigError(
                "request_text",
                f"{len(request_text)} characters leave no room for the approval policy's "
                f"notes: at most {limit} with quorum, exclude or escalate",
                "shorten the text (HITL.sh takes 2,000 characters, the policy's notes up to "
                f"{NOTES_MAX})",
            )
        base = key or (ctx.key(review.tool_call_id) if ctx is not None else _blocking_key())
        first = self.ledger.get(base)
        stored = first.payload.get("policy") if first is not None else None
        if isinstance(stored, dict):
            policy: ReviewPolicy | None = ReviewPolicy.from_json(stored)
        else:
            configurable = ctx.configurable if ctx is not None else {}
            policy = resolve_policy(*review.policy, configurable=configurable)
        editable = review.question["response_type"] == "editable_text"
        if policy is not None and policy.approvals > 1 and editable:
            raise ConfigError(
                "quorum",
                "a quorum approves one text, and an editable text lets each reviewer submit "
                "another: the last one would run with one reviewer's approval",
                "use a boolean or single_select question with quorum, or leave quorum out",
            )
        return StagedReview(
            PolicyRun(policy or ReviewPolicy()), base, indexed=key is None and ctx is not None
        )

    def _stage_spec(
        self, staged: StagedReview, stage: Stage, review: _Review
    ) -> tuple[ReviewSpec, CreateTarget]:
        """The stage's question (the policy's notes on top, its priority and wait) and where
        it is asked."""
        asked = dict(review.question, summary=review.spec.summary)
        if stage.priority is not None:
            asked["priority"] = stage.priority
        if stage.timeout_seconds is not None:
            # A stage that escalates ends at its wait: a timeout there never approves.
            asked.update(timeout_seconds=stage.timeout_seconds, approve_on_timeout=False)
        text = notes_text(stage, review.request_text, PRODUCT_MARK)
        # The stage's number and level ride along (the audit export shows them); the policy
        # itself is the same in every stage's row.
        where = {"stage": stage.number, "level": stage.level}
        stage_spec = replace(self.spec(text, **asked), policy={**staged.policy_json, **where})
        if stage.loop_id is None and stage.workflow is None:
            return stage_spec, self._target
        target = replace(
            self._target,
            loop_id=stage.loop_id,
            workflow=workflow_ref(stage.workflow) if stage.workflow else None,
            home_loop=self.loop_id,
        )
        return stage_spec, target

    async def areview(
        self,
        request_text: str,
        *,
        tool_call_id: str | None = None,
        key: str | None = None,
        wait_timeout: float | None = None,
        mode: WaitMode = "auto",
        response_type: str = "boolean",
        response_config: Mapping[str, Any] | None = None,
        default_response: Any = None,
        priority: str | None = None,
        timeout_seconds: int | None = _UNSET,
        processing_type: str = "time-sensitive",
        context: Mapping[str, Any] | None = None,
        summary: str | None = None,
        approve_values: Iterable[str] | None = None,
        reject_values: Iterable[str] | None = None,
        approve_on_timeout: bool | None = None,
        quorum: int | Quorum | None = None,
        exclude: Exclude | None = None,
        escalate: Sequence[Escalate] | None = None,
        grants: Grants | None = None,
    ) -> Decision:
        """Async twin of :meth:`review`."""
        question = dict(
            response_type=response_type,
            response_config=response_config,
            default_response=default_response,
            priority=priority,
            timeout_seconds=timeout_seconds,
            processing_type=processing_type,
            context=context,
            summary=summary,
            approve_values=approve_values,
            reject_values=reject_values,
            approve_on_timeout=approve_on_timeout,
        )
        review = self._review_of(
            request_text, question, mode, key, tool_call_id, wait_timeout, grants, quorum
        )
        review.policy = (quorum, exclude, escalate)
        if review.granting is None and not review.has_policy:
            ctx, tool_call_id = review.ctx, review.tool_call_id
            waiting = self._aask(
                ctx, review.key, review.spec, self._target, tool_call_id, review.left()
            )
            # Thousands of blocking waits may share a loop for hours: each keeps its request
            # id and future, not the question (_aask drops its own references too).
            del review, question
            return await waiting
        if review.granting is not None:  # its ledger reads in a worker thread (W5)
            covered = await asyncio.to_thread(review.covered)
            if covered is not None:
                return covered
        decision = await self._adecide(review)
        if review.granting is not None and review.granting.chosen(decision):
            row = await self.ledger.aget_by_request_id(decision.request_id)
            await asyncio.to_thread(review.granting.record, decision, row, review.asked)
        return decision

    async def _adecide(self, review: _Review) -> Decision:
        """Async twin of :meth:`_decide`."""
        ctx, tool_call_id, left = review.ctx, review.tool_call_id, review.left
        if not review.has_policy:
            return await self._aask(
                ctx, review.key, review.spec, self._target, tool_call_id, left()
            )
        staged = await asyncio.to_thread(self._staged, review)
        while isinstance(step := staged.step(), Stage):
            stage_spec, target = self._stage_spec(staged, step, review)
            stage_key = staged.key(step, partial(_next_key, ctx, tool_call_id))
            staged.answered(
                await self._aask(ctx, stage_key, stage_spec, target, tool_call_id, left())
            )
            checkpoint("policy.after_stage_decided")
        return step

    async def _aask(
        self,
        ctx: GraphContext | None,
        key: str | None,
        spec: ReviewSpec,
        target: CreateTarget,
        tool_call_id: str | None,
        wait_timeout: float | None,
    ) -> Decision:
        """Async twin of :meth:`_ask`."""
        client = self.async_client or self.client
        if ctx is not None:
            gate_key = key or ctx.key(tool_call_id)
            row = await aensure_request(
                target,
                client,
                gate_key,
                spec,
                thread_id=ctx.thread_id,
                checkpoint_ns=ctx.checkpoint_ns,
            )
            assert row.request_id is not None
            known = self._delivered(ctx, row, spec, tool_call_id)
            if known is not None:  # read from the ledger by aensure_request: no IO left
                return self._trusted(row.request_id, known)
            # The ledger read runs in a worker thread: never block the event loop (W5).
            return await asyncio.to_thread(self._trusted, row.request_id, None)
        row = await aensure_request(target, client, key or _blocking_key(), spec)
        request_id = row.request_id
        assert request_id is not None
        future = hub.register_async(self._blocking, request_id)  # no IO: on the loop
        # The wait may last hours, thousands at a time in one loop: it keeps the request id
        # and the future, not the row (its decoded payload) or the spec, ≈ 2.5 KB a wait.
        del row, spec
        try:
            await asyncio.to_thread(self._settle, request_id)
            try:
                return await asyncio.wait_for(future, wait_timeout)
            except TimeoutError:
                raise _wait_timed_out(request_id, wait_timeout) from None
        except BaseException:
            # The one rule of both twins (_wait_blocking): timed out, cancelled (the caller
            # gave up) or the ledger failed, nobody waits on the future now, and left in the
            # hub it would be swept for until a decision.
            hub.forget(request_id, future)
            raise

    def _wait_in_graph(
        self, ctx: GraphContext, row: ReviewRecord, spec: ReviewSpec, tool_call_id: str | None
    ) -> Decision:
        assert row.request_id is not None
        return self._trusted(row.request_id, self._delivered(ctx, row, spec, tool_call_id))

    def _delivered(
        self, ctx: GraphContext, row: ReviewRecord, spec: ReviewSpec, tool_call_id: str | None
    ) -> ReviewRecord | None:
        """Interrupt until the row's decision is delivered (no IO); the row to trust, or None
        to read it again (``review`` and ``areview`` share this: issue 18).

        ``row`` is the one ``ensure_request`` read in this run of the node. A recorded
        decision never changes (the first one wins), so a row read with one (a replay) is
        final and reused: one ledger read per replay. A row read without one is read again
        after the interrupt returns: a decision recorded since must not be missed.
        """
        self._interrupt(ctx, row, spec, tool_call_id)
        return row if row.decision is not None else None

    def _interrupt(
        self, ctx: GraphContext, row: ReviewRecord, spec: ReviewSpec, tool_call_id: str | None
    ) -> dict[str, Any]:
        """Interrupt until the row's decision is delivered (no IO); its JSON."""
        assert row.request_id is not None
        payload = review_payload(
            request_id=row.request_id,
            key=row.key,
            summary=spec.summary,
            priority=spec.priority,
            response_type=spec.response_type,
            timeout_at=row.deadline,
            tool_call_id=tool_call_id,
        )
        checkpoint("gate.before_interrupt")
        from ..langgraph.pregel import wait_for_decision

        return wait_for_decision(ctx, row.request_id, dict(payload))

    def _trusted(self, request_id: str, row: ReviewRecord | None) -> Decision:
        """The ledger's decision for ``request_id``; a resume value alone is never trusted.

        ``row``: the request's ledger row as read in this run of the node, or None to read it
        now. The delivered resume value plays no part: it only let ``interrupt()`` return.
        """
        current = row if row is not None else self.ledger.get_by_request_id(request_id)
        if current is None or current.decision is None:
            return Decision(
                request_id=request_id,
                status="completed",
                outcome="rejected",
                reason="The resume value is not backed by a recorded decision; not approved.",
            )
        try:
            # The ledger's copy wins over the delivered one (they match unless someone
            # resumed by hand with a different answer).
            return Decision.model_validate(current.decision)
        except ValidationError:
            return Decision.fail_closed(request_id, "The recorded decision is unreadable")

    def _settle(self, request_id: str) -> None:
        """Right after registering a waiter: hand it a decision the ledger already holds
        (registered first, so a decision recorded meanwhile reaches it either way)."""
        current = self.ledger.get_by_request_id(request_id)
        if current is not None and current.decision is not None:
            if current.state in ("resumed", "resuming"):
                # Delivered already, or being delivered to the waiters registered before us
                # (a delivery in flight does not see a future registered after it): the
                # recorded decision is final, so hand it over here.
                hub.complete(request_id, Decision.model_validate(current.decision))
            else:
                self._blocking.resolver.deliver(request_id)

    def _wait_blocking(self, row: ReviewRecord, wait_timeout: float | None) -> Decision:
        request_id = row.request_id
        assert request_id is not None
        future = hub.register(self._blocking, request_id)
        try:
            self._settle(request_id)
            try:
                decision: Decision = future.result(timeout=wait_timeout)
            except FutureTimeout:
                raise _wait_timed_out(request_id, wait_timeout) from None
        except BaseException:
            # As in areview: whatever ends the wait early (a timeout, the ledger failing in
            # _settle), the waiter leaves the hub, or it would be swept for until a decision.
            hub.forget(request_id, future)
            raise
        return decision

    # -- tools ---------------------------------------------------------------------------

    @overload
    def require_approval(
        self,
        tool_or_fn: BaseTool | Callable[..., Any],
        /,
        *,
        when: Callable[[dict[str, Any]], bool] | None = None,
        allow_edit: bool = False,
        allow_respond: bool = False,
        description: str | None = None,
        priority: str | None = None,
        timeout_seconds: int | None = None,
        grants: Grants | None = None,
        quorum: int | Quorum | None = None,
        exclude: Exclude | None = None,
        escalate: Sequence[Escalate] | None = None,
    ) -> ApprovalTool: ...

    @overload
    def require_approval(
        self,
        tool_or_fn: None = None,
        /,
        *,
        when: Callable[[dict[str, Any]], bool] | None = None,
        allow_edit: bool = False,
        allow_respond: bool = False,
        description: str | None = None,
        priority: str | None = None,
        timeout_seconds: int | None = None,
        grants: Grants | None = None,
        quorum: int | Quorum | None = None,
        exclude: Exclude | None = None,
        escalate: Sequence[Escalate] | None = None,
    ) -> Callable[[BaseTool | Callable[..., Any]], ApprovalTool]: ...

    def require_approval(
        self,
        tool_or_fn: BaseTool | Callable[..., Any] | None = None,
        /,
        *,
        when: Callable[[dict[str, Any]], bool] | None = None,
        allow_edit: bool = False,
        allow_respond: bool = False,
        description: str | None = None,
        priority: str | None = None,
        timeout_seconds: int | None = None,
        grants: Grants | None = None,
        quorum: int | Quorum | None = None,
        exclude: Exclude | None = None,
        escalate: Sequence[Escalate] | None = None,
    ) -> ApprovalTool | Callable[[BaseTool | Callable[..., Any]], ApprovalTool]:
        """The tool (or function) behind a human decision: same name, description and schema.

        ``keeper.require_approval(tool)``, ``@keeper.require_approval`` or
        ``@keeper.require_approval(when=..., priority="high")``. See
        :func:`hitl_agent.langchain.require_approval` and docs/tools.md.
        """
        from ..langchain import require_approval

        def wrap(target: BaseTool | Callable[..., Any]) -> ApprovalTool:
            return require_approval(
                self,
                target,
                when=when,
                allow_edit=allow_edit,
                allow_respond=allow_respond,
                description=description,
                priority=priority,
                timeout_seconds=timeout_seconds,
                grants=grants,
                quorum=quorum,
                exclude=exclude,
                escalate=escalate,
            )

        return wrap if tool_or_fn is None else wrap(tool_or_fn)

    def ask_human_tool(
        self,
        *,
        name: str = "ask_human",
        description: str | None = None,
        priority: str | None = None,
        timeout_seconds: int | None = None,
    ) -> AskHumanTool:
        """A tool the model calls to ask a person (args: question, response_type="text",
        options=None) and get the typed answer; see :func:`hitl_agent.langchain.ask_human_tool`.
        """
        from ..langchain import ask_human_tool

        return ask_human_tool(
            self,
            name=name,
            description=description,
            priority=priority,
            timeout_seconds=timeout_seconds,
        )

    # -- the HumanInTheLoopMiddleware bridge ----------------------------------------------

    @property
    def create_target(self) -> CreateTarget:
        """Where and how this keeper creates requests (loop, callback, ledger): what the
        integrations (the bridge) create through."""
        return self._target

    def bridge(
        self,
        agent: Any = None,
        *,
        langgraph_url: str | None = None,
        assistant_id: str | None = None,
        **options: Any,
    ) -> MiddlewareBridge | RemoteMiddlewareBridge:
        """Serve an unchanged ``HumanInTheLoopMiddleware`` agent's interrupts on HITL.sh.

        ``keeper.bridge(agent)`` for a compiled graph with its checkpointer, or
        ``keeper.bridge(langgraph_url=URL, assistant_id=ID)`` for one served by a LangGraph
        Server; see :func:`hitl_agent.langchain.bridge` and docs/bridge.md.
        """
        from ..langchain import bridge

        if agent is None:  # bridge() says what is missing
            return bridge(
                self, langgraph_url=langgraph_url or "", assistant_id=assistant_id or "", **options
            )
        return bridge(self, agent, **options)


#: The ledger setting that holds a generated callback secret.
CALLBACK_SECRET_META = "callback_secret"
_MIN_SECRET_BYTES = 32


def _target_of(loop_id: str | None, workflow: str | WorkflowRef | None) -> WorkflowRef | None:
    """The workflow to trigger, or None for ``loop_id``; exactly one of them is given."""
    if (loop_id is None or loop_id == "") == (workflow is None or workflow == ""):
        given = "both were given" if loop_id and workflow else "neither was given"
        raise ConfigError(
            "loop_id/workflow",
            f"exactly one of loop_id and workflow is needed: {given}",
            "pass loop_id= (a loop to create reviews in) or workflow= (a workflow id or its "
            "trigger URL), not both",
        )
    return None if workflow is None or workflow == "" else workflow_ref(workflow)


def _check_secret(secret: str, field: str) -> None:
    # The secret never appears in the message: only its length.
    size = len(secret.encode("utf-8", "surrogatepass"))
    if size < _MIN_SECRET_BYTES:
        raise ConfigError(
            field,
            f"a callback secret of {size} bytes is too short to keep callback tokens "
            f"unguessable (at least {_MIN_SECRET_BYTES} bytes)",
            "use secrets.token_urlsafe(32), or pass none and let the keeper generate one "
            "in the ledger",
        )


def _wait_timed_out(request_id: str, wait_timeout: float | None) -> ReviewTimeoutError:
    """The error of a blocking wait that ran out (both twins)."""
    return ReviewTimeoutError(
        f"no decision for request {request_id} within {wait_timeout} s; call review again "
        "with the same key to keep waiting"
    )


def _context_for(mode: WaitMode) -> GraphContext | None:
    """The graph task to interrupt in, or None to block, as ``mode`` asks."""
    if mode == "block":
        return None
    from ..langgraph.pregel import graph_context  # the adapter: loaded only to look for a graph

    ctx = graph_context()
    if ctx is None and mode == "interrupt":
        raise ConfigError(
            "mode",
            "'interrupt' needs a LangGraph run with a checkpointer, and this call is outside one",
            "call it from a graph node or tool, or use mode='auto' to block outside graphs",
        )
    return ctx


@dataclass(slots=True)
class _Review:
    """One ``review``/``areview`` call, as its twins drive it (slotted: thousands of blocking
    ``areview`` waits each hold one, bench/bench_blocking.py)."""

    ctx: GraphContext | None
    key: str | None
    tool_call_id: str | None
    request_text: str
    question: dict[str, Any]
    spec: ReviewSpec
    left: _Left
    policy: tuple[Any, Any, Any] = (None, None, None)
    """``quorum``, ``exclude``, ``escalate`` as given."""
    granting: ReviewGrants | None = None
    asked: str = ""
    """With grants: the hash of the question as asked (what an args grant covers)."""

    @property
    def has_policy(self) -> bool:
        quorum, exclude, escalate = self.policy
        return quorum is not None or exclude is not None or bool(escalate)

    def covered(self) -> Decision | None:
        """The approval a standing grant gives this review (ledger reads), or None: ask."""
        if self.granting is None or self.key is None:
            return None
        return self.granting.covering(self.key, self.asked)


class _Left:
    """What remains of a blocking review's ``wait_timeout`` (None: no limit), so that a
    policy's stages share it: a caller who waits 60 s waits 60 s, not 60 s a stage."""

    __slots__ = ("_until",)

    def __init__(self, wait_timeout: float | None) -> None:
        self._until = None if wait_timeout is None else time.monotonic() + wait_timeout

    def __call__(self) -> float | None:
        return None if self._until is None else max(0.0, self._until - time.monotonic())


def _next_key(ctx: GraphContext | None, tool_call_id: str | None) -> str:
    """A later stage's key inside a graph: the task's next, as a node's next review gets."""
    assert ctx is not None
    return ctx.key(tool_call_id)


def _blocking_key() -> str:
    return f"blk|{uuid.uuid4().hex}"
