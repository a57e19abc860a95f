"""What the local and the remote bridge share: finding pending actions, creating their
requests once, the spec of an action and the resumer that routes rows.

Framework-light: LangGraph's ``StateSnapshot`` shape is read duck-typed, so the remote bridge
(which gets JSON from a LangGraph Server) goes through the same code.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .._exceptions import ConfigError
from .._text import MAX_REQUEST_TEXT, PRODUCT_MARK
from ..decision import Decision
from ..gate import CreateTarget, aensure_request, ensure_request
from ..gate._grants import grant_options
from ..gate._policy import PolicyRun, ReviewPolicy, notes_text
from ._attach import attach_document, call_document, kept_url
from ._bridge_codec import FollowUp, FollowUpsNeeded, IncompleteDecisions, MiddlewareCodec
from ._bridge_form import Shown, Step, first_form, follow_up_form, follow_up_of, what_it_does
from ._bridge_policy import (
    BridgePolicies,
    Staged,
    form_action,
    stage_target,
    stored_policy,
    text_limit,
    walk,
)
from ._bridge_schema import (
    KEY_PREFIX,
    BridgeAction,
    action_key,
    follow_up_key,
    parse_interrupt,
    parse_key,
)

if TYPE_CHECKING:
    from ..dispatch import Resumer
    from ..gate import Gatekeeper, ReviewSpec
    from ..ledger import ReviewRecord

__all__ = ["BridgeResumer", "PendingAction", "SpecBuilder", "pending_actions"]

log = logging.getLogger("hitl_agent.bridge")

_UNSET: Any = object()

_HOSTED_KEPT = 1024

IN_FLIGHT_SECONDS = 60.0
"""How long an ``intent`` row written by someone else counts as a create in progress."""


@dataclass(frozen=True)
class PendingAction:
    """One action of a pending middleware interrupt, with where it waits."""

    thread_id: str
    checkpoint_ns: str
    interrupt_id: str
    action: BridgeAction

    @property
    def key(self) -> str:
        """The action's correlation key."""
        return action_key(
            thread_id=self.thread_id,
            checkpoint_ns=self.checkpoint_ns,
            interrupt_id=self.interrupt_id,
            action=self.action,
        )


def send_action(
    keeper: Gatekeeper,
    target: CreateTarget,
    spec: SpecBuilder,
    item: PendingAction,
    configurable: Mapping[str, Any] | None = None,
) -> ReviewRecord:
    """The HITL request of one pending action, created at most once (or the row another
    replica is creating right now: replicas sweep the same interrupts by design).

    When the first request is already decided with a choice that asks for text, its follow-up
    is made sure of too (a process that crashed between the two requests finds it again);
    under an approval policy, so is the next stage its recorded answers ask for.
    ``configurable``: the thread's, for a policy's ``exclude`` callable (first request only).
    """
    policy = spec.policy_for(item, configurable)
    row = ensure_request(
        target,
        keeper.client,
        item.key,
        spec.to_send(item.action, item.key, policy),
        thread_id=item.thread_id,
        checkpoint_ns=item.checkpoint_ns,
        defer_seconds=IN_FLIGHT_SECONDS,
    )
    follow_up = follow_up_for(spec, item, row, spec.tools)
    if follow_up is not None:
        send_follow_up(keeper, target, follow_up)
    return row


async def asend_action(
    keeper: Gatekeeper,
    target: CreateTarget,
    spec: SpecBuilder,
    item: PendingAction,
    configurable: Mapping[str, Any] | None = None,
) -> ReviewRecord:
    """Async twin of :func:`send_action` (the keeper's async client when it has one)."""
    # A call too long to show may read the ledger and upload its document: off the loop.
    policy = await asyncio.to_thread(spec.policy_for, item, configurable)
    first = await asyncio.to_thread(spec.to_send, item.action, item.key, policy)
    row = await aensure_request(
        target,
        keeper.async_client or keeper.client,
        item.key,
        first,
        thread_id=item.thread_id,
        checkpoint_ns=item.checkpoint_ns,
        defer_seconds=IN_FLIGHT_SECONDS,
    )
    follow_up = await asyncio.to_thread(follow_up_for, spec, item, row, spec.tools)
    if follow_up is not None:
        await asend_follow_up(keeper, target, follow_up)
    return row


