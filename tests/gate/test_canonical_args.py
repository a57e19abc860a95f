"""Canonical JSON is canonical across processes (issue 20, M1): an approved call with a
set-typed argument binds to the same hash and shows the same text after a restart with
another hash seed; a NaN, an infinity or an address-only object is a ConfigError naming
the field when the review is asked for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from hitl_agent import ConfigError
from hitl_agent.gate import args_hash, canonical_json
from hitl_agent.protocol import jsonable

ROOT = Path(__file__).resolve().parents[2]

# What the tool wrapper does with one call, in a fresh interpreter: the review text and the
# args hash the approval is bound to, for a set-typed argument.
_SCRIPT = """
import json, sys
from langchain_core.tools import tool
from hitl_agent import HITLClient
from hitl_agent.gate import Gatekeeper, args_hash, canonical_json

@tool
def tag(order_id: str, labels: set[str]) -> str:
    '''Tag an order.'''
    return "ok"

keeper = Gatekeeper(
    client=HITLClient("k", base_url="http://127.0.0.1:9/v1"), loop_id="loop",
    ledger="sqlite:///" + sys.argv[1],
)
labels = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota"}
wrapper = keeper.require_approval(tag)
flow = wrapper._flow({"order_id": "A1", "labels": labels}, None, {})
out = {"binding": flow.binding, "text": flow.first().text}
try:
    out["hash"] = args_hash("tag", {"labels": labels, "nested": [frozenset(labels)]})
    out["canonical"] = canonical_json({"labels": labels})
except TypeError as err:  # no set support at all
    out["hash"] = out["canonical"] = repr(err)
print(json.dumps(out))
keeper.close()
"""


def _in_process(seed: int, tmp_path: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONHASHSEED": str(seed)}
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path / f"ledger-{seed}.db")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_set_argument_binds_to_the_same_hash_and_text_in_every_process(
    tmp_path: Path,
) -> None:
    first, *others = [_in_process(seed, tmp_path) for seed in (1, 2, 3, 4)]
    for other in others:
        assert other["binding"] == first["binding"]  # the approval still covers the call
        assert other["text"] == first["text"]  # and the reviewer saw the same text
        assert other == first
    assert '["alpha","beta","delta"' in first["canonical"]  # sorted, not hash order
    assert args_hash("tag", {"labels": ["alpha"]}) != first["hash"]


def test_sets_are_sorted_by_their_canonical_json() -> None:
    assert canonical_json({"s": {3, 1, 2}}) == '{"s":[1,2,3]}'
    assert canonical_json({"s": {frozenset({"b", "a"}), frozenset({"a"})}}) == (
        '{"s":[["a","b"],["a"]]}'  # by text
    )
    assert args_hash("t", {"s": {"b", "a"}}) == args_hash("t", {"s": ["a", "b"]})


class Order(BaseModel):
    ref: str
    tags: set[str]


@dataclass
class Box:
    items: frozenset[str]


def test_models_and_dataclasses_become_their_fields_with_sets_sorted() -> None:
    assert jsonable({"o": Order(ref="A", tags={"z", "y", "x"})}) == {
        "o": {"ref": "A", "tags": ["x", "y", "z"]}
    }
    assert jsonable(Box(items=frozenset({"b", "a"}))) == {"items": ["a", "b"]}
    assert jsonable({1: "one", 2.5: "half", None: "no"}) == {
        "1": "one",
        "2.5": "half",
        "null": "no",
    }


class Opaque:
    pass


class Named:
    def __repr__(self) -> str:
        return "Named()"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"amount": float("nan")}, "args.amount"),
        ({"amount": float("inf")}, "args.amount"),
        ({"items": [1, {"price": float("-inf")}]}, "args.items[1].price"),
        ({"tags": {float("nan")}}, "args.tags[]"),
        ({"target": Opaque()}, "args.target"),
        ({"m": {1: "a", "1": "b"}}, "args.m"),
    ],
)
def test_an_argument_with_no_stable_json_is_a_config_error_naming_the_field(
    args: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        args_hash("t", args)
    assert caught.value.field == field


def test_an_object_with_its_own_repr_is_shown_by_it() -> None:
    assert jsonable({"x": Named()}) == {"x": "Named()"}
