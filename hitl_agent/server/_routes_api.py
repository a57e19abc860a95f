"""The HITL.sh-compatible routes under ``/v1``: key check, loops, requests."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute, Route

from .._exceptions import ConfigError
from ..models.base import validate_strict
from ..models.loops import CreateLoopParams, UpdateLoopParams
from . import _loops, _quota, _requests, _uploads, _workflows
from ._accounts import Caller
from ._errors import ServerError, validation_error
from ._http import Result, api_endpoint, read_json
from ._server import LocalHITLServer
from ._util import iso

__all__ = ["api_routes"]

_PERMISSIONS = ["loops:read", "loops:write", "requests:read", "requests:write"]


def _path(request: Request, name: str) -> str:
    return str(request.path_params[name])


async def _loop_body(request: Request, model: type[CreateLoopParams | UpdateLoopParams]) -> Any:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ServerError(400, "Invalid request body", "the body must be a JSON object")
    try:
        params = validate_strict(model, body)
        if model is CreateLoopParams and "icon" not in body:
            # openapi.json's CreateLoopRequest requires [name, icon]; the client's model
            # fills a default, the API does not (issue 22 W5).
            raise ConfigError(
                "icon", "required field is missing", "pass an icon identifier, e.g. 'shield-check'"
            )
    except ConfigError as err:
        raise validation_error(err) from None
    return params


async def test_key(request: Request, caller: Caller, server: LocalHITLServer) -> Result:
    """GET /v1/test: the key, its owner and its quota."""
    rate_limit: dict[str, Any] = {"limit": None, "remaining": None, "reset_at": None}
    if server.rate_limit is not None:
        limit = server.rate_limit
        state = server.run(lambda conn, now: _quota.current(conn, caller.api_key_id, now, limit))
        rate_limit = {"limit": limit, "remaining": state.remaining, "reset_at": iso(state.reset)}
    data = {
        "api_key_id": caller.api_key_id,
        "user_id": caller.user_id,
        "email": caller.email,
        "account_status": "active",
        "rate_limit": rate_limit,
        "permissions": _PERMISSIONS,
    }
    return 200, "API key is valid", data


async def create_loop(request: Request, caller: Caller, server: LocalHITLServer) -> Result:
    """POST /v1/api/loops."""
    params = await _loop_body(request, CreateLoopParams)
    data = server.run(_loops.create_loop, caller.user_id, params, str(request.base_url))
    return 201, "Loop created successfully with QR code", data


async def list_loops(request: Request, caller: Caller, server: LocalHITLServer) -> Result:
    """GET /v1/api/loops."""
    with server.storage.read() as conn:
        data = _loops.list_loops(conn, caller)
    return 200, "Loops retrieved successfully", data


async def get_loop(request: Request, caller: Caller, server: LocalHITLServer) -> Result:
    """GET /v1/api/loops/{loop_id}."""
    with server.storage.read() as conn:
        row = _loops.get_owned_loop(conn, caller, _path(request, "loop_id"))
        data = {"loop": _loops.loop_doc(conn, row)}
    return 200, "Loop retrieved successfully", data


async def update_loop(request: Request, caller: Caller, server: LocalHITLServer) -> Result:
    """PUT /v1/api/loops/{loop_id}."""
    loop_id = _path(request, "loop_id")
    _loops.check_loop_id(loop_id)
    params = await _loop_body(request, UpdateLoopParams)
    data = server.run(_loops.update_loop, caller, loop_id, params)
    return 200, "Loop updated successfully", data


async def delete_loop(request: Request, caller: Caller, server: LocalHITLServer) -> Result:
    """DELETE /v1/api/loops/{loop_id}."""
    data = server.run(_loops.delete_loop, caller, _path(request, "loop_id"))
    return 200, "Loop deleted successfully", data


async def loop_members(request: Request, caller: Caller, server: LocalHITLServer) -> Result:
    """GET /v1/api/loops/{loop_id}/members."""
    with server.storage.read() as conn:
        data = _loops.loop_members(conn, caller, _path(request, "loop_id"))
    return 200, "Loop members retrieved successfully", data


async def remove_member(request: Request, caller: Caller, server: LocalHITLServer) -> Result:
    """DELETE /v1/api/loops/{loop_id}/members/{user_id}."""
    data = server.run(
        _loops.remove_member, caller, _path(request, "loop_id"), _path(request, "user_id")
    )
    return 200, "Member removed successfully", data


async def create_request(request: Request, caller: Caller, server: LocalHITLServer) -> Result:
    """POST /v1/api/loops/{loop_id}/requests."""
    loop_id = _path(request, "loop_id")
    _loops.check_loop_id(loop_id)
    body = await read_json(request)
    server.check_create_body(body)
    data = server.run(_requests.create_request, caller, loop_id, body)
    server.wake()
    return 201, "Request created and broadcasted successfully", data


async def get_request(request: Request, caller: Caller, server: LocalHITLServer) -> Result:
    """GET /v1/api/requests/{request_id}."""
    with server.storage.read() as conn:
        data = _requests.get_request(conn, caller, _path(request, "request_id"))
    return 200, "Request retrieved successfully", data


async def list_requests(request: Request, caller: Caller, server: LocalHITLServer) -> Result:
    """GET /v1/api/requests."""
    with server.storage.read() as conn:
        data = _requests.list_requests(conn, caller, request.query_params)
    return 200, "Requests retrieved successfully", data


async def loop_requests(request: Request, caller: Caller, server: LocalHITLServer) -> Result:
    """GET /v1/api/loops/{loop_id}/requests: the loop's requests (API introduction, openapi)."""
    with server.storage.read() as conn:
        data = _requests.loop_requests(
            conn, caller, _path(request, "loop_id"), request.query_params
        )
    return 200, "Requests retrieved successfully", data