def _interrupts(state: Any, prefix: str = "") -> dict[str, tuple[str, Any]]:
    """Every pending interrupt by id, with the namespace of the task that raised it.

    With ``subgraphs=True`` a parent task may list its subgraph's interrupts too; the deepest
    namespace (the one the resumer matches on) wins.
    """
    found: dict[str, tuple[str, Any]] = {}
    for task in getattr(state, "tasks", ()) or ():
        ns = f"{prefix}{task.name}:{task.id}"
        for interrupt in task.interrupts:
            found[str(interrupt.id)] = (ns, interrupt)
        nested = getattr(task, "state", None)
        if nested is not None and hasattr(nested, "tasks"):
            found.update(_interrupts(nested, f"{ns}|"))
    return found


def pending_actions(
    state: Any, thread_id: str, schemas: Mapping[str, Any] | None = None
) -> list[PendingAction]:
    """The bridge's actions waiting in a thread's state (``get_state(..., subgraphs=True)``).

    Args:
        state: the thread's StateSnapshot.
        thread_id: its thread id.
        schemas: per_call ``response_schema`` by interrupt id, when the interrupt objects
            do not carry it (a remote server's JSON).
    """
    pending: list[PendingAction] = []
    for interrupt_id, (ns, interrupt) in sorted(_interrupts(state).items()):
        schema = getattr(interrupt, "response_schema", None)
        if schema is None and schemas is not None:
            schema = schemas.get(interrupt_id)
        parsed = parse_interrupt(interrupt.value, schema)
        if parsed is None:
            continue
        for action in parsed[1]:
            pending.append(PendingAction(thread_id, ns, interrupt_id, action))
    return pending


