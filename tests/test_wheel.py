"""`make test-wheel` runs the examples and docs snippets against the installed wheel.

It runs pytest from outside the checkout with HITL_EXPECT_INSTALLED_WHEEL=1; this test makes
sure that run really imported the wheel, not the checkout's hitl_agent/ beside the tests.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import pytest

import hitl_agent

CHECKOUT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(
    not os.environ.get("HITL_EXPECT_INSTALLED_WHEEL"), reason="only under `make test-wheel`"
)
def test_hitl_agent_is_the_installed_wheel() -> None:
    package = Path(hitl_agent.__file__).resolve()
    assert not package.is_relative_to(CHECKOUT / "hitl_agent"), package
    assert "site-packages" in package.parts
    distribution = importlib.metadata.distribution("hitl-agent")
    # An editable install leaves a direct_url.json saying so; a wheel install does not.
    direct_url = distribution.read_text("direct_url.json") or ""
    assert '"editable": true' not in direct_url
