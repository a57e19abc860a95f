"""Defaults shared by the sync and async clients."""

from __future__ import annotations

import httpx2

__all__ = ["API_PREFIX", "DEFAULT_BASE_URL", "DEFAULT_TIMEOUT", "USER_AGENT"]

DEFAULT_BASE_URL = "https://api.hitl.sh/v1"
API_PREFIX = "/api"
"""Loops and requests live under ``{base_url}/api``; the key check is ``{base_url}/test``."""
DEFAULT_TIMEOUT = httpx2.Timeout(30.0, connect=5.0)
USER_AGENT = "hitl-agent-python/0.1.0"