class SpecBuilder:
    """Builds the review spec of an action (the same every time: it is the row's identity)."""

    def __init__(
        self,
        keeper: Gatekeeper,
        *,
        priority: str | None = None,
        timeout_seconds: int | None = _UNSET,
        tools: Mapping[str, Any] | None = None,
        policies: BridgePolicies | None = None,
    ) -> None:
        self.keeper = keeper
        self.priority = priority
        self.timeout_seconds = timeout_seconds
        self.tools = tools
        self.policies = policies or BridgePolicies(None)
        # Documents' URLs this process hosted or read (a kept URL never changes), so an async
        # resume of a call it sent reads no ledger on the event loop; bounded, oldest out.
        self._hosted: dict[str, str] = {}
        self._hosted_lock = threading.Lock()

    def __call__(self, action: BridgeAction) -> ReviewSpec:
        """The spec of the action's first request (the decision, one tap), as a reader
        re-derives it: never uploads; a call too long to show links its document when the
        ledger keeps the document's URL."""
        return self.firsts(action)[0][0]

    def policy_for(
        self, item: PendingAction, configurable: Mapping[str, Any] | None
    ) -> ReviewPolicy | None:
        """The approval policy of the action: the one kept with its first row once sent (a
        resume applies what the first reviewer was shown, even after a redeploy that changed
        or dropped the tool's policy), else its tool's, resolved now."""
        row = self.keeper.ledger.get(item.key)
        if row is not None:
            return stored_policy(row)
        return self.policies.resolve(item.action.name, configurable or {})

    def firsts(
        self, action: BridgeAction, *, upload: bool = False, staged: Staged | None = None
    ) -> list[tuple[ReviewSpec, Shown]]:
        """The specs the action's first request may have been sent with, the one to send
        first, each with how it shows the call: whole; or, when the text cannot show it and
        Approve is allowed, attached (when its document is hosted: its URL kept in the
        ledger, or uploaded now with ``upload``, 1 API call) and then cut (no Approve).
        ``staged``: the approval policy's request (its notes on top of the form)."""
        plain = self._plain(action, staged)
        if plain[1] == "whole" or "approve" not in action.allowed:
            return [plain]
        link = self._attached(action, upload)
        if not link:
            return [plain]
        return [(self._with_link(action, link, staged), "attached"), plain]

    def _form(
        self, action: BridgeAction, staged: Staged | None, attached: str = ""
    ) -> tuple[dict[str, Any], Shown]:
        policy = staged[0] if staged is not None else None
        return first_form(
            form_action(action, policy),
            what_it_does(action, self.tools),
            attached=attached,
            max_chars=text_limit(policy, MAX_REQUEST_TEXT),
            approvals=policy.approvals if policy is not None else 1,
            grants=self.policies.grants(action.name),
        )

    def granting(self, action: BridgeAction) -> tuple[str, ...]:
        """The grant choices the action's first form offers beside Approve (each approves)."""
        grants = self.policies.grants(action.name)
        if grants is None or "approve" not in action.allowed:
            return ()
        return tuple(option["value"] for option in grant_options(grants))

    def _with_link(self, action: BridgeAction, link: str, staged: Staged | None) -> ReviewSpec:
        form, _ = self._form(action, staged, link)
        return self._first(action, form, staged)

    def _plain(
        self, action: BridgeAction, staged: Staged | None = None
    ) -> tuple[ReviewSpec, Shown]:
        """The first spec with nothing attached (whole, or cut without Approve)."""
        form, shown = self._form(action, staged)
        return self._first(action, form, staged), shown

    def staged_spec(self, action: BridgeAction, shown: Shown, staged: Staged) -> ReviewSpec | None:
        """A later stage's spec: the form the first stage was sent with (``shown``), under
        this stage's notes; None when it was attached and the document's URL is not known."""
        if shown != "attached":
            return self._plain(action, staged)[0]
        link = self._attached(action, False)
        return self._with_link(action, link, staged) if link else None

    def _attached(self, action: BridgeAction, upload: bool) -> str:
        """The link to the whole call's document (:mod:`._attach`, the tool wrapper's), or ""
        when it is not hosted (and, with ``upload``, could not be: then Approve is not
        offered, as before attachments)."""
        try:
            document = call_document(action.name, action.args)
        except ConfigError:  # args no review can be bound to: never approvable
            return ""
        url = self._hosted.get(document.name)
        if url is None and not upload:
            url = kept_url(self.keeper.ledger, document.name)
        elif url is None:
            try:
                url = attach_document(self.keeper, document.body, document.name)
            except Exception as err:  # no quota, no host, a refusal: no Approve
                log.warning(
                    "bridge could not attach a long tool call of %s (%s): Approve is not offered",
                    action.name,
                    type(err).__name__,
                )
        if url is None:
            return ""
        with self._hosted_lock:
            if len(self._hosted) >= _HOSTED_KEPT:
                del self._hosted[next(iter(self._hosted))]
            self._hosted[document.name] = url
        return document.link(url)

    def sent(
        self, action: BridgeAction, spec_hash: str | None, *, staged: Staged | None = None
    ) -> tuple[ReviewSpec, Shown] | None:
        """The first request's spec the row with ``spec_hash`` was created with, and how it
        showed the call (so whether it offered Approve); None when the action no longer
        renders to it (its args changed).

        Nothing is uploaded: a form with an attachment is found through the URL the ledger
        kept when it was sent, and the ledger is read only for such a row (a whole or cut
        form is recognised by its hash alone). A row kept as cut stays cut even when the
        same document was hosted later (for another row: documents are shared by content).
        """
        plain = self._plain(action, staged)
        if spec_hash is None:  # a row written before spec hashes: nothing was attached then
            return plain
        if plain[0].spec_hash() == spec_hash:
            return plain
        attached = self.firsts(action, staged=staged)
        return next(((s, how) for s, how in attached[:-1] if s.spec_hash() == spec_hash), None)

    def to_send(
        self, action: BridgeAction, key: str, policy: ReviewPolicy | None = None
    ) -> ReviewSpec:
        """The spec to create the action's first request with (``key``: its correlation key;
        ``policy``: the approval policy it is the first stage of).

        A call too long to show is attached (its document uploaded once, charged to the
        keeper's budget) so Approve can be offered; a request already sent keeps the form it
        was sent with (a sweep never uploads for it, and its spec hash holds)."""
        staged = (policy, PolicyRun(policy).stage()) if policy is not None else None
        plain = self._plain(action, staged)
        if plain[1] == "whole" or "approve" not in action.allowed:
            return plain[0]
        row = self.keeper.ledger.get(key)
        if row is not None:
            found = self.sent(action, row.args_hash, staged=staged)
            # No form matches: the call changed since; the gate's create refuses the key.
            return (found or plain)[0]
        return self.firsts(action, upload=True, staged=staged)[0][0]

    def _first(
        self, action: BridgeAction, form: dict[str, Any], staged: Staged | None = None
    ) -> ReviewSpec:
        return self._spec(action, form, f"Approve {action.name}?", staged=staged)

    def follow_up(self, action: BridgeAction, step: Step) -> ReviewSpec:
        """The spec of the action's follow-up: the text its first answer asked for."""
        form = follow_up_form(action, step, what_it_does(action, self.tools))
        summary = {
            "edit": f"Edit the arguments of {action.name}",
            "reason": f"Say why you reject {action.name}",
            "respond": f"Answer instead of running {action.name}",
        }[step]
        return self._spec(action, form, summary, step)

    def _spec(
        self,
        action: BridgeAction,
        form: dict[str, Any],
        summary: str,
        step: Step | None = None,
        *,
        staged: Staged | None = None,
    ) -> ReviewSpec:
        extra: dict[str, Any] = {}
        if self.timeout_seconds is not _UNSET:
            extra["timeout_seconds"] = self.timeout_seconds
        context: dict[str, Any] = {"tool": action.name, "action_index": action.index}
        if action.tool_call_id is not None:
            context["tool_call_id"] = action.tool_call_id
        if step is not None:
            context["follow_up"] = step
        text, priority = form["request_text"], self.priority
        if staged is not None:
            _, stage = staged
            text = notes_text(stage, text, PRODUCT_MARK)
            priority = stage.priority or priority
            if stage.timeout_seconds is not None:
                # A stage that escalates ends at its wait (a timeout never runs the call).
                extra["timeout_seconds"] = stage.timeout_seconds
        offered = {option.get("value") for option in form["response_config"].get("options") or ()}
        # A grant choice approves like Approve (a policy's count reads it so).
        granting = tuple(v for v in self.granting(action) if step is None and v in offered)
        spec = self.keeper.spec(
            text,
            response_type=form["response_type"],
            response_config=form["response_config"],
            default_response=form["default_response"],
            priority=priority,
            context={"langchain_bridge": context},
            summary=summary,
            # The form's own values decide, and a bridged call never runs without a
            # reviewer's explicit answer.
            approve_values=("approve", *granting),
            approve_on_timeout=False,
            **extra,
        )
        if staged is None:
            return spec
        # As the gate's stages: the audit shows which request of the policy a row was.
        where = {"stage": staged[1].number, "level": staged[1].level}
        return replace(spec, policy={**staged[0].to_json(), **where})


