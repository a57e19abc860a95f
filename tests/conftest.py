"""Shared fixtures. Nothing here touches the internet."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

# CI must not fail on an example nobody has seen before: there, hypothesis replays the same
# derandomized examples every run. Locally it explores (and its database keeps what it found).
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's real key or base URL must never reach a test, nor their opt-in to use it
    # (HITL_LIVE=1: hitl_or_local() and the examples would leave the local server).
    monkeypatch.delenv("HITL_API_KEY", raising=False)
    monkeypatch.delenv("HITL_BASE_URL", raising=False)
    monkeypatch.delenv("HITL_LIVE", raising=False)
