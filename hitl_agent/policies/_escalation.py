"""``Escalate``: a stage of timed escalation (docs/policies.md)."""

# No ``from __future__ import annotations``: the fields' annotations are objects, so pydantic
# (a model field holding a policy) needs no namespace to read them, whatever module the
# class names (``hitl_agent``, where it is re-exported).

from dataclasses import dataclass
from datetime import timedelta

from .._exceptions import ConfigError
from ._seconds import seconds

__all__ = ["Escalate"]

#: HITL.sh's bounds on ``timeout_seconds``: each stage's request times out after its wait.
MIN_WAIT, MAX_WAIT = 60, 86_400
_PRIORITIES = ("low", "medium", "high", "critical")


@dataclass(frozen=True)
class Escalate:
    """If nobody decides within ``after``, ask again here.

    ``escalate=[Escalate(after=600, loop_id="managers", priority="high", name="Managers")]``
    gives the first group (the keeper's loop or workflow) 10 minutes; the request then
    times out on HITL.sh and the call is asked again in the ``managers`` loop, at high
    priority, with the keeper's usual deadline and default (the last stage decides). Each
    stage's request is its own ledger row; every rule (one review per stage, exactly-once,
    fail closed) holds across stages.

    Args:
        after: how long the *previous* stage waits before this one starts: seconds or a
            timedelta, 60 s to 24 h (HITL.sh's bounds on a request's timeout).
        loop_id, workflow: where this stage asks (at most one; neither: the keeper's own).
        priority: this stage's priority (None: the review's own).
        name: what the reviewer reads ("escalated from Support after 10 min"); None: the
            loop or workflow id.

    Raises:
        ConfigError: naming the field.
    """

    after: float | timedelta
    loop_id: str | None = None
    workflow: str | None = None
    priority: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        wait = seconds("escalate.after", self.after)
        assert wait is not None
        if not MIN_WAIT <= wait <= MAX_WAIT or wait != int(wait):
            raise ConfigError(
                "escalate.after",
                f"must be a whole number of seconds from {MIN_WAIT} to {MAX_WAIT} "
                f"(HITL.sh's bounds on a request's timeout), got {self.after!r}",
                "pass e.g. Escalate(after=600, ...) to escalate after 10 minutes",
            )
        object.__setattr__(self, "after", wait)
        if self.loop_id and self.workflow:
            raise ConfigError(
                "escalate.loop_id/workflow",
                "a stage asks in one place: both were given",
                "pass loop_id= or workflow=, or neither to ask in the keeper's own",
            )
        if self.priority is not None and self.priority not in _PRIORITIES:
            raise ConfigError(
                "escalate.priority",
                f"must be one of {', '.join(_PRIORITIES)}, got {self.priority!r}",
                "pass e.g. priority='high'",
            )

    @property
    def after_seconds(self) -> int:
        """How long the previous stage waits, in whole seconds."""
        assert not isinstance(self.after, timedelta)  # made seconds at construction
        return int(self.after)

    @property
    def label(self) -> str:
        """What the reviewer reads for this stage."""
        return self.name or self.loop_id or self.workflow or "the same reviewers"
