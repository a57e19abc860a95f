"""``Grants``: the standing approvals a reviewer may give (docs/policies.md)."""

# No ``from __future__ import annotations``: the fields' annotations are objects, so pydantic
# (a model field holding a policy) needs no namespace to read them, whatever module the
# class names (``hitl_agent``, where it is re-exported).

from dataclasses import dataclass
from datetime import timedelta

from .._exceptions import ConfigError
from ._seconds import seconds

__all__ = ["Grants"]


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
        thread, args = seconds("grants.thread", self.thread), seconds("grants.args", self.args)
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
