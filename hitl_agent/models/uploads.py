"""Uploads: files HITL.sh hosts for a request's ``image_url`` or ``file_url``.

``POST /v1/upload/image`` (JPEG, PNG, GIF, WebP; 10 MB) and ``POST /v1/upload/document``
(PDF, Word, Excel, PowerPoint, CSV, plain text; 50 MB), ``multipart/form-data`` with one
``file`` field (``api-reference/upload/*``). The answer's ``url`` goes into a request as
``image_url`` (``type: "image"``) or ``file_url`` with ``file_type`` and ``file_name``
(``type: "file"``).
"""

from __future__ import annotations

from typing import Final, Literal

from .base import HITLModel

__all__ = ["DOCUMENT_TYPES", "IMAGE_TYPES", "UPLOAD_LIMITS", "UploadKind", "UploadedFile", "sniff"]

UploadKind = Literal["image", "document"]

IMAGE_TYPES: Final = {
    "image/jpeg": (".jpg", ".jpeg"),
    "image/png": (".png",),
    "image/gif": (".gif",),
    "image/webp": (".webp",),
}
"""The image types HITL.sh accepts, with their file name endings."""

DOCUMENT_TYPES: Final = {
    "application/pdf": (".pdf",),
    "application/msword": (".doc",),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (".docx",),
    "application/vnd.ms-excel": (".xls",),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": (".xlsx",),
    "application/vnd.ms-powerpoint": (".ppt",),
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": (".pptx",),
    "text/csv": (".csv",),
    "text/plain": (".txt",),
}
"""The document types HITL.sh accepts, with their file name endings."""

UPLOAD_LIMITS: Final = {"image": 10 * 1024 * 1024, "document": 50 * 1024 * 1024}
"""The largest file of each kind, in bytes (HITL.sh: 10 MB images, 50 MB documents)."""


def sniff(kind: UploadKind, data: bytes, declared: str | None, filename: str) -> str | None:
    """The MIME type ``data`` is, among the accepted ones of ``kind``; None when it is none.

    An image is told by its leading bytes (never by what the sender declared, so a script
    sent as ``image/png`` is refused); a document by its declared type or its name's ending.
    """
    if kind == "image":
        if data.startswith(b"\xff\xd8\xff"):
            return "image/jpeg"
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            return "image/png"
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return "image/gif"
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return "image/webp"
        return None
    if declared in DOCUMENT_TYPES:
        return declared
    lower = filename.lower()
    for mime, endings in DOCUMENT_TYPES.items():
        if lower.endswith(endings):
            return mime
    return None


class UploadedFile(HITLModel):
    """What an upload returns: the hosted ``url`` (use it as ``image_url`` or ``file_url``),
    and for documents ``file_type``, ``file_name`` and ``size_bytes``."""

    url: str
    file_type: str | None = None
    file_name: str | None = None
    size_bytes: int | None = None
