"""Seeding for the benchmarks: requests created and answered through the local server's own
operations, in this thread, not over HTTP.

What a benchmark measures is never the seeding, and through the TestClient each create costs
≈ 7 ms of portal hops on 2 cores: seeding 10,000 that way would take a module's whole budget.
The creates build the same body (``CreateRequestParams``) and store the same row; the answers
run the reviewer's respond operation (what the reviewer endpoint and the console run).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hitl_agent.models.requests import CreatedRequest, CreateRequestParams
from hitl_agent.server import _requests, _reviewing, render_request_html

__all__ = ["DirectCreates", "answer_all"]


class DirectCreates:
    """A stand-in for ``client`` in :func:`hitl_agent.gate.ensure_request`: its
    ``requests.create`` runs the local server's create operation for the local HITL's key."""

    def __init__(self, hitl: Any) -> None:
        self._server = hitl.server
        self._caller = hitl.server.authenticate_key(hitl.api_key)
        self.requests = self

    def create(self, loop_id: str, **fields: Any) -> CreatedRequest:
        body = CreateRequestParams.build(**fields).to_body()
        data = self._server.run(_requests.create_request, self._caller, loop_id, body)
        return CreatedRequest.model_validate(data)


def answer_all(hitl: Any, request_ids: Iterable[str], value: Any = True) -> None:
    """Answer every request as the loop's reviewer, in one transaction (all at once, as a
    bulk approval would)."""
    reviewer = hitl.server.authenticate_reviewer(hitl.credentials.reviewer_token)
    ids = list(request_ids)

    def respond_all(conn: Any, now: float) -> None:
        for request_id in ids:
            _reviewing.respond(conn, now, reviewer, request_id, value, render_request_html)

    hitl.server.run(respond_all)
