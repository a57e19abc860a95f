"""Every correlation key hitl_agent writes, built and parsed in one place.

A correlation key names one review for good: it is the ledger row's primary key and it is
stamped into the HITL request's ``context``, so a key once stored must be found again by every
later version. The formats below are therefore frozen, byte for byte::

    lg|<thread>|<checkpoint_ns>|tool:<tool_call_id>|<n>     a gate in a graph (a tool call)
    lg|<thread>|<checkpoint_ns>|node|<n>                    a gate in a graph (a node)
    slot|<thread>|hitl-slot:<node path>|<base>|<n>|<turn>   a claim of a gate's slot
    lcb|<thread>|<ns>|<interrupt>|<index>|<call>|<letters>  a bridged action (percent-encoded)

The graph and slot keys are not escaped: a thread id or a namespace may hold ``|`` (a
subgraph's namespace always does), so they are parsed *against* the thread id and namespace
stored beside the key in the ledger row, never split blindly. Only the tail after them
(``<base>|<n>``) is split, from the right. The bridge key percent-encodes every part and
parses on its own.

No IO and no imports from the rest of the package: every layer may use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote

__all__ = [
    "BRIDGE_PREFIX",
    "GATE_PREFIX",
    "NS_SEPARATOR",
    "NS_TASK_SEPARATOR",
    "SLOT_NS_PREFIX",
    "SLOT_PREFIX",
    "BridgeKey",
    "GraphKey",
    "bridge_key",
    "gate_key",
    "node_path",
    "parse_bridge_key",
    "parse_gate_key",
    "parse_slot_key",
    "slot_key",
    "slot_namespace",
]

GATE_PREFIX = "lg|"
"""Correlation keys of reviews made inside a LangGraph task start with this."""

SLOT_PREFIX = "slot|"
"""Keys of a gate's slot claims (concurrent runs of one thread) start with this."""

SLOT_NS_PREFIX = "hitl-slot:"
"""The ``checkpoint_ns`` of a slot claim: this, then the slot (see :func:`slot_namespace`)."""

BRIDGE_PREFIX = "lcb|"
"""Correlation keys of actions bridged from LangChain's middleware start with this."""

#: A task's checkpoint namespace is ``<node name>:<task id>``; a subgraph task's namespace is
#: its parent's, ``|``, then its own (``outer:<id>|inner:<id>``).
NS_SEPARATOR = "|"
NS_TASK_SEPARATOR = ":"

_SEP = "|"
_NODE = "node"
_TOOL = "tool:"
# LangChain's decision names, one letter each in a bridge key.
_LETTERS: dict[str, str] = {"approve": "a", "edit": "e", "reject": "r", "respond": "s"}
_BY_LETTER: dict[str, str] = {letter: name for name, letter in _LETTERS.items()}


def _index(text: str) -> int | None:
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    return int(text) if text.isascii() and text.isdigit() else None


def node_path(checkpoint_ns: str) -> str:
    """A namespace without its task ids (``outer|inner``): the same gate in another run."""
    return NS_SEPARATOR.join(
        part.split(NS_TASK_SEPARATOR, 1)[0] for part in checkpoint_ns.split(NS_SEPARATOR)
    )


# -- a gate in a graph --------------------------------------------------------------------


@dataclass(frozen=True)
class GraphKey:
    """The parts of a gate's correlation key inside a LangGraph task.

    Attributes:
        thread_id: the LangGraph thread.
        checkpoint_ns: the task's checkpoint namespace (``node:<task id>``, nested with ``|``).
        tool_call_id: the tool call the review is about, or None for a review in a node.
        index: how many reviews of this tool call (or of the node) this run of the task made
            before this one.
    """

    thread_id: str
    checkpoint_ns: str
    tool_call_id: str | None
    index: int

    @property
    def base(self) -> str:
        """``tool:<id>`` or ``node``: what the index counts."""
        return f"{_TOOL}{self.tool_call_id}" if self.tool_call_id else _NODE

    @property
    def tail(self) -> str:
        """``<base>|<index>``: the key without its thread and namespace."""
        return f"{self.base}{_SEP}{self.index}"

    def format(self) -> str:
        """The key as stored: ``lg|<thread>|<checkpoint_ns>|<base>|<index>``."""
        return f"{GATE_PREFIX}{self.thread_id}{_SEP}{self.checkpoint_ns}{_SEP}{self.tail}"

    def next(self) -> GraphKey:
        """The key of the next review of the same tool call (or node) in the same task."""
        return replace(self, index=self.index + 1)


def gate_key(thread_id: str, checkpoint_ns: str, tool_call_id: str | None, index: int) -> str:
    """A gate's correlation key in a graph task (an empty tool-call id counts as none)."""
    return GraphKey(thread_id, checkpoint_ns, tool_call_id or None, index).format()


