"""Optional extras: a missing one is an ImportError that says which extra to install.

``pip install hitl-agent`` is the client, the gate, the ledger and the dispatcher. The rest is
opt-in, so a user installs what they use::

    server    the embedded local HITL server, hitl_agent.testing, `hitl-agent serve/demo`,
              dispatcher.serve()/running() (starlette, uvicorn, markdown-it-py)
    remote    RemoteGraphResumer and the bridge on a LangGraph Server (langgraph-sdk)
    postgres  PostgresLedger and langgraph-checkpoint-postgres
    langchain the HumanInTheLoopMiddleware bridge and create_agent examples
    plot      `hitl-agent stats --plot`
    metrics   hitl_agent.observability.collector() for your own Prometheus registry
    otel      the hitl.review / hitl.resume OpenTelemetry spans (opentelemetry-api)
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtraError", "require"]


class MissingExtraError(ImportError):
    """A feature needs an optional extra that is not installed."""

    def __init__(self, extra: str, feature: str, missing: str) -> None:
        super().__init__(
            f"{feature} needs the {extra!r} extra ({missing} is not installed): "
            f"pip install 'hitl-agent[{extra}]'"
        )
        self.extra = extra
        self.feature = feature


def require(extra: str, feature: str, *modules: str) -> list[ModuleType]:
    """Import ``modules`` or raise :class:`MissingExtraError` naming ``extra``."""
    loaded: list[ModuleType] = []
    for name in modules:
        try:
            loaded.append(importlib.import_module(name))
        except ImportError as err:
            raise MissingExtraError(extra, feature, name) from err
    return loaded
