"""Fixtures for the middleware bridge: the harness's local HITL server and keeper, LangChain's
documented ``HumanInTheLoopMiddleware`` configurations, and a scripted chat model."""

import sys
from pathlib import Path

import pytest

pytest.importorskip("langchain.agents.middleware")

# The shared harness lives in tests/gate (these test folders are not packages).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "gate"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hitl_harness import env  # noqa: F401  (the fixture)