def parse_gate_key(
    key: str, *, thread_id: str | None, checkpoint_ns: str | None
) -> GraphKey | None:
    """The parts of ``key`` for a row stored with ``thread_id`` and ``checkpoint_ns``.

    None when ``key`` is not a graph gate's key for that task (an explicit key, a blocking
    review's, a slot claim's, a bridged action's), or when the row has no thread.
    """
    if thread_id is None or checkpoint_ns is None:
        return None
    prefix = f"{GATE_PREFIX}{thread_id}{_SEP}{checkpoint_ns}{_SEP}"
    if not key.startswith(prefix):
        return None
    base, sep, text = key[len(prefix) :].rpartition(_SEP)
    index = _index(text)
    if not sep or index is None:
        return None
    if base == _NODE:
        tool_call_id = None
    elif base.startswith(_TOOL) and len(base) > len(_TOOL):
        tool_call_id = base[len(_TOOL) :]
    else:
        return None
    return GraphKey(thread_id, checkpoint_ns, tool_call_id, index)


# -- a gate's slot (concurrent runs of one thread) ----------------------------------------


def slot_namespace(key: GraphKey) -> str:
    """The slot of a gate: its node path without task ids, its tool-call id and index.

    Two runs of one thread reach the same gate in different tasks: their keys differ, their
    slot is the same. It is stored as the slot claims' ``checkpoint_ns``.
    """
    return f"{SLOT_NS_PREFIX}{node_path(key.checkpoint_ns)}{_SEP}{key.tail}"


def slot_key(thread_id: str, slot: str, turn: int) -> str:
    """The key of the ``turn``-th claim of ``slot`` in ``thread_id``."""
    return f"{SLOT_PREFIX}{thread_id}{_SEP}{slot}{_SEP}{turn}"


def parse_slot_key(key: str, *, thread_id: str, slot: str) -> int | None:
    """The turn of a slot claim's ``key`` (see :func:`slot_key`), or None for another key."""
    prefix = f"{SLOT_PREFIX}{thread_id}{_SEP}{slot}{_SEP}"
    return _index(key[len(prefix) :]) if key.startswith(prefix) else None


# -- a bridged action ---------------------------------------------------------------------


@dataclass(frozen=True)
class BridgeKey:
    """The parts of a bridged action's correlation key.

    Attributes:
        thread_id, checkpoint_ns: the task whose interrupt holds the action.
        interrupt_id: LangGraph's interrupt id.
        index: the action's position in the interrupt.
        tool_call_id: the model's tool-call id ("" when the interrupt does not say).
        allowed: the decisions the action may be answered with, in LangChain's names
            (``approve``, ``edit``, ``reject``, ``respond``), in that order.
    """

    thread_id: str
    checkpoint_ns: str
    interrupt_id: str
    index: int
    tool_call_id: str
    allowed: tuple[str, ...]

    def format(self) -> str:
        """The key as stored: every part percent-encoded, so ``|`` cannot shift a field.

        Raises:
            KeyError: a decision name in ``allowed`` is not one of LangChain's four.
        """
        letters = "".join(_LETTERS[name] for name in self.allowed)
        parts = (
            self.thread_id,
            self.checkpoint_ns,
            self.interrupt_id,
            str(self.index),
            self.tool_call_id,
            letters,
        )
        return BRIDGE_PREFIX + _SEP.join(quote(part, safe="") for part in parts)


def bridge_key(
    *,
    thread_id: str,
    checkpoint_ns: str,
    interrupt_id: str,
    index: int,
    tool_call_id: str | None,
    allowed: Sequence[str],
) -> str:
    """A bridged action's correlation key (see :class:`BridgeKey`)."""
    return BridgeKey(
        thread_id, checkpoint_ns, interrupt_id, index, tool_call_id or "", tuple(allowed)
    ).format()


def parse_bridge_key(key: str) -> BridgeKey | None:
    """The parts of a key made by :func:`bridge_key`, or None for any other key."""
    if not key.startswith(BRIDGE_PREFIX):
        return None
    parts = [unquote(part) for part in key[len(BRIDGE_PREFIX) :].split(_SEP)]
    if len(parts) != 6:
        return None
    index = _index(parts[3])
    if index is None or not parts[5] or any(letter not in _BY_LETTER for letter in parts[5]):
        return None
    return BridgeKey(
        thread_id=parts[0],
        checkpoint_ns=parts[1],
        interrupt_id=parts[2],
        index=index,
        tool_call_id=parts[4],
        allowed=tuple(_BY_LETTER[letter] for letter in parts[5]),
    )
