"""The reviewer API under ``/v1/reviewer``: what a reviewer's app or the console calls.

Authenticated with a reviewer token (``Authorization: Bearer <token>``), not an API key, and
outside the API keys' quota.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import BaseRoute, Route

from . import _reviewing
from ._accounts import ReviewerAccount
from ._errors import ServerError
from ._http import Result, read_json, reviewer_endpoint
from ._requests import check_request_id
from ._server import LocalHITLServer, render_request_html

__all__ = ["reviewer_routes"]


async def me(request: Request, reviewer: ReviewerAccount, server: LocalHITLServer) -> Result:
    """GET /v1/reviewer/me: who the token belongs to and which loops they review."""
    with server.storage.read() as conn:
        rows = conn.execute(
            "SELECT l.id, l.name FROM loops l JOIN loop_members m ON m.loop_id = l.id "
            "WHERE m.user_id = ? AND m.status = 'active' ORDER BY l.created_at, l.id",
            (reviewer.id,),
        ).fetchall()
    data = {
        "user_id": reviewer.id,
        "email": reviewer.email,
        "name": reviewer.name,
        "loops": [{"id": row["id"], "name": row["name"]} for row in rows],
    }
    return 200, "Reviewer retrieved successfully", data


async def queue(request: Request, reviewer: ReviewerAccount, server: LocalHITLServer) -> Result:
    """GET /v1/reviewer/queue?limit=50."""
    raw = request.query_params.get("limit", "50")
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise ServerError(
            400, "Invalid pagination parameters", "limit must be an integer between 1 and 100"
        )
    data = server.run(_reviewing.queue, reviewer, limit, render_request_html)
    return 200, "Queue retrieved successfully", data


async def get_request(
    request: Request, reviewer: ReviewerAccount, server: LocalHITLServer
) -> Result:
    """GET /v1/reviewer/requests/{request_id}."""
    request_id = str(request.path_params["request_id"])
    return (
        200,
        "Request retrieved successfully",
        {"request": server.get_for_reviewer(reviewer, request_id)},
    )


async def claim(request: Request, reviewer: ReviewerAccount, server: LocalHITLServer) -> Result:
    """POST /v1/reviewer/requests/{request_id}/claim."""
    request_id = str(request.path_params["request_id"])
    return 200, "Request claimed successfully", {"request": server.claim(reviewer, request_id)}


async def release(request: Request, reviewer: ReviewerAccount, server: LocalHITLServer) -> Result:
    """POST /v1/reviewer/requests/{request_id}/release."""
    request_id = str(request.path_params["request_id"])
    return 200, "Request released successfully", {"request": server.release(reviewer, request_id)}


async def respond(request: Request, reviewer: ReviewerAccount, server: LocalHITLServer) -> Result:
    """POST /v1/reviewer/requests/{request_id}/respond with ``{"response_data": <value>}``."""
    request_id = str(request.path_params["request_id"])
    check_request_id(request_id)
    body = await read_json(request)
    if not isinstance(body, dict) or "response_data" not in body:
        raise ServerError(
            400,
            "Invalid request body",
            'response_data: required field is missing. Fix: send {"response_data": <answer>}',
        )
    extra = sorted(set(body) - {"response_data"})
    if extra:
        raise ServerError(
            400, "Invalid request body", f"{extra[0]}: unknown field. Fix: send only response_data"
        )
    data = {"request": server.respond(reviewer, request_id, body["response_data"])}
    return 200, "Response recorded successfully", data


def reviewer_routes() -> list[BaseRoute]:
    """The ``/v1/reviewer`` routes that reviewer tokens call."""
    base = "/v1/reviewer"
    return [
        Route(f"{base}/me", reviewer_endpoint(me), methods=["GET"]),
        Route(f"{base}/queue", reviewer_endpoint(queue), methods=["GET"]),
        Route(f"{base}/requests/{{request_id}}", reviewer_endpoint(get_request), methods=["GET"]),
        Route(f"{base}/requests/{{request_id}}/claim", reviewer_endpoint(claim), methods=["POST"]),
        Route(
            f"{base}/requests/{{request_id}}/release", reviewer_endpoint(release), methods=["POST"]
        ),
        Route(
            f"{base}/requests/{{request_id}}/respond", reviewer_endpoint(respond), methods=["POST"]
        ),
    ]
