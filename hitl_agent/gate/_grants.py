"""Standing grants on ``keeper.review`` (and so ``review_node``): docs/policies.md.

``keeper.review(text, grants=Grants(thread=3600, args=86400))`` turns the approve/reject
question into a choice that also offers "approve for this thread" and "approve this exact
question". A later review the grant covers makes no request: it records a grant use (first
writer wins, keyed by the review's correlation key, so a replay of the node finds it and
returns the same answer) and returns an approval naming the grant.

The scope of a review's grant, never wider than the reviewer chose:

- ``thread``: reviews of the same node (its path, without task ids) in the same LangGraph
  thread, whatever they ask, in the same loop;
- ``args``: reviews asking exactly the same question (the hash of the question as asked:
  its text, form and context), in any thread, in the same loop.

A review that asked a reviewer keeps its review even if a grant appears meanwhile; a review
that ran under a grant replays under it even after the grant expired or was revoked. Any
doubt fails closed: a grant that cannot be read asks a reviewer.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigError
from .._keys import node_path
from ..decision import ApproveAction, Decision
from ..ledger import Grant, GrantScope, Ledger
from ._policy import duration

if TYPE_CHECKING:
    from ..langgraph.pregel import GraphContext
    from ..ledger import ReviewRecord
    from ..policies import Grants

__all__ = [
    "GRANT_ARGS",
    "GRANT_THREAD",
    "SCOPES",
    "ReviewGrants",
    "grant_id",
    "grant_options",
]

log = logging.getLogger("hitl_agent.gate")

GRANT_THREAD = "approve_thread"
GRANT_ARGS = "approve_args"
SCOPES: dict[str, GrantScope] = {GRANT_THREAD: "thread", GRANT_ARGS: "args"}
_APPROVE, _REJECT = "approve", "reject"


def grant_options(
    grants: Grants | None, *, thread: bool = True, exact: str = "these exact arguments"
) -> list[dict[str, str]]:
    """The grant choices a policy allows, as ``{value, label}`` options (``thread``: whether
    a thread grant can be scoped here: inside a graph run; ``exact``: what an args grant
    approves, as the reviewer reads it)."""
    if grants is None:
        return []
    options = []
    if grants.thread_seconds is not None and thread:
        label = f"✅ Approve for this thread, {duration(grants.thread_seconds)}"
        options.append({"value": GRANT_THREAD, "label": label})
    if grants.args_seconds is not None:
        label = f"✅ Approve {exact}, {duration(grants.args_seconds)}"
        options.append({"value": GRANT_ARGS, "label": label})
    return options


def grant_id(review_key: str) -> str:
    """The grant a review makes has an id derived from its row: a re-run writes it again."""
    return "g-" + hashlib.sha256(review_key.encode()).hexdigest()[:24]


@dataclass
class ReviewGrants:
    """The grants of one ``keeper.review`` call: the form's extra choices, the covering
    grant, and the grant its approval writes."""

    ledger: Ledger
    grants: Grants
    loop_id: str | None
    ctx: GraphContext | None
    clock: Callable[[], float]

    @property
    def name(self) -> str:
        """What a grant of this review is for (the ledger's ``tool`` column): the node."""
        return "review:" + (node_path(self.ctx.checkpoint_ns) if self.ctx is not None else "")

    def options(self) -> list[dict[str, str]]:
        return grant_options(self.grants, thread=self.ctx is not None, exact="this exact question")

    def form(self, question: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """The question as a choice with the grant options; the footer lines that say what
        each grant approves.

        Raises:
            ConfigError: the question is not a plain approve/reject one.
        """
        if question.get("response_type") != "boolean" or question.get("response_config"):
            raise ConfigError(
                "grants",
                "standing grants are offered on a plain approve/reject question",
                "leave response_type and response_config at their defaults with grants=",
            )
        extra = self.options()
        options = [
            {"value": _APPROVE, "label": "✅ Approve"},
            *extra,
            {"value": _REJECT, "label": "❌ Reject"},
        ]
        asked = dict(
            question,
            response_type="single_select",
            response_config={"options": options},
            default_response=_REJECT,
            approve_values=[_APPROVE, *(o["value"] for o in extra)],
            reject_values=[_REJECT],
        )
        lines = []
        where = f"thread `{self.ctx.thread_id}`" if self.ctx is not None else ""
        for option in extra:
            if option["value"] == GRANT_THREAD:
                seconds = self.grants.thread_seconds
                lines.append(
                    f"**Approve for this thread** also approves every later review of this "
                    f"step in {where}, whatever it asks, without asking, for "
                    f"{duration(seconds or 0)} from your answer."
                )
            else:
                seconds = self.grants.args_seconds
                lines.append(
                    "**Approve this exact question** also approves later reviews asking "
                    f"exactly this, in any thread, without asking, for {duration(seconds or 0)} "
                    "from your answer."
                )
        if lines:
            lines.append("An operator can revoke a grant at any time (`hitl-agent grants revoke`).")
        return asked, lines

    def covering(self, key: str, question_hash: str) -> Decision | None:
        """The approval of a review a grant covers (or covered, in an earlier run of its
        node), or None: ask a reviewer."""
        use_key = f"grant|{key}"
        thread = self.ctx.thread_id if self.ctx is not None else None
        try:
            use = self.ledger.get_grant_use(use_key)
            grant: Grant | None
            if use is not None:
                grant = self.ledger.get_grant(use.grant_id)  # replays under it, live or not
            elif self.ledger.get(key) is not None:
                return None  # it asked a reviewer in an earlier run: it keeps its review
            else:
                grant = self.ledger.find_grant(
                    tool=self.name,
                    loop_id=self.loop_id,
                    thread_id=thread,
                    args_hash=question_hash,
                    now=self.clock(),
                )
                if grant is None:
                    return None
                use = self.ledger.record_grant_use(
                    use_key,
                    grant.grant_id,
                    now=self.clock(),
                    thread_id=thread,
                    tool_call_id=None,
                    args_hash=question_hash,
                )
                if use.grant_id != grant.grant_id:  # a concurrent run recorded another
                    grant = self.ledger.get_grant(use.grant_id)
        except Exception:
            log.warning("review %s: standing grants could not be read; asking a reviewer", key)
            return None
        if grant is None:
            return None
        log.info("review %s approved under grant_id=%s scope=%s", key, grant.grant_id, grant.scope)
        return Decision(
            request_id=grant.request_id or grant.grant_id,
            status="completed",
            outcome="approved",
            approved=True,
            action=ApproveAction(),
            reason=(
                f"Approved under standing grant {grant.grant_id} ({grant.scope}), given by "
                f"{grant.reviewer or 'a reviewer'}; no review was asked."
            ),
        )

    @staticmethod
    def chosen(decision: Decision) -> bool:
        """Whether the reviewer chose a grant with this approval (only then is there one to
        write: a replay of an ordinary approval reads nothing more)."""
        return decision.approved and isinstance(decision.value, str) and decision.value in SCOPES

    def record(self, decision: Decision, row: ReviewRecord | None, question_hash: str) -> None:
        """Write the grant the reviewer chose with this approval (none chosen: nothing)."""
        scope = SCOPES.get(decision.value) if isinstance(decision.value, str) else None
        if not decision.approved or scope is None or row is None:
            return
        seconds = self.grants.thread_seconds if scope == "thread" else self.grants.args_seconds
        if seconds is None or (scope == "thread" and not row.thread_id):
            log.error("grant not recorded: review %s cannot scope a %s grant", row.key, scope)
            return
        who = decision.reviewer
        start = row.decided_at if row.decided_at is not None else self.clock()
        stored = self.ledger.record_grant(
            Grant(
                grant_id=grant_id(row.key),
                scope=scope,
                tool=self.name,
                # An escalation stage asked in another loop: the grant is the keeper's, for the
                # calls of its own loop.
                loop_id=row.payload.get("home_loop") or row.loop_id,
                thread_id=row.thread_id if scope == "thread" else None,
                args_hash=question_hash if scope == "args" else None,
                request_id=row.request_id,
                review_key=row.key,
                reviewer=(who.email or who.name or who.id) if who is not None else None,
                created_at=start,
                expires_at=start + seconds,
            )
        )
        log.info("grant recorded grant_id=%s scope=%s for %s", stored.grant_id, scope, self.name)
