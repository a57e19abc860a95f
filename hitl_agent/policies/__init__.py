"""Approval policies: what a reviewer may approve beyond one call.

``Grants`` lets the reviewer of a ``require_approval`` tool answer "approve this tool in this
thread for a while" or "approve these exact arguments for a while" besides "approve once"::

    from hitl_agent.langchain import require_approval
    from hitl_agent.policies import Grants

    pay = require_approval(keeper, pay, grants=Grants(thread=3600, args=86400))

See docs/policies.md for what the reviewer sees and how grants are kept, listed and revoked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from .._exceptions import ConfigError

__all__ = ["Grants"]


def _seconds(name: str, value: float | timedelta | None) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or seconds <= 0
    ):
        raise ConfigError(
            f"grants.{name}",
            f"must be a positive number of seconds or a timedelta, got {value!r}",
            f"pass e.g. Grants({name}=3600) for an hour, or leave it out to not offer it",
        )
    return float(seconds)


@dataclass(frozen=True)
class Grants:
    """The standing approvals a reviewer may give, each for a fixed time.

    Args:
        thread: offer "approve this tool in this thread for ``thread``": later calls of the
            tool in the same LangGraph thread run without a new request, whatever their
            arguments, until it expires. Seconds or a timedelta; None: not offered.
        args: offer "approve these exact arguments for ``args``": later calls of the tool
            with exactly the same arguments run without a new request, in any thread of the
            same loop, until it expires. Seconds or a timedelta; None: not offered.

    "Approve once" is always offered. A grant never covers another tool, another loop, or
    (``thread``) another thread or (``args``) other arguments; it starts when the reviewer's
    answer is recorded, and ``hitl-agent grants revoke`` ends it early.

    Raises:
        ConfigError: a duration that is not a positive number, or neither offered.
    """

    thread: float | timedelta | None = None
    args: float | timedelta | None = None

    def __post_init__(self) -> None:
        thread, args = _seconds("thread", self.thread), _seconds("args", self.args)
        if thread is None and args is None:
            raise ConfigError(
                "grants",
                "offers no grant (thread and args are both None)",
                "pass Grants(thread=SECONDS) and/or Grants(args=SECONDS), or leave grants= out",
            )
        object.__setattr__(self, "thread", thread)
        object.__setattr__(self, "args", args)

    @property
    def thread_seconds(self) -> float | None:
        """How long a thread grant lasts, in seconds (None: not offered)."""
        assert not isinstance(self.thread, timedelta)  # made seconds at construction
        return self.thread

    @property
    def args_seconds(self) -> float | None:
        """How long an exact-arguments grant lasts, in seconds (None: not offered)."""
        assert not isinstance(self.args, timedelta)
        return self.args
