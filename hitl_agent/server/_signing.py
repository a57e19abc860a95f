"""HMAC-SHA256 signatures of callback bodies, as ``X-HITL-Signature-256: sha256=<hex>``.

Pure functions, shared by the server that signs and any receiver that verifies::

    header = sign(body, secret)           # "sha256=5d41..."
    verify(body, header, secret)          # True
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["SIGNATURE_HEADER", "sign", "verify"]

SIGNATURE_HEADER = "X-HITL-Signature-256"
_PREFIX = "sha256="


def sign(body: bytes, secret: str) -> str:
    """The header value for ``body``: ``sha256=`` and the hex HMAC-SHA256 under ``secret``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return _PREFIX + digest


def verify(body: bytes, header: str | None, secret: str) -> bool:
    """True when ``header`` is the signature of ``body`` under ``secret``.

    The comparison is constant-time. A missing header, a header without the ``sha256=``
    prefix or an empty secret never verifies.
    """
    if not header or not secret or not header.startswith(_PREFIX):
        return False
    return hmac.compare_digest(
        sign(body, secret).encode("ascii"), header.strip().encode("ascii", "replace")
    )
