"""Approval policies per tool in the middleware bridge: quorum, exclude, escalate, grants.

``keeper.bridge(agent, policies={"execute_sql": {"quorum": 2}})`` takes the keyword arguments
``keeper.review`` and ``require_approval`` take, per gated tool, and applies them with the
gate's own rules (:class:`hitl_agent.gate._policy.PolicyRun`): what the next request is
follows from the recorded answers only.

Each request a policy makes for an action is a *stage*: its own ledger row and HITL request,
keyed ``<action key>#<n>`` (:func:`~._bridge_schema.stage_key`) in the action's task, so the
resolver hands every stage of a turn to the codec together and nothing reaches the middleware
until each action has its final decision. The policy is resolved once, when the first stage
is sent (an ``exclude`` callable gets the thread's ``configurable``), and kept in that row's
payload; every later read (a sweep, a worker, another replica) applies the kept one.
``grants`` (standing grants: :mod:`._bridge_grants`) add choices to the first form instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigError
from ..decision import Decision
from ..gate._policy import NOTES_MAX, PolicyRun, ReviewPolicy, Stage, resolve_policy
from ..models.workflows import workflow_ref
from ..policies import Grants
from ._bridge_schema import BridgeAction, stage_key

if TYPE_CHECKING:
    from ..gate import CreateTarget, ReviewSpec
    from ..ledger import ReviewRecord
    from ._bridge_form import Shown

__all__ = [
    "POLICY_KEYS",
    "BridgePolicies",
    "Walk",
    "form_action",
    "gated_decisions",
    "gated_tools",
    "stage_target",
    "stored_policy",
    "text_limit",
    "voided_follow_up",
    "walk",
]

POLICY_KEYS = ("quorum", "exclude", "escalate", "grants")
"""A tool's policy: the keyword arguments of ``keeper.review`` / ``require_approval``."""

GRANT_VALUES = ("approve_thread", "approve_args")
"""The first form's grant choices (``gate._grants``' values): each approves like Approve."""

Staged = tuple[ReviewPolicy, Stage]
"""A request under a policy: the policy kept with the action's first row, and the stage."""


class BridgePolicies:
    """The bridge's per-tool policies, validated when the bridge is built.

    Args:
        policies: ``{tool: {"quorum": ..., "exclude": ..., "escalate": [...],
            "grants": Grants(...)}}``.
        gated: the tools the agent's middleware gates (``interrupt_on``), None when unknown
            (a remote graph): a policy for any other tool is refused. A mapping also gives
            each tool's ``allowed_decisions`` (grants need approve).
        grants: False where standing grants cannot be served (the remote bridge).

    Raises:
        ConfigError: naming ``policies.<tool>`` (or its key): an ungated tool, an unknown key,
            a value ``resolve_policy`` refuses, grants that are not a ``Grants``, grants under
            a quorum above 1 or on a tool that does not allow approve.
    """

    def __init__(
        self,
        policies: Mapping[str, Any] | None,
        gated: Collection[str] | Mapping[str, Collection[str]] | None = None,
        *,
        grants: bool = True,
    ) -> None:
        if policies is not None and not isinstance(policies, Mapping):
            raise ConfigError(
                "policies",
                f"expected a mapping of tool names to policies, got {type(policies).__name__}",
                "pass policies={'execute_sql': {'quorum': 2}}",
            )
        self._by_tool: dict[str, dict[str, Any]] = {}
        for tool, value in (policies or {}).items():
            self._by_tool[str(tool)] = _checked(tool, value, gated)
            _check_grants(tool, value, gated, grants)

    def __bool__(self) -> bool:
        return bool(self._by_tool)

    def __repr__(self) -> str:
        return f"BridgePolicies({sorted(self._by_tool)})"

    def grants(self, tool: str) -> Grants | None:
        """The standing grants the first form of ``tool``'s actions offers, or None."""
        found = self._by_tool.get(tool, {}).get("grants")
        return found if isinstance(found, Grants) else None

    def resolve(self, tool: str, configurable: Mapping[str, Any]) -> ReviewPolicy | None:
        """The policy of ``tool``'s next action (``exclude`` called with ``configurable``)."""
        args = self._by_tool.get(tool)
        if args is None:
            return None
        try:
            return resolve_policy(
                args.get("quorum"),
                args.get("exclude"),
                args.get("escalate"),
                configurable=configurable,
            )
        except ConfigError as err:
            raise ConfigError(f"policies.{tool}.{err.field}", err.problem, err.fix) from err


