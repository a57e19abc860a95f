"""Named crash points, so tests can kill a gate or a resolver between any two steps.

Production code calls :func:`checkpoint` at each step; it does nothing unless a test installed
a hook. The names are stable (crash-injection tests refer to them):

``gate.after_intent``, ``gate.before_create``, ``gate.after_create``, ``gate.after_mark_created``,
``gate.before_interrupt``, ``resolver.after_fetch``, ``resolver.after_record_decision``,
``resolver.after_claim``, ``resolver.after_resume``, ``execution.after_start`` (an approved
call's start is recorded, its action not yet run), ``execution.after_action`` (the action
returned, its outcome not yet recorded), ``policy.after_stage_decided`` (an approval policy's
stage returned its decision, the next stage not yet asked).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["CRASH_POINTS", "checkpoint", "set_hook"]

CRASH_POINTS: tuple[str, ...] = (
    "gate.after_intent",
    "gate.before_create",
    "gate.after_create",
    "gate.after_mark_created",
    "gate.before_interrupt",
    "resolver.after_fetch",
    "resolver.after_record_decision",
    "resolver.after_claim",
    "resolver.after_resume",
    "execution.after_start",
    "execution.after_action",
    "policy.after_stage_decided",
)

_hook: Callable[[str], None] | None = None


def set_hook(hook: Callable[[str], None] | None) -> None:
    """Install (or remove, with None) the function called at every crash point."""
    global _hook
    _hook = hook


def checkpoint(name: str) -> None:
    """Call the installed hook with ``name``; a hook raising simulates a crash there."""
    if _hook is not None:
        _hook(name)
