"""Durations in policies: seconds or a timedelta, checked once at construction."""

from __future__ import annotations

import math
from datetime import timedelta

from .._exceptions import ConfigError

__all__ = ["seconds"]


def seconds(field: str, value: float | timedelta | None) -> float | None:
    """``value`` in seconds (None stays None).

    Raises:
        ConfigError: naming ``field``, for anything but a positive finite number or timedelta.
    """
    if value is None:
        return None
    total = value.total_seconds() if isinstance(value, timedelta) else value
    if (
        isinstance(total, bool)
        or not isinstance(total, int | float)
        or not math.isfinite(total)
        or total <= 0
    ):
        name = field.rsplit(".", 1)[-1]
        raise ConfigError(
            field,
            f"must be a positive number of seconds or a timedelta, got {value!r}",
            f"pass e.g. {name}=3600 for an hour",
        )
    return float(total)