def follow_up_for(
    spec: SpecBuilder, item: PendingAction, first: ReviewRecord, tools: Mapping[str, Any] | None
) -> FollowUp | None:
    """The follow-up of ``item`` when its first row's decision asks for one (under an
    approval policy: the next stage its recorded answers ask for, or the follow-up its final
    decision asks for), else None."""
    if first.decision is None or first.key != item.key:
        return None
    policy = stored_policy(first)
    if policy is None:
        step = follow_up_of(Decision.model_validate(first.decision), item.action, tools)
        if step is None:
            return None
        key = follow_up_key(first.key)
        return FollowUp(key, spec.follow_up(item.action, step), item.thread_id, item.checkpoint_ns)
    ledger = spec.keeper.ledger

    def row_of(key: str) -> tuple[ReviewRecord, Decision | None] | None:
        row = first if key == first.key else ledger.get(key)
        if row is None:
            return None
        decision = Decision.model_validate(row.decision) if row.decision is not None else None
        return row, decision

    walked = walk(spec, item.action, first, policy, row_of)
    if walked.ask is not None:
        key, asked, stage = walked.ask
        return FollowUp(key, asked, item.thread_id, item.checkpoint_ns, where=stage)
    if walked.final is None or walked.policy_said:
        return None
    step = follow_up_of(
        walked.final, form_action(item.action, policy), tools, approvable=walked.shown != "cut"
    )
    if step is None:
        return None
    return FollowUp(
        follow_up_key(first.key),
        spec.follow_up(item.action, step),
        item.thread_id,
        item.checkpoint_ns,
        where=walked.stage,
    )