async def cancel_request(request: Request, caller: Caller, server: LocalHITLServer) -> Result:
    """DELETE /v1/api/requests/{request_id}."""
    data = server.run(_requests.cancel_request, caller, _path(request, "request_id"))
    server.wake()
    return 200, "Request cancelled successfully", data


async def update_request(request: Request, caller: Caller, server: LocalHITLServer) -> Result:
    """PATCH /v1/api/requests/{request_id}: change a pending request (HITL.sh's MCP tool)."""
    request_id = _path(request, "request_id")
    _requests.check_request_id(request_id)
    body = await read_json(request)
    # The same size limits and callback_url policy as a create: PATCH can set callback_url.
    server.check_create_body(body)
    data = server.run(_requests.update_request, caller, request_id, body)
    server.wake()  # a new timeout may be due sooner
    return 200, "Request updated successfully", data


async def add_feedback(request: Request, caller: Caller, server: LocalHITLServer) -> Result:
    """POST /v1/api/requests/{request_id}/feedback."""
    request_id = _path(request, "request_id")
    _requests.check_request_id(request_id)
    body = await read_json(request)
    data = server.run(_requests.feedback_request, caller, request_id, body)
    return 200, "Feedback added successfully", data


async def _trigger(request: Request, caller: Caller, server: LocalHITLServer, shape: str) -> Result:
    workflow_id = _path(request, "workflow_id")
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ServerError(400, "Invalid request body", "the trigger body must be a JSON object")
    server.check_create_body(body)  # sizes and the callback_url policy, as for a create
    data = server.run(_workflows.trigger_workflow, caller, workflow_id, body, shape)
    server.wake()
    return 201, "Workflow triggered successfully", data


async def trigger_workflow(request: Request, caller: Caller, server: LocalHITLServer) -> Result:
    """POST /v1/workflows/{workflow_id}/trigger (``concepts/workflows.mdx``)."""
    return await _trigger(request, caller, server, "trigger")