def _checked(tool: Any, value: Any, gated: Collection[str] | None) -> dict[str, Any]:
    field = f"policies.{tool}"
    if not isinstance(tool, str) or not tool:
        raise ConfigError(field, "a tool name is a non-empty string", "name a gated tool")
    if gated is not None and tool not in gated:
        raise ConfigError(
            field,
            f"{tool!r} is not gated by the agent's HumanInTheLoopMiddleware (interrupt_on "
            f"gates {sorted(gated)})",
            "name a tool interrupt_on gates (a policy applies to the reviews of that tool)",
        )
    if not isinstance(value, Mapping):
        raise ConfigError(
            field,
            f"expected a mapping of {', '.join(POLICY_KEYS)}, got {type(value).__name__}",
            f"pass policies={{{tool!r}: {{'quorum': 2}}}}",
        )
    for key in value:
        if key not in POLICY_KEYS:
            raise ConfigError(
                f"{field}.{key}",
                "not a policy setting",
                f"use {', '.join(POLICY_KEYS)} (the keyword arguments of keeper.review)",
            )
    escalate = value.get("escalate")
    if escalate is not None and not isinstance(escalate, list | tuple):
        raise ConfigError(
            f"{field}.escalate",
            f"expected a list of hitl_agent.policies.Escalate, got {type(escalate).__name__}",
            "pass 'escalate': [Escalate(after=600, loop_id='managers')]",
        )
    exclude = value.get("exclude")
    try:
        # A callable exclusion is resolved per thread when its first request is sent.
        resolve_policy(
            value.get("quorum"),
            None if callable(exclude) else exclude,
            escalate,
            configurable={},
        )
    except ConfigError as err:
        raise ConfigError(f"{field}.{err.field}", err.problem, err.fix) from err
    return dict(value)


def _check_grants(
    tool: str,
    value: Mapping[str, Any],
    gated: Collection[str] | Mapping[str, Collection[str]] | None,
    supported: bool,
) -> None:
    grants = value.get("grants")
    if grants is None:
        return
    field = f"policies.{tool}.grants"
    if not isinstance(grants, Grants):
        raise ConfigError(
            field,
            f"expected a hitl_agent.policies.Grants, got {type(grants).__name__}",
            "pass 'grants': Grants(thread=SECONDS, args=SECONDS)",
        )
    if not supported:
        raise ConfigError(
            field,
            "standing grants are not served by the remote bridge (a covered action would need "
            "a resume without a review row)",
            "leave grants out for a LangGraph Server graph",
        )
    quorum = value.get("quorum")
    approvals = getattr(quorum, "approvals", quorum)
    if isinstance(approvals, int) and approvals > 1:
        raise ConfigError(
            field,
            f"a standing grant is one reviewer's choice: under quorum {approvals} it would run "
            "later calls with one approval",
            "leave grants out with quorum above 1",
        )
    allowed = gated.get(tool) if isinstance(gated, Mapping) else None
    if allowed is not None and "approve" not in allowed:
        raise ConfigError(
            field,
            f"{tool!r} does not allow approve (allowed_decisions {sorted(allowed)}), and a "
            "grant is a longer approve",
            "leave grants out, or add 'approve' to the tool's allowed_decisions",
        )


def gated_decisions(graph: Any) -> dict[str, tuple[str, ...]] | None:
    """:func:`gated_tools` with each tool's ``allowed_decisions`` (all four when unreadable),
    or None when no middleware is found."""
    graphs: list[Any] = [graph]
    with contextlib.suppress(AttributeError, NotImplementedError):
        graphs += [sub for _, sub in graph.get_subgraphs(recurse=True)]
    found: dict[str, tuple[str, ...]] | None = None
    for each in graphs:
        for node in (getattr(each, "nodes", None) or {}).values():
            owner = getattr(getattr(getattr(node, "bound", None), "func", None), "__self__", None)
            interrupt_on = getattr(owner, "interrupt_on", None)
            middleware = any(c.__name__ == "HumanInTheLoopMiddleware" for c in type(owner).__mro__)
            if middleware and isinstance(interrupt_on, Mapping):
                found = found if found is not None else {}
                for name, config in interrupt_on.items():
                    allowed = (
                        config.get("allowed_decisions") if isinstance(config, Mapping) else None
                    )
                    decisions = tuple(allowed) if isinstance(allowed, list | tuple) else ()
                    # One tool in two middlewares: grants need approve in every one of them.
                    known = found.get(str(name))
                    kept = decisions or ("approve", "edit", "reject", "respond")
                    found[str(name)] = tuple(d for d in kept if known is None or d in known)
    return found


def gated_tools(graph: Any) -> set[str] | None:
    """The tools a compiled agent's ``HumanInTheLoopMiddleware`` instances gate (their
    ``interrupt_on``, subgraphs included), or None when no middleware is found (an agent-inbox
    graph interrupts by itself: then nothing is known to check against)."""
    graphs: list[Any] = [graph]
    with contextlib.suppress(AttributeError, NotImplementedError):
        graphs += [sub for _, sub in graph.get_subgraphs(recurse=True)]
    found: set[str] | None = None
    for each in graphs:
        for node in (getattr(each, "nodes", None) or {}).values():
            owner = getattr(getattr(getattr(node, "bound", None), "func", None), "__self__", None)
            interrupt_on = getattr(owner, "interrupt_on", None)
            # By name (a subclass too): the remote bridge imports this without LangChain.
            middleware = any(c.__name__ == "HumanInTheLoopMiddleware" for c in type(owner).__mro__)
            if middleware and isinstance(interrupt_on, Mapping):
                found = (found or set()) | {str(name) for name in interrupt_on}
    return found


