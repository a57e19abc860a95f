"""A tool call too long to show in one request, attached whole as a document (issue 21 S1).

The tool wrapper (:mod:`._flow`, :mod:`._approval`) and the middleware bridge
(:mod:`._bridge_form`, :mod:`._bridge_core`) attach the same document the same way, so a
reviewer reads one format and the quota is charged once per distinct call: the document is
the call as pretty JSON with invisible characters marked, named by its hash; its URL is kept
in the ledger under that name, so every re-run and replica renders the same request text (the
review's spec hash holds) and a reader re-deriving the form never uploads.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigError
from ..protocol import jsonable
from ._render import reveal_invisible

if TYPE_CHECKING:
    from ..gate import Gatekeeper
    from ..ledger import Ledger

__all__ = ["CallDocument", "attach_document", "call_document", "kept_url"]

_META = "hitl_agent.attachment|"


@dataclass(frozen=True)
class CallDocument:
    """The whole call as the reviewer can read it: ``body`` (its text), ``name`` (its file
    name, from its hash) and ``digest`` (the body's sha256, hex)."""

    body: str
    name: str
    digest: str

    def link(self, url: str) -> str:
        """The markdown link the request text shows: the size and sha256 let what the
        reviewer read be checked later."""
        return f"[{self.name}](<{url}>) ({len(self.body)} characters, sha256 `{self.digest[:16]}…`)"


def call_document(tool: str, args: Mapping[str, Any]) -> CallDocument:
    """The document of the call of ``tool`` with ``args``.

    Raises:
        ConfigError: ``args`` hold a value no review can be bound to (see ``jsonable``).
    """
    body = reveal_invisible(
        json.dumps(
            {"tool": tool, "args": jsonable(dict(args), field="args")},
            indent=2,
            sort_keys=True,
            ensure_ascii=False,
        )
    )
    digest = hashlib.sha256(body.encode()).hexdigest()
    return CallDocument(body, f"tool-call-{digest[:16]}.txt", digest)


def kept_url(ledger: Ledger, name: str) -> str | None:
    """The URL the document ``name`` was hosted at, as the ledger keeps it; None when it never
    was (nothing is uploaded)."""
    known = ledger.get_meta(_META + name)
    return None if known is None else str(known)


def attach_document(keeper: Gatekeeper, body: str, name: str) -> str:
    """Host ``body`` as a document on HITL.sh (``POST /v1/upload/document``) and return its
    URL, charged to the keeper's budget (1 call); a document already hosted costs nothing.
    Concurrent first uploads agree on the first URL the ledger kept.

    Raises:
        ConfigError: the budget has no call left this hour.
        HITLError: the upload failed.
    """
    known = kept_url(keeper.ledger, name)
    if known is not None:
        return known
    if not keeper.budget.try_spend(1, client=keeper.client):
        raise ConfigError("budget", "no call left this hour for the upload", "wait")
    uploaded = keeper.client.uploads.document(
        body.encode(), filename=name, content_type="text/plain"
    )
    return str(keeper.ledger.ensure_meta(_META + name, uploaded.url))
