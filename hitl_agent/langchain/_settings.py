"""Checks the tool factories share, so that a bad setting fails where it is written."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..gate import Gatekeeper

__all__ = ["check_settings"]


def check_settings(keeper: Gatekeeper, priority: str | None, timeout_seconds: int | None) -> None:
    """A bad priority or timeout is a ConfigError now, not on the first call an agent makes."""
    kwargs: dict[str, Any] = {}
    if priority is not None:
        kwargs["priority"] = priority
    if timeout_seconds is not None:
        kwargs["timeout_seconds"] = timeout_seconds
    keeper.spec("check", response_type="boolean", **kwargs)