async def workflow_webhook(request: Request, caller: Caller, server: LocalHITLServer) -> Result:
    """POST /v1/workflows/webhook/{workflow_id} (HITL.sh's n8n node v2)."""
    return await _trigger(request, caller, server, "webhook")


async def list_executions(request: Request, caller: Caller, server: LocalHITLServer) -> Result:
    """GET /v1/workflows/{workflow_id}/executions: the latest executions (local server)."""
    with server.storage.read() as conn:
        data = _workflows.list_executions(conn, caller, _path(request, "workflow_id"))
    return 200, "Executions retrieved successfully", data


async def get_execution(request: Request, caller: Caller, server: LocalHITLServer) -> Result:
    """GET /v1/workflows/{workflow_id}/executions/{execution_id} (local server)."""
    with server.storage.read() as conn:
        data = _workflows.get_execution(
            conn, caller, _path(request, "workflow_id"), _path(request, "execution_id")
        )
    return 200, "Execution retrieved successfully", data


async def upload_image(request: Request, caller: Caller, server: LocalHITLServer) -> Result:
    """POST /v1/upload/image (``api-reference/upload/upload-image``)."""
    return await _uploads.store_upload(request, caller, server, "image")


async def upload_document(request: Request, caller: Caller, server: LocalHITLServer) -> Result:
    """POST /v1/upload/document (``api-reference/upload/upload-document``)."""
    return await _uploads.store_upload(request, caller, server, "document")


def api_routes() -> list[BaseRoute]:
    """The ``/v1`` routes that API keys call."""
    return [
        Route("/v1/test", api_endpoint(test_key), methods=["GET"]),
        Route("/v1/api/loops", api_endpoint(create_loop), methods=["POST"]),
        Route("/v1/api/loops", api_endpoint(list_loops), methods=["GET"]),
        Route("/v1/api/loops/{loop_id}", api_endpoint(get_loop), methods=["GET"]),
        Route("/v1/api/loops/{loop_id}", api_endpoint(update_loop), methods=["PUT"]),
        Route("/v1/api/loops/{loop_id}", api_endpoint(delete_loop), methods=["DELETE"]),
        Route("/v1/api/loops/{loop_id}/members", api_endpoint(loop_members), methods=["GET"]),
        Route(
            "/v1/api/loops/{loop_id}/members/{user_id}",
            api_endpoint(remove_member),
            methods=["DELETE"],
        ),
        Route("/v1/api/loops/{loop_id}/requests", api_endpoint(create_request), methods=["POST"]),
        Route("/v1/api/loops/{loop_id}/requests", api_endpoint(loop_requests), methods=["GET"]),
        Route("/v1/api/requests", api_endpoint(list_requests), methods=["GET"]),
        Route("/v1/api/requests/{request_id}", api_endpoint(get_request), methods=["GET"]),
        Route("/v1/api/requests/{request_id}", api_endpoint(cancel_request), methods=["DELETE"]),
        Route("/v1/api/requests/{request_id}", api_endpoint(update_request), methods=["PATCH"]),
        Route(
            "/v1/api/requests/{request_id}/feedback", api_endpoint(add_feedback), methods=["POST"]
        ),
        Route("/v1/upload/image", api_endpoint(upload_image), methods=["POST"]),
        Route("/v1/upload/document", api_endpoint(upload_document), methods=["POST"]),
        Route(
            "/v1/workflows/{workflow_id}/trigger",
            api_endpoint(trigger_workflow),
            methods=["POST"],
        ),
        Route(
            "/v1/workflows/webhook/{workflow_id}", api_endpoint(workflow_webhook), methods=["POST"]
        ),
        Route(
            "/v1/workflows/{workflow_id}/executions",
            api_endpoint(list_executions),
            methods=["GET"],
        ),
        Route(
            "/v1/workflows/{workflow_id}/executions/{execution_id}",
            api_endpoint(get_execution),
            methods=["GET"],
        ),
    ]
