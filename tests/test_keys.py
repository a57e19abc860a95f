"""hitl_agent._keys: every correlation key, built and parsed in one place.

Keys are stored in ledgers and stamped into HITL requests, so a key built today must equal,
byte for byte, the key the code before this module built (kept below as ``legacy_*``, copied
from pregel.py, gate/_create.py and langchain/_bridge_schema.py), and every stored key must
parse back to its parts, whatever a thread id or a namespace holds.
"""

from __future__ import annotations

import itertools
from urllib.parse import quote, unquote

import pytest

from hitl_agent._keys import (
    BRIDGE_PREFIX,
    BridgeKey,
    GraphKey,
    bridge_key,
    gate_key,
    node_path,
    parse_bridge_key,
    parse_gate_key,
    parse_slot_key,
    slot_key,
    slot_namespace,
)

HOSTILE = [
    "t",
    "",
    "a|b",
    "|",
    "||",
    "a:b",
    "x%7Cy",
    "%",
    "%%41",
    "tool:1|0",
    "node|3",
    "lg|t|ns|node|0",
    "thread-ü-🦜",
    "线程\u00a0空格",
    " ",
    "\t\n",
    "a" * 300,
]
NAMESPACES = [
    "",
    "gate:1f2e",
    "outer:abc|inner:def",
    "a|b:c|d",
    "tools:%7C|x",
    "nœud:ü|子:🦜",
    "gate:1|node|0",
]
TOOL_IDS: list[str | None] = [None, "call_1", "a|b", "1|0", "x:y", "%7C", "🦜", "tool:z"]


# -- the code before hitl_agent._keys, as it wrote and read keys ---------------------------


def legacy_gate_key(thread_id: str, ns: str, tool_call_id: str | None, index: int) -> str:
    base = f"tool:{tool_call_id}" if tool_call_id else "node"
    return f"lg|{thread_id}|{ns}|{base}|{index}"


def legacy_node_path(checkpoint_ns: str) -> str:
    return "|".join(part.split(":", 1)[0] for part in checkpoint_ns.split("|"))


def legacy_slot_ns(key: str, thread_id: str, ns: str) -> str | None:
    prefix = f"lg|{thread_id}|{ns}|"
    if not key.startswith(prefix):
        return None
    return f"hitl-slot:{legacy_node_path(ns)}|{key[len(prefix) :]}"


def legacy_slot_key(thread_id: str, slot: str, turn: int) -> str:
    return f"slot|{thread_id}|{slot}|{turn}"


_LETTERS = {"approve": "a", "edit": "e", "reject": "r", "respond": "s"}


def legacy_bridge_key(
    thread_id: str,
    ns: str,
    interrupt_id: str,
    index: int,
    call: str | None,
    allowed: tuple[str, ...],
) -> str:
    letters = "".join(_LETTERS[d] for d in allowed)
    parts = (thread_id, ns, interrupt_id, str(index), call or "", letters)
    return "lcb|" + "|".join(quote(part, safe="") for part in parts)


# -- gate keys --------------------------------------------------------------------------


@pytest.mark.parametrize("thread_id", HOSTILE)
@pytest.mark.parametrize("ns", NAMESPACES)
def test_gate_keys_are_the_stored_keys_and_parse_back(thread_id: str, ns: str) -> None:
    for tool_call_id, index in itertools.product(TOOL_IDS, (0, 1, 12)):
        key = gate_key(thread_id, ns, tool_call_id, index)
        assert key == legacy_gate_key(thread_id, ns, tool_call_id, index)
        parsed = parse_gate_key(key, thread_id=thread_id, checkpoint_ns=ns)
        assert parsed == GraphKey(thread_id, ns, tool_call_id, index)
        assert parsed.format() == key
        assert parsed.next().format() == legacy_gate_key(thread_id, ns, tool_call_id, index + 1)


def test_an_empty_tool_call_id_is_a_node_review_as_before() -> None:
    assert (
        gate_key("t", "gate:1", "", 0)
        == "lg|t|gate:1|node|0"
        == legacy_gate_key("t", "gate:1", "", 0)
    )
    assert parse_gate_key("lg|t|gate:1|node|0", thread_id="t", checkpoint_ns="gate:1") == GraphKey(
        "t", "gate:1", None, 0
    )


def test_a_tool_call_id_with_separators_is_read_whole() -> None:
    # rsplit("|", 2), the old sibling check, read "tool:a" / "b" here; the row's own thread
    # and namespace pin the prefix, so the id comes back whole.
    key = gate_key("t|1", "tools:x|sub:y", "a|b", 3)
    assert key == "lg|t|1|tools:x|sub:y|tool:a|b|3"
    parsed = parse_gate_key(key, thread_id="t|1", checkpoint_ns="tools:x|sub:y")
    assert parsed is not None and parsed.tool_call_id == "a|b" and parsed.index == 3


