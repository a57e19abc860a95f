"""Shared fixtures. Nothing here touches the internet."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's real key or base URL must never reach a test.
    monkeypatch.delenv("HITL_API_KEY", raising=False)
    monkeypatch.delenv("HITL_BASE_URL", raising=False)