def _where(keeper: Gatekeeper, target: CreateTarget, follow_up: FollowUp) -> CreateTarget:
    return stage_target(target, keeper.loop_id, follow_up.where)


def send_follow_up(keeper: Gatekeeper, target: CreateTarget, follow_up: FollowUp) -> ReviewRecord:
    """Create the follow-up request at most once (its key derives from the first's, so a
    process that crashed between the two requests finds the same row again). A policy's
    stage, and the follow-up of the stage that decided, are asked where that stage asks."""
    return ensure_request(
        _where(keeper, target, follow_up),
        keeper.client,
        follow_up.key,
        follow_up.spec,
        thread_id=follow_up.thread_id,
        checkpoint_ns=follow_up.checkpoint_ns,
        defer_seconds=IN_FLIGHT_SECONDS,
    )


async def asend_follow_up(
    keeper: Gatekeeper, target: CreateTarget, follow_up: FollowUp
) -> ReviewRecord:
    """Async twin of :func:`send_follow_up`."""
    return await aensure_request(
        _where(keeper, target, follow_up),
        keeper.async_client or keeper.client,
        follow_up.key,
        follow_up.spec,
        thread_id=follow_up.thread_id,
        checkpoint_ns=follow_up.checkpoint_ns,
        defer_seconds=IN_FLIGHT_SECONDS,
    )


