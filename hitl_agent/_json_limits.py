"""JSON from untrusted bodies, with a nesting limit checked before the parser runs.

The stdlib parser recurses once per ``[`` or ``{``: a 2 KB body nested a thousand deep raises
``RecursionError`` (not ``ValueError``), which escapes every ``except ValueError`` around it.
:func:`loads_bounded` measures the nesting first, in one pass with no recursion, and refuses
deep bodies with :class:`JSONTooDeep` (a ``ValueError``) before ``json.loads`` sees them.
Used by the local server's request bodies and the webhook receiver (framework-free, no deps).
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["JSONTooDeep", "json_depth", "loads_bounded"]

_STRUCTURE = re.compile(r'[\[\]{}"]')
# The rest of a string after its opening quote (escapes included), through the closing quote.
_STRING_TAIL = re.compile(r'(?:[^"\\]|\\.)*+"', re.DOTALL)


class JSONTooDeep(ValueError):
    """The body nests arrays/objects deeper than allowed.

    Attributes:
        limit: the allowed depth.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(f"JSON nested deeper than {limit} levels")
        self.limit = limit


def json_depth(text: str, stop_above: int | None = None) -> int:
    """The deepest ``[``/``{`` nesting in ``text``, ignoring brackets inside strings.

    Iterative and linear. For valid JSON this is exact; for invalid JSON it never
    under-counts what ``json.loads`` would descend into before it fails (strings are skipped
    the way the parser lexes them). With ``stop_above``, returns as soon as the depth passes it.
    """
    depth = deepest = 0
    position = 0
    while (match := _STRUCTURE.search(text, position)) is not None:
        char = match.group()
        position = match.end()
        if char == '"':
            tail = _STRING_TAIL.match(text, position)
            if tail is None:
                break  # an unterminated string: the parser fails there, nothing after counts
            position = tail.end()
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_above is not None and deepest > stop_above:
                    break
        else:
            depth -= 1
    return deepest


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_bounded(raw: bytes | str, *, max_depth: int) -> Any:
    """Parse strict UTF-8 JSON (no NaN/Infinity) nested at most ``max_depth`` deep.

    Raises:
        JSONTooDeep: nested deeper than ``max_depth``.
        ValueError: not UTF-8 (``UnicodeDecodeError``) or not JSON.
    """
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    if json_depth(text, stop_above=max_depth) > max_depth:
        raise JSONTooDeep(max_depth)
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:  # pragma: no cover - the depth check above rules it out
        raise JSONTooDeep(max_depth) from None