@pytest.mark.parametrize(
    ("key", "thread_id", "ns"),
    [
        ("lg|t|gate:1|node|0", "u", "gate:1"),  # another thread
        ("lg|t|gate:1|node|0", "t", "gate:2"),  # another task
        ("lg|t|gate:1|node|0", None, "gate:1"),  # a row without a thread
        ("lg|t|gate:1|node|0", "t", None),
        ("my-own-key", "t", "gate:1"),  # an explicit key
        ("lg|t|gate:1|node", "t", "gate:1"),  # no index
        ("lg|t|gate:1|node|x", "t", "gate:1"),
        ("lg|t|gate:1|node|²", "t", "gate:1"),  # a digit int() refuses
        ("lg|t|gate:1|node|-1", "t", "gate:1"),
        ("lg|t|gate:1|tool:|0", "t", "gate:1"),  # an empty tool-call id is never written
        ("lg|t|gate:1|other|0", "t", "gate:1"),
        ("slot|t|hitl-slot:gate|node|0|0", "t", "hitl-slot:gate|node|0"),
        ("lcb|t|gate%3A1|i|0||a", "t", "gate:1"),
    ],
)
def test_other_keys_are_not_gate_keys(key: str, thread_id: str | None, ns: str | None) -> None:
    assert parse_gate_key(key, thread_id=thread_id, checkpoint_ns=ns) is None


# -- slots ------------------------------------------------------------------------------


@pytest.mark.parametrize("thread_id", HOSTILE)
@pytest.mark.parametrize("ns", NAMESPACES)
def test_slot_keys_are_the_stored_keys_and_parse_back(thread_id: str, ns: str) -> None:
    assert node_path(ns) == legacy_node_path(ns)
    for tool_call_id, index in itertools.product(TOOL_IDS, (0, 7)):
        key = gate_key(thread_id, ns, tool_call_id, index)
        parsed = parse_gate_key(key, thread_id=thread_id, checkpoint_ns=ns)
        assert parsed is not None
        slot = slot_namespace(parsed)
        assert slot == legacy_slot_ns(key, thread_id, ns)
        for turn in (0, 1, 25):
            claim = slot_key(thread_id, slot, turn)
            assert claim == legacy_slot_key(thread_id, slot, turn)
            assert parse_slot_key(claim, thread_id=thread_id, slot=slot) == turn
            # What join_slot read before (the last field), where it was readable.
            assert int(claim.rsplit("|", 1)[1]) == turn


def test_the_slot_of_one_gate_is_the_same_in_every_run() -> None:
    first = parse_gate_key(
        "lg|t|outer:1|inner:2|node|0", thread_id="t", checkpoint_ns="outer:1|inner:2"
    )
    second = parse_gate_key(
        "lg|t|outer:3|inner:4|node|0", thread_id="t", checkpoint_ns="outer:3|inner:4"
    )
    assert first is not None and second is not None
    assert slot_namespace(first) == slot_namespace(second) == "hitl-slot:outer|inner|node|0"


def test_other_keys_are_not_slot_claims() -> None:
    slot = "hitl-slot:gate|node|0"
    assert parse_slot_key(slot_key("t", slot, 2), thread_id="u", slot=slot) is None
    assert parse_slot_key(slot_key("t", slot, 2), thread_id="t", slot="hitl-slot:x|node|0") is None
    assert parse_slot_key("lg|t|gate:1|node|0", thread_id="t", slot=slot) is None
    assert parse_slot_key(f"slot|t|{slot}|", thread_id="t", slot=slot) is None


# -- bridged actions --------------------------------------------------------------------

ALLOWED = [("approve",), ("approve", "edit", "reject", "respond"), ("reject", "respond")]


@pytest.mark.parametrize("thread_id", HOSTILE)
@pytest.mark.parametrize("ns", NAMESPACES)
def test_bridge_keys_are_the_stored_keys_and_parse_back(thread_id: str, ns: str) -> None:
    for interrupt_id, call, allowed in itertools.product(
        ["i1", "a|b", "%7C", "🦜"], [None, "call|1", "%"], ALLOWED
    ):
        key = bridge_key(
            thread_id=thread_id,
            checkpoint_ns=ns,
            interrupt_id=interrupt_id,
            index=4,
            tool_call_id=call,
            allowed=allowed,
        )
        assert key == legacy_bridge_key(thread_id, ns, interrupt_id, 4, call, allowed)
        assert key.startswith(BRIDGE_PREFIX) and key.count("|") == 6
        parsed = parse_bridge_key(key)
        assert parsed == BridgeKey(thread_id, ns, interrupt_id, 4, call or "", allowed)
        assert parsed.format() == key


@pytest.mark.parametrize(
    "key",
    [
        "lg|t|gate:1|node|0",
        "lcb|t|ns|i|0|c",  # five fields
        "lcb|t|ns|i|0|c|a|x",  # seven
        "lcb|t|ns|i|x|c|a",  # not an index
        "lcb|t|ns|i|%C2%B2|c|a",  # "²" is a digit int() refuses
        "lcb|t|ns|i|0|c|",  # no decisions
        "lcb|t|ns|i|0|c|az",  # an unknown decision
    ],
)
def test_other_keys_are_not_bridge_keys(key: str) -> None:
    assert parse_bridge_key(key) is None


def test_a_bridge_key_parses_as_before() -> None:
    # The parse the bridge used before, on a key it wrote.
    key = legacy_bridge_key("t|1", "a:b|c:d", "int", 2, "call_9", ("approve", "reject"))
    fields = [unquote(part) for part in key[len("lcb|") :].split("|")]
    assert parse_bridge_key(key) == BridgeKey(
        fields[0], fields[1], fields[2], int(fields[3]), fields[4], ("approve", "reject")
    )
