"""Per-request capability tokens for callback URLs.

HITL.sh signs nothing it POSTs to a ``callback_url``, so the URL itself carries an
unguessable token: ``token = HMAC-SHA256(callback_secret, correlation key)``. Deriving it from
the key (rather than drawing it at random) lets a gate that reconciles a crashed create rebuild
the same URL. The ledger stores only ``sha256(token)``; the token only authorizes a re-fetch of
the request (the decision is never read from the callback body).
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["derive_token", "token_hash", "token_matches"]


def derive_token(secret: str, key: str) -> str:
    """The capability token of the gate with correlation key ``key`` (64 hex chars)."""
    return hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()


def token_hash(token: str) -> str:
    """What the ledger stores for a token: its sha256 hex digest."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_matches(token: str, stored_hash: str | None) -> bool:
    """Constant-time check of a presented token against a stored hash."""
    if stored_hash is None:
        return False
    return hmac.compare_digest(token_hash(token), stored_hash)
