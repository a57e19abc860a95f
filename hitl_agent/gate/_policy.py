"""Review policies in the gate: quorum, separation of duties, timed escalation.

A policy turns one review into a sequence of requests (*stages*). Each stage is an ordinary
gate: its own ledger row, created once, resolved by a webhook or a poll, delivered once. What
the next stage is follows from the decisions recorded so far and nothing else, so every
re-run of a node (LangGraph re-runs it on each resume, in any replica) asks the same stages in
the same order, and a crash between stages loses nothing: the next run finds the recorded
stages and creates the missing one. The policy itself is resolved once, on the first stage,
and kept in that stage's ledger row: a resume (a worker that knows nothing of the user the
agent acted for) applies the policy the first reviewer was shown, never a recomputed one.

:class:`PolicyRun` is the whole rule set, without IO; ``Gatekeeper.review`` and ``areview``
drive it (one policy for both twins).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._exceptions import ConfigError
from .._text import reveal_invisible
from ..decision import Decision
from ..models.requests import Reviewer
from ..policies import Escalate, Quorum
from ..policies._quorum import SPARE_REQUESTS

__all__ = [
    "NOTES_MAX",
    "PolicyRun",
    "ReviewPolicy",
    "Stage",
    "resolve_policy",
]

#: The most characters a stage's policy notes take at the top of the request text (HITL.sh
#: allows 2,000 in all): a review with a policy has this much less for its own text.
NOTES_MAX = 600
_SHOWN = 3  # identities listed by name in a note; the rest are counted
_IDENTITY_CHARS = 48

Exclude = str | Iterable[str] | Callable[[Mapping[str, Any]], "str | Iterable[str] | None"]


@dataclass(frozen=True)
class StageTarget:
    """Where an escalation stage asks, after how long (from :class:`Escalate`)."""

    after: int
    loop_id: str | None = None
    workflow: str | None = None
    priority: str | None = None
    label: str = ""


@dataclass(frozen=True)
class ReviewPolicy:
    """A resolved policy, as kept in the first stage's ledger row (``payload["policy"]``)."""

    approvals: int = 1
    veto: bool = True
    max_requests: int = 1
    exclude: tuple[str, ...] = ()
    stages: tuple[StageTarget, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "approvals": self.approvals,
            "veto": self.veto,
            "max_requests": self.max_requests,
            "exclude": list(self.exclude),
            "stages": [
                {
                    "after": s.after,
                    "loop_id": s.loop_id,
                    "workflow": s.workflow,
                    "priority": s.priority,
                    "label": s.label,
                }
                for s in self.stages
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReviewPolicy:
        return cls(
            approvals=int(data["approvals"]),
            veto=bool(data["veto"]),
            max_requests=int(data["max_requests"]),
            exclude=tuple(str(x) for x in data.get("exclude") or ()),
            stages=tuple(
                StageTarget(
                    after=int(s["after"]),
                    loop_id=s.get("loop_id"),
                    workflow=s.get("workflow"),
                    priority=s.get("priority"),
                    label=str(s.get("label") or ""),
                )
                for s in data.get("stages") or ()
            ),
        )


def resolve_policy(
    quorum: int | Quorum | None,
    exclude: Exclude | None,
    escalate: Sequence[Escalate] | None,
    *,
    configurable: Mapping[str, Any],
) -> ReviewPolicy | None:
    """The policy these arguments ask for, or None when they ask for none.

    ``exclude`` may be a callable: it gets the run's ``configurable`` (``{}`` outside a
    graph) and returns the identities, e.g. ``lambda c: c.get("user_email")``.

    Raises:
        ConfigError: naming the argument.
    """
    if quorum is None and exclude is None and not escalate:
        return None
    rule = _quorum(quorum)
    stages = tuple(_stage(step, index) for index, step in enumerate(escalate or ()))
    excluded = _identities(exclude, configurable)
    spare = SPARE_REQUESTS + len(stages) if (excluded or rule.approvals > 1) else len(stages)
    limit = rule.max_requests if rule.max_requests is not None else rule.approvals + spare
    policy = ReviewPolicy(
        approvals=rule.approvals,
        veto=rule.veto,
        max_requests=max(limit, 1),
        exclude=excluded,
        stages=stages,
    )
    return None if policy == ReviewPolicy() else policy


def _quorum(quorum: int | Quorum | None) -> Quorum:
    if quorum is None:
        return Quorum(1)
    if isinstance(quorum, Quorum):
        return quorum
    if isinstance(quorum, int) and not isinstance(quorum, bool):
        return Quorum(quorum)
    raise ConfigError(
        "quorum",
        f"expected a number of reviewers or a hitl_agent.policies.Quorum, got {quorum!r}",
        "pass quorum=2 for the two-person rule",
    )


def _stage(step: Any, index: int) -> StageTarget:
    if not isinstance(step, Escalate):
        raise ConfigError(
            f"escalate[{index}]",
            f"expected a hitl_agent.policies.Escalate, got {type(step).__name__}",
            "pass escalate=[Escalate(after=600, loop_id='managers')]",
        )
    return StageTarget(
        after=step.after_seconds,
        loop_id=step.loop_id or None,
        workflow=step.workflow or None,
        priority=step.priority,
        label=step.label,
    )


def _identities(exclude: Exclude | None, configurable: Mapping[str, Any]) -> tuple[str, ...]:
    value: Any = exclude
    if callable(exclude):
        try:
            value = exclude(configurable)
        except Exception as err:
            raise ConfigError(
                "exclude",
                f"the callable raised {type(err).__name__}: {err}",
                "make it return the identities (or None) for every run, e.g. "
                "lambda c: c.get('user_email')",
            ) from err
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(
                "exclude",
                f"identities are non-empty strings (a reviewer's id or email), got {item!r}",
                "pass exclude=['user@example.com'] or a callable returning such a list",
            )
        norm = _norm(item)
        if norm not in out:
            out.append(norm)
    return tuple(sorted(out))


def _norm(identity: str) -> str:
    return identity.strip().casefold()


@dataclass(frozen=True)
class Stage:
    """The next request a policy makes.

    ``number`` counts requests from 1; ``level`` is 0 for the first group and ``k`` for the
    k-th escalation. ``timeout_seconds`` None: the review's own (the last stage's deadline
    and default decide). ``notes``: the trusted lines the reviewer reads above the question.
    """

    number: int
    level: int
    notes: tuple[str, ...]
    timeout_seconds: int | None = None
    priority: str | None = None
    loop_id: str | None = None
    workflow: str | None = None


@dataclass
class PolicyRun:
    """One review under a policy: the stage to ask next, and what each answer means."""

    policy: ReviewPolicy
    level: int = 0
    requests: int = 0
    approvers: list[tuple[str, str]] = field(default_factory=list)  # (identity, shown)
    note: str = ""

    def stage(self) -> Stage:
        """The request to make now."""
        policy, stages = self.policy, self.policy.stages
        notes: list[str] = []
        if self.level > 0:
            previous = stages[self.level - 1]
            source = "the first reviewers" if self.level == 1 else stages[self.level - 2].label
            notes.append(
                f"Escalated: nobody answered in {_shown_label(source)} within "
                f"{duration(previous.after)}."
            )
        if policy.approvals > 1:
            rule = "any rejection rejects it" if policy.veto else "a rejection does not end it"
            notes.append(
                f"Approval {len(self.approvers) + 1} of {policy.approvals}: this runs only when "
                f"{policy.approvals} different reviewers approve it; {rule}."
            )
        if self.approvers:
            names = _listed([shown for _, shown in self.approvers])
            notes.append(f"Already approved by {names}: they cannot approve it again.")
        if policy.exclude:
            notes.append(
                f"You cannot approve your own request: an answer by {_listed(policy.exclude)} "
                "does not count (it is made on their behalf)."
            )
        if self.note:
            notes.append(self.note)
        timeout = priority = loop_id = workflow = None
        if self.level < len(stages):
            nxt = stages[self.level]
            timeout = nxt.after
            notes.append(
                f"If nobody answers within {duration(nxt.after)}, this goes to "
                f"{_shown_label(nxt.label)}."
            )
        if self.level > 0:
            here = stages[self.level - 1]
            priority, loop_id, workflow = here.priority, here.loop_id, here.workflow
        return Stage(
            number=self.requests + 1,
            level=self.level,
            notes=tuple(_fit(notes)),
            timeout_seconds=timeout,
            priority=priority,
            loop_id=loop_id,
            workflow=workflow,
        )

    def answered(self, decision: Decision) -> Decision | None:
        """The final decision after ``decision`` answered the current stage, or None: ask
        :meth:`stage` next."""
        self.requests += 1
        self.note = ""
        policy = self.policy
        if decision.outcome == "timed_out":
            if self.level < len(policy.stages):
                self.level += 1
                return self._more(decision)
            if decision.approved and policy.approvals > 1:
                # approve_on_timeout: a default is nobody's approval, so it never stands for
                # one of a quorum's different reviewers.
                return decision.model_copy(
                    update={
                        "approved": False,
                        "action": None,
                        "reason": (
                            f"No reviewer answered before the deadline, with "
                            f"{len(self.approvers)} of {policy.approvals} approvals; not "
                            "approved (a timeout's default cannot make up a quorum)."
                        ),
                    }
                )
            return decision
        if decision.outcome == "cancelled":
            return decision
        reviewer = decision.reviewer
        who, shown = _identity(reviewer), _display(reviewer)
        # An endorsement panel (HITL.sh lists every answer): each approving member counts.
        panel = decision.approvers if decision.approved else None
        if panel:
            return self._counted(decision, panel)
        if policy.exclude:
            if who is None:
                return _unverifiable(decision, "who may not answer")
            if _excluded(reviewer, policy.exclude):
                self.note = (
                    f"The previous answer, by {_safe(shown)}, did not count: they may not answer "
                    "this request."
                )
                return self._more(decision)
        if decision.approved and policy.approvals > 1:
            if who is None:
                return _unverifiable(decision, f"{policy.approvals} different approvals")
            return self._counted(decision, [reviewer] if reviewer is not None else [])
        if decision.outcome == "rejected" and policy.approvals > 1 and not policy.veto:
            self.note = f"{_safe(shown)} rejected it; a rejection does not end this review."
            return self._more(decision)
        return decision

    def _counted(self, decision: Decision, voters: list[Reviewer]) -> Decision | None:
        """Count each approving reviewer not counted yet and not excluded; the final
        approval once there are enough, else None (ask again) within the bound."""
        policy = self.policy
        void: list[str] = []
        for voter in voters:
            who = _identity(voter)
            if who is None:
                continue  # nobody to count
            if policy.exclude and _excluded(voter, policy.exclude):
                void.append(f"{_safe(_display(voter))} may not answer this request")
            elif any(who == known for known, _ in self.approvers):
                void.append(f"{_safe(_display(voter))} had approved already")
            else:
                self.approvers.append((who, _display(voter)))
        if len(self.approvers) >= policy.approvals:
            names = ", ".join(shown for _, shown in self.approvers)
            many = "different reviewers" if policy.approvals > 1 else "reviewer"
            return decision.model_copy(
                update={"reason": f"Approved by {policy.approvals} {many} ({names})."}
            )
        if void:
            self.note = (
                f"The previous approval did not count: {'; '.join(void[:_SHOWN])}. "
                "Each reviewer counts once."
            )
        return self._more(decision)

    def _more(self, decision: Decision) -> Decision | None:
        """None (ask again) while requests remain; else the policy failed: not approved."""
        if self.requests < self.policy.max_requests:
            return None
        return _not_approved(
            decision,
            f"The approval policy was not met within {self.policy.max_requests} requests "
            f"({len(self.approvers)} of {self.policy.approvals} approvals); not approved.",
        )


def _unverifiable(decision: Decision, what: str) -> Decision:
    """HITL.sh did not say who answered: the policy cannot be checked, so nothing runs."""
    return _not_approved(
        decision.model_copy(update={"reviewer": None}),
        f"HITL.sh did not report who answered, so the policy ({what}) cannot be checked; "
        "not approved.",
    )


def _not_approved(decision: Decision, reason: str) -> Decision:
    """The policy's own final answer: rejected, with why, on the last request's record."""
    return Decision(
        request_id=decision.request_id,
        status=decision.status,
        outcome="rejected",
        approved=False,
        reason=reason,
        reviewer=decision.reviewer,
        responded_at=decision.responded_at,
        response_type=decision.response_type,
    )


def _identity(reviewer: Reviewer | None) -> str | None:
    """Who answered, as the policy counts reviewers: HITL.sh's user id, else the email."""
    if reviewer is None:
        return None
    if reviewer.id and reviewer.id.strip():
        return "id:" + _norm(reviewer.id)
    if reviewer.email and reviewer.email.strip():
        return "email:" + _norm(reviewer.email)
    return None


def _excluded(reviewer: Reviewer | None, exclude: tuple[str, ...]) -> bool:
    if reviewer is None:
        return False
    own = {_norm(v) for v in (reviewer.id, reviewer.email) if v and v.strip()}
    return bool(own & set(exclude))


def _display(reviewer: Reviewer | None) -> str:
    if reviewer is None:
        return "an unknown reviewer"
    return (reviewer.email or reviewer.name or reviewer.id or "an unknown reviewer").strip()


def _safe(text: str) -> str:
    """An identity or a label as an inline code span: it can neither format the product's
    lines nor hide characters."""
    plain = " ".join(reveal_invisible(text).split()).replace("`", "'")
    if len(plain) > _IDENTITY_CHARS:
        plain = plain[: _IDENTITY_CHARS - 1] + "…"
    return f"`{plain}`"


def _shown_label(label: str) -> str:
    return label if label == "the first reviewers" else _safe(label)


def _listed(items: Sequence[str]) -> str:
    shown = [_safe(item) for item in items[:_SHOWN]]
    more = len(items) - _SHOWN
    if more > 0:
        shown.append(f"{more} more")
    return ", ".join(shown)


def _fit(notes: list[str]) -> list[str]:
    """Notes within :data:`NOTES_MAX` (their lines and separators): the last ones dropped."""
    kept: list[str] = []
    used = 0
    for note in notes:
        if used + len(note) + 4 > NOTES_MAX:
            break
        kept.append(note)
        used += len(note) + 4
    return kept


def duration(seconds: float) -> str:
    """``600`` -> ``10 min``: what the reviewer reads."""
    whole = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if whole >= size:
            parts.append(f"{whole // size} {unit}")
            whole %= size
    return " ".join(parts[:2]) or f"{seconds:g} s"


@dataclass
class StagedReview:
    """The stages of one review under a policy, with their correlation keys.

    The first stage's key is the review's own; a later stage's is the next key of the graph
    task (the way a node's second review gets its own), or ``<key>#<n>`` for an explicit key
    or a blocking review.
    """

    run: PolicyRun
    base: str
    indexed: bool
    """Later stages take the graph task's next key (no explicit key, inside a graph)."""
    final: Decision | None = None

    def step(self) -> Stage | Decision:
        """The next stage to ask, or the final decision."""
        return self.final if self.final is not None else self.run.stage()

    def answered(self, decision: Decision) -> None:
        self.final = self.run.answered(decision)

    def key(self, stage: Stage, next_key: Callable[[], str]) -> str:
        if stage.number == 1:
            return self.base
        return next_key() if self.indexed else f"{self.base}#{stage.number}"

    @property
    def policy_json(self) -> dict[str, Any]:
        return self.run.policy.to_json()


def notes_text(stage: Stage, request_text: str, mark: str) -> str:
    """The stage's request text: the policy's notes (the product's words, each marked) above
    the review's own text."""
    if not stage.notes:
        return request_text
    notes = "\n\n".join(f"{mark} {note}" for note in stage.notes)
    return f"{notes}\n\n{request_text}"
