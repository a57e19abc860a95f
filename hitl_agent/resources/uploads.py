"""``client.uploads``: host an image or a document for a request (``image_url``/``file_url``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, TYPE_CHECKING

from .._base_client import APICall
from .._exceptions import ConfigError
from ..models.uploads import UPLOAD_LIMITS, UploadedFile, UploadKind, sniff

if TYPE_CHECKING:
    from .._client import AsyncHITLClient, HITLClient

__all__ = ["AsyncUploads", "FileInput", "Uploads"]

FileInput = bytes | str | os.PathLike[str] | IO[bytes]
"""A file to upload: its bytes, a path, or a binary file object."""


def _read(file: FileInput, filename: str | None) -> tuple[bytes, str]:
    if isinstance(file, bytes):
        data, name = file, filename
    elif isinstance(file, str | os.PathLike):
        path = Path(file)
        try:
            data = path.read_bytes()
        except OSError as err:
            raise ConfigError(
                "file", f"cannot read {path.name}: {err.strerror}", "pass a readable file"
            ) from None
        name = filename or path.name
    elif hasattr(file, "read"):
        data = file.read()
        if not isinstance(data, bytes):
            raise ConfigError("file", "the file object is not binary", "open it with 'rb'")
        name = filename or os.path.basename(str(getattr(file, "name", "") or ""))
    else:
        raise ConfigError(
            "file", f"a {type(file).__name__} is not a file", "pass bytes, a path or a binary file"
        )
    if not name:
        raise ConfigError(
            "filename", "missing", "pass filename= with the file's name, e.g. 'photo.png'"
        )
    return data, name


def _upload(
    kind: UploadKind, file: FileInput, filename: str | None, content_type: str | None
) -> APICall[UploadedFile]:
    # Checked before sending: the type (an image by its bytes) and the size limit.
    data, name = _read(file, filename)
    limit = UPLOAD_LIMITS[kind]
    if len(data) > limit:
        raise ConfigError(
            "file", f"{len(data)} bytes is over the {limit // (1024 * 1024)} MB {kind} limit",
            "send a smaller file",
        )  # fmt: skip
    if not data:
        raise ConfigError("file", "empty", "pass the file's content")
    mime = sniff(kind, data, content_type, name)
    if mime is None:
        accepted = "JPEG, PNG, GIF or WebP" if kind == "image" else (
            "PDF, DOC(X), XLS(X), PPT(X), CSV or TXT"
        )  # fmt: skip
        article = "an" if kind == "image" else "a"
        raise ConfigError(
            "file", f"{name} is not {article} {kind} HITL.sh accepts", f"send {accepted}"
        )
    return APICall(
        "POST", f"/upload/{kind}", UploadedFile.model_validate, files={"file": (name, data, mime)}
    )


class Uploads:
    """Upload endpoints on the sync client."""

    def __init__(self, client: HITLClient) -> None:
        self._client = client

    def image(
        self, file: FileInput, *, filename: str | None = None, content_type: str | None = None
    ) -> UploadedFile:
        """Host an image (JPEG, PNG, GIF, WebP; 10 MB): ``POST /v1/upload/image``; use the
        answer's ``url`` as a request's ``image_url`` (``type="image"``)."""
        return self._client._execute(_upload("image", file, filename, content_type))

    def document(
        self, file: FileInput, *, filename: str | None = None, content_type: str | None = None
    ) -> UploadedFile:
        """Host a document (PDF, Word, Excel, PowerPoint, CSV, text; 50 MB):
        ``POST /v1/upload/document``; use ``url``, ``file_type`` and ``file_name`` as a
        request's ``file_url``, ``file_type``, ``file_name`` (``type="file"``)."""
        return self._client._execute(_upload("document", file, filename, content_type))


class AsyncUploads:
    """Upload endpoints on the async client."""

    def __init__(self, client: AsyncHITLClient) -> None:
        self._client = client

    async def image(
        self, file: FileInput, *, filename: str | None = None, content_type: str | None = None
    ) -> UploadedFile:
        """Async twin of :meth:`Uploads.image`."""
        return await self._client._execute(_upload("image", file, filename, content_type))

    async def document(
        self, file: FileInput, *, filename: str | None = None, content_type: str | None = None
    ) -> UploadedFile:
        """Async twin of :meth:`Uploads.document`."""
        return await self._client._execute(_upload("document", file, filename, content_type))
