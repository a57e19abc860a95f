"""Uploads on the local server: ``POST /v1/upload/image|document`` and the files they host.

A file is stored in the database and served at ``/uploads/{id}/{name}`` without a key, as
HITL.sh's CDN serves its uploads: the random 32-byte id is the capability. What is stored is
checked as HITL.sh documents (types, 10 MB images, 50 MB documents); an image by its leading
bytes. Files are served with their checked type, ``nosniff`` and a sandboxing CSP, and
documents as attachments, so an upload can never run script in the console's origin.
"""

from __future__ import annotations

import email.parser
import email.policy
import secrets
import sqlite3
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..models.uploads import UPLOAD_LIMITS, UploadKind, sniff
from ._accounts import Caller
from ._errors import ServerError
from ._http import Result, envelope

__all__ = ["serve_upload", "store_upload"]

_SLACK = 64 * 1024  # the multipart envelope around the file


def _file_part(content_type: str, body: bytes) -> tuple[str, bytes, str | None]:
    """(filename, bytes, declared type) of the ``file`` field of a multipart body."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise ServerError(400, "Invalid request body", "send multipart/form-data with a file field")
    parser = email.parser.BytesParser(policy=email.policy.HTTP)
    message = parser.parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") != "file":
            continue
        data = part.get_payload(decode=True)
        name = part.get_filename() or ""
        if not isinstance(data, bytes):
            break
        return name.replace("/", "_").replace("\\", "_")[:200], data, part.get_content_type()
    raise ServerError(
        400,
        "Validation failed",
        "file: required field is missing. Fix: send the file in a field named file",
    )


async def store_upload(request: Request, caller: Caller, server: Any, kind: UploadKind) -> Result:
    """POST /v1/upload/{kind}: check and keep the file; its URL (and for documents its
    type, name and size)."""
    limit = UPLOAD_LIMITS[kind]
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + _SLACK:
        raise ServerError(413, "File too large", f"file: over the {limit // 2**20} MB {kind} limit")
    body = await request.body()
    name, data, given_type = _file_part(request.headers.get("content-type", ""), body)
    if len(data) > limit:
        raise ServerError(413, "File too large", f"file: over the {limit // 2**20} MB {kind} limit")
    mime = sniff(kind, data, given_type, name)
    if not data or mime is None:
        raise ServerError(
            400,
            "Unsupported file type",
            f"file: not {'an' if kind == 'image' else 'a'} {kind} HITL.sh accepts",
        )
    upload_id = secrets.token_urlsafe(32)
    name = name or ("upload" if kind == "document" else "image")

    def insert(conn: sqlite3.Connection, now: float) -> None:
        conn.execute(
            "INSERT INTO uploads (id, api_key_id, kind, file_name, file_type, data, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (upload_id, caller.api_key_id, kind, name, mime, data, now),
        )

    server.run(insert)
    url = f"{str(request.base_url).rstrip('/')}/uploads/{upload_id}/{name}"
    result: dict[str, Any] = {"url": url}
    if kind == "document":
        result.update(file_type=mime, file_name=name, size_bytes=len(data))
    return 200, "File uploaded successfully", result


async def serve_upload(request: Request) -> Response:
    """GET /uploads/{id}/{name}: the stored file (the id is the capability, as on a CDN)."""
    server = request.app.state.hitl
    with server.storage.read() as conn:
        row = conn.execute(
            "SELECT kind, file_name, file_type, data FROM uploads WHERE id = ?",
            (str(request.path_params["upload_id"]),),
        ).fetchone()
    if row is None:
        return envelope(404, "Not found")
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, max-age=3600",
    }
    if row["kind"] == "document":
        headers["Content-Disposition"] = f'attachment; filename="{row["file_name"]}"'
    return Response(bytes(row["data"]), media_type=row["file_type"], headers=headers)
