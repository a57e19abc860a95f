"""The operations commands run against the local server's app, through ``ctx.obj``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner, Result

from hitl_agent.cli import main
from hitl_agent.testing import FakeClock, LocalHITL, local_hitl


@dataclass
class Cli:
    """Run ``hitl-agent ...`` against ``hitl`` (env: its key and base URL)."""

    hitl: LocalHITL
    clock: FakeClock

    def __call__(self, *args: str, input: str | None = None, **env: str) -> Result:
        environ = {"HITL_API_KEY": self.hitl.api_key, "HITL_BASE_URL": self.hitl.base_url, **env}
        return CliRunner().invoke(
            main, list(args), obj={"http_client": self.hitl.http}, env=environ, input=input
        )

    def create(self, **fields: Any) -> str:
        body: dict[str, Any] = {
            "request_text": "Deploy?", "response_type": "boolean", "default_response": False,
            "timeout_seconds": 600, **fields,
        }  # fmt: skip
        return self.hitl.client.requests.create(self.hitl.loop_id, **body).request_id


@pytest.fixture
def cli() -> Iterator[Cli]:
    clock = FakeClock()
    with local_hitl(clock=clock) as hitl:
        yield Cli(hitl, clock)