def stored_policy(row: ReviewRecord | None) -> ReviewPolicy | None:
    """The policy kept with an action's first row (None: the row was sent without one)."""
    stored = (row.payload or {}).get("policy") if row is not None else None
    return ReviewPolicy.from_json(stored) if isinstance(stored, Mapping) else None


def text_limit(policy: ReviewPolicy | None, limit: int) -> int:
    """The form's share of ``limit`` characters: the policy's notes take their part on top."""
    return limit - NOTES_MAX - 2 if policy is not None else limit


def form_action(action: BridgeAction, policy: ReviewPolicy | None) -> BridgeAction:
    """The action as its first form offers it: under a quorum of two or more, without Edit
    (an edit chosen by one reviewer would run without the others' approval)."""
    if policy is None or policy.approvals < 2 or "edit" not in action.allowed:
        return action
    return dataclasses.replace(action, allowed=tuple(d for d in action.allowed if d != "edit"))


def stage_target(base: CreateTarget, home_loop: str | None, stage: Stage | None) -> CreateTarget:
    """Where a stage (or the follow-up of the stage that decided) is asked: an escalation's
    loop or workflow, polled from the keeper's own loop (``home_loop``); else ``base``."""
    if stage is None or (stage.loop_id is None and stage.workflow is None):
        return base
    return dataclasses.replace(
        base,
        loop_id=stage.loop_id,
        workflow=workflow_ref(stage.workflow) if stage.workflow else None,
        home_loop=home_loop,
    )


def voided_follow_up(decision: Decision, policy: ReviewPolicy | None) -> str | None:
    """Why a follow-up's answer (the edited args, a reason, a reply) does not count under the
    policy's exclusion, or None when it counts: an excluded identity's text never reaches the
    agent, and neither does one HITL.sh did not say the author of."""
    if policy is None or not policy.exclude or decision.status != "completed":
        return None
    reviewer = decision.reviewer
    own = {
        v.strip().casefold()
        for v in ((reviewer.id, reviewer.email) if reviewer is not None else ())
        if v and v.strip()
    }
    if not own:
        return "HITL.sh did not report who sent it, so the approval policy cannot be checked"
    if own & set(policy.exclude):
        shown = (reviewer.email or reviewer.id or "") if reviewer is not None else ""
        return f"it was sent by {shown!r}, who may not answer this request"
    return None


@dataclass(frozen=True)
class Walk:
    """Where an action's stages stand.

    Exactly one of: ``final`` (the policy's decision, answered by ``decided`` in ``stage``),
    ``ask`` (the key, spec and stage of the request to create next), ``unbound`` (a stage's
    row no longer matches the action: its args changed), or none of them (a stage is pending).
    """

    final: Decision | None = None
    decided: Decision | None = None
    stage: Stage | None = None
    ask: tuple[str, ReviewSpec, Stage] | None = None
    unbound: bool = False
    shown: Shown | None = None

    @property
    def policy_said(self) -> bool:
        """True when the final decision is the policy's own (not met, unverifiable), not a
        reviewer's answer: the agent gets its reason."""
        return self.final is not None and self.final is not self.decided and not self.final.approved


def walk(
    specs: Any,
    action: BridgeAction,
    first: ReviewRecord,
    policy: ReviewPolicy,
    row_of: Callable[[str], tuple[ReviewRecord, Decision | None] | None],
) -> Walk:
    """Replay the action's recorded stages through :class:`PolicyRun`.

    ``row_of(key)``: the stage's row and its decision (None while pending), or None when it
    has no row. Every stage's row must still be the question that stage asks (its spec hash:
    notes, form and policy), else ``unbound``.
    """
    run = PolicyRun(policy)
    stage = run.stage()
    found = specs.sent(action, first.args_hash, staged=(policy, stage))
    if found is None:
        return Walk(unbound=True)
    shown: Shown = found[1]
    number = 1
    while True:
        key = stage_key(first.key, number)
        asked = found[0] if number == 1 else specs.staged_spec(action, shown, (policy, stage))
        if asked is None:  # its attachment is no longer known: it cannot be re-derived
            return Walk(unbound=True, shown=shown)
        got = row_of(key)
        if got is None:
            return Walk(ask=(key, asked, stage), shown=shown)
        row, decision = got
        if row.args_hash is not None and row.args_hash != asked.spec_hash():
            return Walk(unbound=True, shown=shown)
        if decision is None:
            return Walk(shown=shown)
        final = run.answered(decision)
        if final is not None:
            return Walk(final=final, decided=decision, stage=stage, shown=shown)
        stage = run.stage()
        number += 1
