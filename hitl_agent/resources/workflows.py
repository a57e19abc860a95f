"""``client.workflows``: trigger a workflow (HITL.sh's successor to creating in a loop)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._base_client import APICall
from .._exceptions import ConfigError
from ..models.workflows import WorkflowRef, WorkflowTrigger, workflow_ref

if TYPE_CHECKING:
    from .._client import AsyncHITLClient, HITLClient

__all__ = ["AsyncWorkflows", "Workflows"]


def _trigger(
    workflow: str | WorkflowRef, body: Mapping[str, Any] | None
) -> APICall[WorkflowTrigger]:
    ref = workflow_ref(workflow, field="workflow_id")
    if body is not None and not isinstance(body, Mapping):
        raise ConfigError("body", "not a JSON object", "pass a dict (any JSON object)")
    payload = dict(body) if body is not None else {}
    try:
        json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ConfigError("body", f"not JSON: {err}", "pass only JSON values") from None
    return APICall("POST", ref.path(), WorkflowTrigger.model_validate, json=payload, top_level=True)


class Workflows:
    """Workflow endpoints on the sync client."""

    def __init__(self, client: HITLClient) -> None:
        self._client = client

    def trigger(
        self, workflow_id: str | WorkflowRef, body: Mapping[str, Any] | None = None
    ) -> WorkflowTrigger:
        """Start an execution of ``workflow_id`` (an id, or a trigger URL in either
        documented shape) with ``body`` (any JSON object; every node reads it).

        The answer's ``request_id`` is the request the Human Review node created: wait on
        it like any other. The POST is sent once (retried only when the connection never
        opened): HITL.sh has no idempotency key, and a second trigger asks twice.
        """
        return self._client._execute(_trigger(workflow_id, body))


class AsyncWorkflows:
    """Workflow endpoints on the async client."""

    def __init__(self, client: AsyncHITLClient) -> None:
        self._client = client

    async def trigger(
        self, workflow_id: str | WorkflowRef, body: Mapping[str, Any] | None = None
    ) -> WorkflowTrigger:
        """Async twin of :meth:`Workflows.trigger`."""
        return await self._client._execute(_trigger(workflow_id, body))
