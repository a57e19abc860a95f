"""Keep capability tokens out of access logs, however the receiver is served.

Every callback path ends in a capability token. ``Dispatcher.serve`` turns uvicorn's access log
off, but an ``asgi_app`` mounted in the user's own app under uvicorn's defaults logs each
request line at INFO (``"POST /hitl/<token> HTTP/1.1" 202``). This filter, installed on
``uvicorn.access`` when a receiver is built, rewrites the path in those records: the segment
after any receiver's path prefix, and any 64-hex run (the shape of every token this package
derives), become ``<token>``. Logger filters survive uvicorn's ``dictConfig``.
"""

from __future__ import annotations

import logging
import re
import threading

__all__ = ["ACCESS_LOGGERS", "install_access_log_redaction", "redact_tokens"]

ACCESS_LOGGERS = ("uvicorn.access", "hypercorn.access", "gunicorn.access")
_HEX_TOKEN = re.compile(r"(?i)(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
_MASK = "<token>"


class _TokenRedactor(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._prefixes: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add_prefix(self, prefix: str) -> None:
        with self._lock:
            if prefix in self._prefixes:
                return
            self._prefixes.add(prefix)
            alternatives = "|".join(
                re.escape(p) for p in sorted(self._prefixes, key=len, reverse=True)
            )
            # The prefix may be mounted under another path; the token is the next segment.
            self._pattern = re.compile(rf"((?:{alternatives})/)[^/?#\s\"]+")

    def redact(self, text: str) -> str:
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(lambda m: m.group(1) + _MASK, text)
        return _HEX_TOKEN.sub(_MASK, text)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self.redact(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        elif isinstance(record.args, dict):
            record.args = {
                key: self.redact(value) if isinstance(value, str) else value
                for key, value in record.args.items()
            }
        if isinstance(record.msg, str):
            record.msg = self.redact(record.msg)
        return True


_REDACTOR = _TokenRedactor()


def redact_tokens(text: str) -> str:
    """``text`` with every capability-token-shaped part replaced by ``<token>``."""
    return _REDACTOR.redact(text)


def install_access_log_redaction(prefix: str) -> None:
    """Redact the segment after ``prefix`` (e.g. ``/hitl``) in every access-log line. Idempotent."""
    if prefix:
        _REDACTOR.add_prefix(prefix)
    for name in ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)
