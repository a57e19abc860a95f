"""The bridge's :class:`~hitl_agent.protocol.InterruptCodec`: LangChain's interrupts in, its
resume values out, validated before anything is sent.

The resolver hands a codec every decided row of one task (thread + checkpoint namespace):

* batched — all actions of the turn's ``HITLRequest``; :meth:`MiddlewareCodec.encode` puts
  one decision per action in ``action_requests`` order (``{"decisions": [...]}``), and refuses
  (:class:`IncompleteDecisions`, nothing sent) while any action has no decided row;
* per_call — each gated call is its own task, so a row is resumed alone, by its own
  interrupt id, as soon as it is decided; the row is matched to the interrupt by
  ``tool_call_id``, never by position;
* inbox — one ``HumanResponse`` in a list.

An action has one or two rows: its first request (the decision, one tap) and, when that
answer asks for text (edit, a reason, a reply), a follow-up keyed with the first's key plus
``|1`` in the same task. The resolver waits while the follow-up is pending and then hands both
rows over together, so the final decision is sent once. A first answer whose follow-up has no
row yet raises :class:`FollowUpsNeeded` (nothing sent): the bridge's resumer creates it.

A row is bound to what the reviewer saw: if the action in the pending interrupt no longer
renders to the question stored with the row (args changed in the checkpoint), its answer is
replaced by a reject saying so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._bridge_form import (
    Answer,
    Shown,
    Step,
    follow_up_of,
    read_answer,
    read_follow_up,
    refusal,
)
from ._bridge_grants import APPROVE, record_bridge_grant, use_key
from ._bridge_policy import form_action, stored_policy, voided_follow_up, walk
from ._bridge_schema import (
    BridgeAction,
    action_key,
    follow_up_key,
    parse_interrupt,
    parse_key,
    stage_key,
)

if TYPE_CHECKING:
    from ..decision import Decision
    from ..gate import ReviewSpec
    from ..gate._policy import ReviewPolicy, Stage
    from ..ledger import Ledger, ReviewRecord
    from ._bridge_schema import ActionKey

__all__ = [
    "FollowUp",
    "FollowUpsNeeded",
    "IncompleteDecisions",
    "MiddlewareCodec",
    "to_inbox_response",
]

log = logging.getLogger("hitl_agent.bridge")

_CHANGED = (
    "The tool call changed after it was sent for review; the reviewed answer does not apply "
    "and the tool call was not run."
)


# Rows read ahead by an async resume (off the event loop), for the encode that follows in the
# same task; a context variable keeps concurrent resumes apart.
_PREFETCHED: ContextVar[Mapping[str, ReviewRecord | None] | None] = ContextVar(
    "hitl_bridge_rows", default=None
)


_NO_POLICY = (
    "The request was sent under an approval policy this reader cannot apply; the tool call "
    "was not run."
)


@dataclass(frozen=True)
class _Read:
    """How one action's answer reads: bound to the call; whether its form offered Approve;
    the follow-up it asks for; the decision that decides (under a policy: the final one);
    a refusal to send instead; the stage to ask first (``need``); and where it was decided."""

    bound: bool
    approvable: bool | None
    step: Step | None
    decision: Decision
    refused: str | None = None
    need: FollowUp | None = None
    where: Stage | None = None
    policy: ReviewPolicy | None = None


def _first_decision(
    rows: Mapping[str, tuple[ReviewRecord, Decision]], first: ReviewRecord
) -> Decision:
    """The first stage's decision (what an action that cannot be decided yet shows)."""
    return rows[first.key][1]


class IncompleteDecisions(Exception):
    """A batched interrupt's decisions do not cover every action yet: send nothing."""


@dataclass(frozen=True)
class FollowUp:
    """A follow-up request to create: the text the reviewer's first answer asked for.

    Its key derives from the first request's (:func:`follow_up_key`) and it shares the first
    row's task (thread and namespace), so the resolver waits for it and then delivers both
    rows together, once.
    """

    key: str
    spec: ReviewSpec
    thread_id: str | None
    checkpoint_ns: str | None
    where: Stage | None = None
    """The approval policy's stage this request is (or whose answer it follows up): it is
    asked in that stage's loop or workflow. None: the keeper's."""


class FollowUpsNeeded(IncompleteDecisions):
    """A reviewer's first answer asked for a follow-up that has no decided row yet: create
    ``follow_ups`` (at most once each) and send nothing."""

    def __init__(self, follow_ups: Sequence[FollowUp]) -> None:
        self.follow_ups = list(follow_ups)
        super().__init__(f"{len(self.follow_ups)} follow-up request(s) to ask first")


