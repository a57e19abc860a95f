"""``Quorum``: a call runs only when several different reviewers approve it."""

# No ``from __future__ import annotations``: the fields' annotations are objects, so pydantic
# (a model field holding a policy) needs no namespace to read them, whatever module the
# class names (``hitl_agent``, where it is re-exported).

from dataclasses import dataclass

from .._exceptions import ConfigError

__all__ = ["Quorum"]

#: Requests a quorum may use beyond its approvals when none is given: room for a rejection
#: that does not veto, an answer that did not count (the same reviewer twice, an excluded
#: reviewer) and each escalation stage.
SPARE_REQUESTS = 2


@dataclass(frozen=True)
class Quorum:
    """Approved only when ``approvals`` *distinct* reviewers approve (the two-person rule).

    Args:
        approvals: how many different reviewers must approve (2 for the two-person rule).
        veto: True (default): any rejection rejects at once. False: a rejection does not
            count, and another reviewer is asked, within ``max_requests``.
        max_requests: the most requests the policy makes for one call, every stage
            included (each costs one API call of HITL.sh's 100 an hour). None: ``approvals``
            plus 2, plus one per escalation stage. Past it the call is rejected.

    Reviewers are told apart by what HITL.sh reports (``response_by_user``: its id, else
    its email); an approval from a reviewer whose identity HITL.sh did not report cannot
    be counted, so it rejects (fail closed).

    Raises:
        ConfigError: ``approvals`` below 1, or ``max_requests`` below ``approvals``.
    """

    approvals: int
    veto: bool = True
    max_requests: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.approvals, bool) or not isinstance(self.approvals, int):
            raise ConfigError(
                "quorum.approvals",
                f"must be a whole number of reviewers, got {self.approvals!r}",
                "pass quorum=2 (or Quorum(approvals=2)) for the two-person rule",
            )
        if self.approvals < 1:
            raise ConfigError(
                "quorum.approvals",
                f"must be at least 1, got {self.approvals}",
                "pass quorum=2 for the two-person rule, or leave quorum= out for one approval",
            )
        if self.max_requests is not None and (
            isinstance(self.max_requests, bool)
            or not isinstance(self.max_requests, int)
            or self.max_requests < self.approvals
        ):
            raise ConfigError(
                "quorum.max_requests",
                f"must be a whole number at least approvals ({self.approvals}), "
                f"got {self.max_requests!r}",
                "leave it out for approvals + 2, or raise it",
            )
