"""The ledger: one durable row per review gate. See :mod:`hitl_agent.ledger._base`.

``open_ledger(url)`` picks a backend::

    open_ledger("sqlite:///hitl.db")                 # relative to the working directory
    open_ledger("sqlite:////var/lib/hitl/hitl.db")   # absolute
    open_ledger("hitl.db")                           # a bare path: SQLite
    open_ledger("postgresql://user@host/db?schema=hitl")

``PostgresLedger`` is imported on first use, so the SQLite path works without psycopg.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from ._base import Ledger, LedgerError, LedgerState, ReviewRecord, SlotClaim
from ._executions import DeliveryFault, ExecutionRecord, ExecutionState
from ._grants import Grant, GrantScope, GrantUse
from .sqlite import SqliteLedger

if TYPE_CHECKING:
    from .postgres import PostgresLedger

__all__ = [
    "DeliveryFault",
    "ExecutionRecord",
    "ExecutionState",
    "Grant",
    "GrantScope",
    "GrantUse",
    "Ledger",
    "LedgerError",
    "LedgerState",
    "PostgresLedger",
    "ReviewRecord",
    "SlotClaim",
    "SqliteLedger",
    "open_ledger",
]

_ACCEPTED = (
    "'sqlite:///relative/path.db', 'sqlite:////absolute/path.db', a bare file path, "
    "'postgresql://…' or 'postgres://…'"
)


def __getattr__(name: str) -> Any:
    # PEP 562: psycopg is an optional extra; importing it eagerly would break `import
    # hitl_agent.ledger` for every SQLite user.
    if name == "PostgresLedger":
        from .postgres import PostgresLedger

        return PostgresLedger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_ledger(url: str) -> Ledger:
    """Open the ledger a URL names and run its ``setup()``.

    Args:
        url: ``sqlite:///relative.db``, ``sqlite:////abs/path.db``, a bare path (SQLite), or a
            libpq URI ``postgresql://…`` / ``postgres://…``. A PostgreSQL URI may carry
            ``?schema=NAME`` to keep the tables in their own schema (created if missing).

    Returns:
        A ready ledger; the caller closes it (it is also a context manager).

    Raises:
        ValueError: an unknown scheme or a malformed SQLite URL; the message lists the
            accepted forms.
        ImportError: a PostgreSQL URL without the ``postgres`` extra installed.
    """
    ledger = _from_url(url)
    try:
        ledger.setup()
    except BaseException:
        ledger.close()
        raise
    return ledger


def _from_url(url: str) -> Ledger:
    if not isinstance(url, str) or not url:
        raise ValueError(f"a ledger URL must be a non-empty string: one of {_ACCEPTED}")
    if "://" not in url:
        return SqliteLedger(url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        # The third slash ends the empty host: sqlite:///rel.db -> "rel.db",
        # sqlite:////abs.db -> "/abs.db".
        if parts.netloc or parts.query or parts.fragment or len(parts.path) < 2:
            raise ValueError(f"malformed SQLite ledger URL {url!r}: use one of {_ACCEPTED}")
        return SqliteLedger(unquote(parts.path[1:]))
    if scheme in ("postgresql", "postgres"):
        query = parse_qsl(parts.query, keep_blank_values=True)
        schema = next((value for name, value in query if name == "schema"), None)
        rest = urlencode([(name, value) for name, value in query if name != "schema"])
        conninfo = urlunsplit(parts._replace(query=rest))
        from .postgres import PostgresLedger

        return PostgresLedger(conninfo, schema=schema or None)
    raise ValueError(
        f"unknown ledger URL scheme {parts.scheme!r} in {url!r}: use one of {_ACCEPTED}"
    )