def to_inbox_response(decision: Mapping[str, Any]) -> dict[str, Any]:
    """A LangChain decision as agent-inbox's ``HumanResponse``."""
    kind = decision["type"]
    if kind == "approve":
        return {"type": "accept", "args": None}
    if kind == "edit":
        action = decision["edited_action"]
        return {"type": "edit", "args": {"action": action["name"], "args": action["args"]}}
    if kind == "respond":
        return {"type": "response", "args": decision["message"]}
    return {"type": "ignore", "args": decision.get("message")}


class MiddlewareCodec:
    """Recognises the bridge's rows' interrupts and encodes the reviewers' decisions.

    Args:
        ledger: the keeper's ledger (a decision's row gives its action index).
        spec_of: the review spec the bridge sends for an action (binds answers to calls).
        tools: the agent's tools by name, for edit validation; None for a remote graph.
        follow_up_of: the spec of an action's follow-up request (``SpecBuilder.follow_up``);
            taken from ``spec_of`` when it has one.

    ``spec_of``'s ``sent`` (``SpecBuilder.sent``), when it has one, finds which first form a
    row was created with (a call too long to show is attached, with Approve, or cut,
    without): the answer is read as that form offered it, and nothing is uploaded here.
    """

    def __init__(
        self,
        ledger: Ledger,
        spec_of: Callable[[BridgeAction], ReviewSpec],
        tools: Mapping[str, Any] | None,
        follow_up_of: Callable[[BridgeAction, Step], ReviewSpec] | None = None,
    ) -> None:
        self.ledger = ledger
        self.spec_of = spec_of
        self.follow_up_spec = follow_up_of or getattr(spec_of, "follow_up", None)
        self.sent_of: Callable[[BridgeAction, str | None], tuple[ReviewSpec, Shown] | None] | None
        self.sent_of = getattr(spec_of, "sent", None)
        self.tools = tools
        self._refusals: dict[str, str] = {}

    def refuse_next(self, request_id: str, reason: str) -> None:
        """Encode the next answer for ``request_id`` as a refusal saying ``reason`` (once).

        Used when a server refused the encoded answer without saving it (per_call's schema
        check on a LangGraph Server), so the same interrupt can be answered again.
        """
        self._refusals[request_id] = reason

    def __repr__(self) -> str:
        return f"MiddlewareCodec(tools={sorted(self.tools) if self.tools is not None else None})"

    def matches(self, value: Any, record: ReviewRecord) -> bool:
        """True when ``value`` is a middleware interrupt and holds ``record``'s action."""
        parts = parse_key(record.key)
        parsed = parse_interrupt(value)
        if parts is None or parsed is None:
            return False
        kind, actions = parsed
        if kind == "per_call":
            return actions[0].tool_call_id == parts.tool_call_id
        return parts.index < len(actions)

    async def aprefetch(self, decisions: Sequence[Decision]) -> None:
        """Read the decisions' rows in a worker thread, so an async resume's encode does not
        touch the ledger on the event loop (call it in the task that then resumes)."""

        def read() -> dict[str, ReviewRecord | None]:
            return {d.request_id: self.ledger.get_by_request_id(d.request_id) for d in decisions}

        _PREFETCHED.set(await asyncio.to_thread(read))

    def _sent(self, action: BridgeAction, row: ReviewRecord) -> tuple[bool, bool | None]:
        """Whether ``row`` is bound to this call (the action renders to the question the row
        was created with), and whether that question offered Approve (None: re-derive it
        from the rendering)."""
        if self.sent_of is None:
            return self._bound(row, self.spec_of(action)), None
        found = self.sent_of(action, row.args_hash)
        return found is not None, None if found is None else found[1] != "cut"

    def _read(
        self, action: BridgeAction, row: ReviewRecord, decision: Decision
    ) -> tuple[bool, bool | None, Step | None]:
        """:meth:`_sent`, and the follow-up the first answer asks for (None when it decides
        alone, or no longer applies: the call changed since it was reviewed, or no follow-up
        can be asked)."""
        bound, approvable = self._sent(action, row)
        step = None
        if bound and self.follow_up_spec is not None:
            step = follow_up_of(decision, action, self.tools, approvable=approvable)
        return bound, approvable, step

    def _staged(
        self,
        action: BridgeAction,
        first: ReviewRecord,
        policy: ReviewPolicy,
        rows: Mapping[str, tuple[ReviewRecord, Decision]],
    ) -> _Read:
        """An action under an approval policy: its stages (the rows handed over with it)
        replayed through the gate's rules; the next stage to ask, or the final decision."""
        if self.sent_of is None or not hasattr(self.spec_of, "staged_spec"):
            return _Read(True, None, None, _first_decision(rows, first), refused=_NO_POLICY)
        walked = walk(self.spec_of, action, first, policy, rows.get)
        if walked.unbound:
            return _Read(False, None, None, _first_decision(rows, first))
        if walked.ask is not None:
            key, spec, stage = walked.ask
            need = FollowUp(key, spec, first.thread_id, first.checkpoint_ns, stage)
            return _Read(True, None, None, _first_decision(rows, first), need=need)
        if walked.final is None:  # a stage still pending: nothing may be sent yet
            raise IncompleteDecisions(f"a stage of {action.name!r}'s approval policy is pending")
        approvable = walked.shown != "cut"
        if walked.policy_said:
            reason = f"{walked.final.reason} The tool call was not run."
            return _Read(True, approvable, None, walked.final, refused=reason)
        step = None
        if self.follow_up_spec is not None:
            step = follow_up_of(
                walked.final, form_action(action, policy), self.tools, approvable=approvable
            )
        return _Read(True, approvable, step, walked.final, where=walked.stage, policy=policy)

    def _reading(
        self,
        action: BridgeAction,
        row: ReviewRecord,
        decision: Decision,
        rows: Mapping[str, tuple[ReviewRecord, Decision]],
    ) -> _Read:
        policy = stored_policy(row)
        if policy is not None:
            return self._staged(action, row, policy, rows)
        bound, approvable, step = self._read(action, row, decision)
        return _Read(bound, approvable, step, decision)

    @staticmethod
    def _bound(row: ReviewRecord, spec: ReviewSpec) -> bool:
        return row.args_hash is None or row.args_hash == spec.spec_hash()

    def _answer(
        self,
        action: BridgeAction,
        decision: Decision,
        read: _Read,
        follow: tuple[ReviewRecord, Decision] | None,
    ) -> Answer:
        forced = self._refusals.pop(decision.request_id, None)
        if follow is not None:
            forced = self._refusals.pop(follow[1].request_id, None) or forced
        if forced is not None:
            return Answer(refusal(action, forced), forced)
        if not read.bound:
            return Answer(refusal(action, _CHANGED), "the call changed since it was reviewed")
        if read.refused is not None:
            return Answer(refusal(action, read.refused), read.refused)
        # Under a quorum the form offered no Edit: the answer is read as that form offered it.
        shown = form_action(action, read.policy)
        if read.step is None:
            granting = getattr(self.spec_of, "granting", None)
            return read_answer(
                read.decision,
                shown,
                self.tools,
                approvable=read.approvable,
                granting=granting(action) if granting is not None else (),
            )
        assert follow is not None and self.follow_up_spec is not None  # encode checked it
        follow_row, follow_decision = follow
        if not self._bound(follow_row, self.follow_up_spec(action, read.step)):
            return Answer(refusal(action, _CHANGED), "the call changed since it was reviewed")
        voided = voided_follow_up(follow_decision, read.policy)
        if voided is not None:
            why = f"The reviewer's answer could not be used ({voided}); the tool call was not run."
            return Answer(refusal(action, why), voided)
        return read_follow_up(
            read.step, follow_decision, shown, self.tools, approvable=read.approvable
        )

    def _granted(
        self,
        actions: Sequence[BridgeAction],
        by_index: Mapping[int, Any],
        where: ActionKey | None,
    ) -> set[int]:
        """The indexes of a batched turn's actions with no row that ran under a standing
        grant (``submit`` recorded their use instead of asking): each gets an approve."""
        if where is None or len(by_index) == len(actions):
            return set()
        found: set[int] = set()
        for index, action in enumerate(actions):
            if index in by_index:
                continue
            key = action_key(
                thread_id=where.thread_id,
                checkpoint_ns=where.checkpoint_ns,
                interrupt_id=where.interrupt_id,
                action=action,
            )
            try:
                if self.ledger.get_grant_use(use_key(key)) is not None:
                    found.add(index)
            except Exception:  # unreadable: the action waits (nothing is sent)
                log.warning("bridge could not read the grant use of %s", key)
        return found

    def _grant(
        self,
        action: BridgeAction,
        first: ReviewRecord,
        read: _Read,
        stages: Mapping[str, tuple[ReviewRecord, Decision]],
    ) -> None:
        """Write the standing grant an approving answer chose (before the resume runs the
        call; the same grant every time: its id is the deciding row's key's)."""
        policies = getattr(self.spec_of, "policies", None)
        grants = policies.grants(action.name) if policies is not None else None
        if grants is None:
            return
        row = first
        if read.policy is not None and read.where is not None:
            found = stages.get(stage_key(first.key, read.where.number))
            if found is None:
                return
            row = found[0]
        keeper = getattr(self.spec_of, "keeper", None)
        now = keeper.clock() if keeper is not None else time.time()
        record_bridge_grant(
            self.ledger, grants=grants, action=action, row=row, decision=read.decision, now=now
        )

    def encode(self, value: Any, decisions: Sequence[Decision]) -> Any:
        """The resume value for the middleware interrupt ``value``.

        Raises:
            IncompleteDecisions: a batched action has no decision yet.
            UndeliverableDecision: a refusal for a tool that allows neither reject nor
                respond (nothing can be sent).
            ValueError: ``value`` is not a middleware interrupt.
        """
        parsed = parse_interrupt(value)
        if parsed is None:
            raise ValueError("not a HumanInTheLoopMiddleware or agent-inbox interrupt")
        kind, actions = parsed
        prefetched = _PREFETCHED.get()
        by_index: dict[int, tuple[BridgeAction, ReviewRecord, Decision]] = {}
        follow_ups: dict[int, tuple[ReviewRecord, Decision]] = {}
        stages: dict[str, tuple[ReviewRecord, Decision]] = {}
        where = None
        for decision in decisions:
            row = (
                prefetched[decision.request_id]
                if prefetched is not None and decision.request_id in prefetched
                else self.ledger.get_by_request_id(decision.request_id)
            )
            parts = parse_key(row.key) if row is not None else None
            if row is None or parts is None or parts.index >= len(actions):
                continue
            action = actions[parts.index]
            where = parts
            if kind == "per_call":
                if action.tool_call_id != parts.tool_call_id:
                    continue
                # The interrupt value does not carry the allowed decisions; the key does.
                action = BridgeAction(**{**action.__dict__, "allowed": parts.allowed})
            if parts.step:
                follow_ups.setdefault(parts.index, (row, decision))
            else:
                stages.setdefault(row.key, (row, decision))
                if parts.stage == 1:
                    by_index.setdefault(parts.index, (action, row, decision))
        granted = self._granted(actions, by_index, where)
        missing = [i for i in range(len(actions)) if i not in by_index and i not in granted]
        if missing:
            raise IncompleteDecisions(
                f"{len(missing)} of {len(actions)} actions have no decision yet (indexes {missing})"
            )
        # A first answer that asks for text (edit, a reason, a reply) waits for its follow-up:
        # nothing is sent until every action of the interrupt has its final decision.
        # Under an approval policy an action waits for its stages the same way.
        needed: list[FollowUp] = []
        reads = {i: self._reading(a, r, d, stages) for i, (a, r, d) in by_index.items()}
        for index, (action, row, _) in sorted(by_index.items()):
            read = reads[index]
            if read.need is not None:
                needed.append(read.need)
            step = read.step
            if step is not None and index not in follow_ups and self.follow_up_spec is not None:
                spec = self.follow_up_spec(action, step)
                key = follow_up_key(row.key)
                needed.append(FollowUp(key, spec, row.thread_id, row.checkpoint_ns, read.where))
        if needed:
            raise FollowUpsNeeded(needed)
        answers: list[dict[str, Any]] = []
        for index in range(len(actions)):
            if index in granted:  # approved under a standing grant: no review row
                answers.append(dict(APPROVE))
                continue
            action, row, decision = by_index[index]
            answer = self._answer(action, decision, reads[index], follow_ups.get(index))
            if answer.problem is None and answer.decision["type"] == "approve":
                self._grant(action, row, reads[index], stages)
            if answer.problem is not None:
                log.warning(
                    "bridge sends a %s for tool=%s request_id=%s: %s",
                    answer.decision["type"],
                    action.name,
                    decision.request_id,
                    answer.problem,
                )
            answers.append(answer.decision)
        if kind == "batched":
            return {"decisions": answers}
        if kind == "per_call":
            return answers[0]
        return [to_inbox_response(answers[0])]