def _waiting(err: BaseException) -> IncompleteDecisions | None:
    """The codec's "send nothing yet" in ``err`` or its causes: a resumer may wrap what the
    codec raised (the remote resumer raises ``RemoteResumeError`` from it)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, IncompleteDecisions):
            return current
        seen.add(id(current))
        current = current.__cause__
    return None


class BridgeResumer:
    """The bridge's resumer: its rows go to the codec's resumer, other graph rows (gates of
    ``keeper.review`` in the same graph) to a plain one.

    A batched row whose siblings are not all decided yet (e.g. a create still in flight on
    another replica) is "not waiting": nothing is sent and the dispatcher retries.

    With ``codec``, a per_call answer LangGraph refused without saving it (its
    ``response_schema`` check failed, e.g. edited args the tool does not accept: checked by
    the server for a remote graph, whose tools the bridge cannot see) is sent once more as a
    refusal naming the reason, so the thread never waits on an answer that can never be
    valid. Async resumes read the rows off the event loop first.
    """

    def __init__(
        self,
        bridged: Resumer,
        plain: Resumer | None = None,
        codec: MiddlewareCodec | None = None,
        keeper: Gatekeeper | None = None,
    ) -> None:
        self.bridged = bridged
        self.plain = plain
        self.codec = codec
        self.keeper = keeper

    def _follow_ups(self, record: ReviewRecord, err: FollowUpsNeeded) -> bool:
        """Create the follow-ups a first answer asked for (at most once each: the key is the
        first's plus its next index); False: nothing was sent, the resolver waits for them."""
        if self.keeper is None:
            raise ConfigError(
                "BridgeResumer.keeper", "missing", "build the resumer with keeper.bridge(agent)"
            )
        for follow_up in err.follow_ups:
            row = send_follow_up(self.keeper, self.keeper.create_target, follow_up)
            log.info(
                "bridge asks a follow-up request_id=%s after request_id=%s",
                row.request_id,
                record.request_id,
            )
        return False

    async def _afollow_ups(self, record: ReviewRecord, err: FollowUpsNeeded) -> bool:
        """Async twin of :meth:`_follow_ups`."""
        if self.keeper is None:
            raise ConfigError(
                "BridgeResumer.keeper", "missing", "build the resumer with keeper.bridge(agent)"
            )
        for follow_up in err.follow_ups:
            row = await asend_follow_up(self.keeper, self.keeper.create_target, follow_up)
            log.info(
                "bridge asks a follow-up request_id=%s after request_id=%s",
                row.request_id,
                record.request_id,
            )
        return False

    def _schema_refusal(self, record: ReviewRecord, err: Exception) -> str | None:
        """The reason to refuse with when ``err`` is a per_call schema refusal, else None."""
        parts = parse_key(record.key)
        if self.codec is None or parts is None or not parts.tool_call_id:
            return None
        text = str(err)
        # Locally LangGraph raises pydantic's error itself; a server names it in the run's
        # error. Either way per_call saved nothing, so the interrupt can be answered again.
        if not isinstance(err, ValidationError) and "ValidationError" not in text:
            return None
        detail = " ".join(text.split())[:300]
        return (
            "The reviewer's answer could not be used (the server refused it: "
            f"{detail}); the tool call was not run."
        )

    def _refuse_next(
        self, record: ReviewRecord, decisions: Sequence[Decision], err: Exception
    ) -> bool:
        """When ``err`` is the graph refusing the answer on its schema, make the next encode
        of these decisions a reject with the reason (True: resume again); else False."""
        reason = self._schema_refusal(record, err)
        if reason is None or self.codec is None:
            return False
        log.warning("bridge refuses request_id=%s: %s", record.request_id, reason)
        for decision in decisions:
            self.codec.refuse_next(decision.request_id, reason)
        return True

    def __repr__(self) -> str:
        return f"BridgeResumer({self.bridged!r})"

    def _pick(self, record: ReviewRecord) -> Resumer | None:
        return self.bridged if record.key.startswith(KEY_PREFIX) else self.plain

    def resume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool:
        """Resume the row's task; False when it is not waiting or not every action is decided."""
        target = self._pick(record)
        if target is None:
            return False
        try:
            delivered = target.resume(record, decisions)
        except Exception as err:
            waiting = _waiting(err)
            if isinstance(waiting, FollowUpsNeeded):
                return self._follow_ups(record, waiting)
            if waiting is not None:
                log.info("bridge waits for decisions request_id=%s: %s", record.request_id, waiting)
                return False
            if not self._refuse_next(record, decisions, err):
                raise
            return target.resume(record, decisions)
        if delivered and target is self.bridged:
            self._clear_waits(decisions)
        return delivered

    def _clear_waits(self, decisions: Sequence[Decision]) -> None:
        """Forget the "nothing waited" notes of rows that waited for their follow-up (the
        resume that asked it returned not-waiting, which the resolver records as a fault):
        they are delivered now, and an operator's problem list must not show them."""
        if self.codec is None:
            return
        ledger = self.codec.ledger
        for decision in decisions:
            if ledger.get_delivery_fault(decision.request_id) is not None:
                ledger.clear_delivery_fault(decision.request_id)

    async def aresume(self, record: ReviewRecord, decisions: Sequence[Decision]) -> bool:
        """Async twin of :meth:`resume`."""
        target = self._pick(record)
        if target is None:
            return False
        if target is self.bridged and self.codec is not None:
            await self.codec.aprefetch(decisions)
        try:
            delivered = await target.aresume(record, decisions)
        except Exception as err:
            waiting = _waiting(err)
            if isinstance(waiting, FollowUpsNeeded):
                return await self._afollow_ups(record, waiting)
            if waiting is not None:
                log.info("bridge waits for decisions request_id=%s: %s", record.request_id, waiting)
                return False
            if not self._refuse_next(record, decisions, err):
                raise
            return await target.aresume(record, decisions)
        if delivered and target is self.bridged:
            await asyncio.to_thread(self._clear_waits, decisions)
        return delivered

    def finished(self, record: ReviewRecord) -> bool:
        """True when the row's thread finished after its decision."""
        target = self._pick(record)
        return target.finished(record) if target is not None else False

    async def afinished(self, record: ReviewRecord) -> bool:
        """Async twin of :meth:`finished`."""
        target = self._pick(record)
        return await target.afinished(record) if target is not None else False

    def proceed(self, record: ReviewRecord) -> bool:
        """Never drives a thread on (False): the dispatcher treated the bridge's resumer as
        one written before ``proceed`` existed, and this keeps that behaviour, spelled out."""
        return False

    async def aproceed(self, record: ReviewRecord) -> bool:
        """Async twin of :meth:`proceed`."""
        return False
