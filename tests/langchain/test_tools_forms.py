"""The edit form: the draft a reviewer edits on a phone, and how the submitted text is read."""

from __future__ import annotations

from typing import Any

import pytest

from hitl_agent.langchain._forms import EditError, choice_options, edit_draft, parse_edit

PROPS: dict[str, Any] = {
    "order_id": {"type": "string"},
    "amount": {"type": "integer"},
    "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    "tags": {"type": "array", "items": {"type": "string"}},
}


def test_draft_round_trips_exactly() -> None:
    args = {
        "order_id": "1234",  # a string that looks like a number stays a string
        "amount": 250,
        "note": 'multi\nline "quoted"',
        "tags": ["a", "b"],
    }
    draft = edit_draft(args, PROPS)
    assert draft.splitlines()[:2] == ["order_id: 1234", "amount: 250"]
    assert parse_edit(draft, PROPS) == args


def test_invisible_characters_are_escaped_in_the_draft() -> None:
    draft = edit_draft({"order_id": "A\u202eB"}, PROPS)
    assert draft == 'order_id: "A\\u202eB"'
    assert parse_edit(draft, PROPS) == {"order_id": "A\u202eB"}


def test_reviewer_friendly_values() -> None:
    text = 'order_id: A-9 with spaces\n\namount: 90\ntags: ["x"]'
    assert parse_edit(text, PROPS) == {"order_id": "A-9 with spaces", "amount": 90, "tags": ["x"]}
    assert parse_edit('{"amount": 5}', PROPS) == {"amount": 5}


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("amont: 5", "`amont`"),
        ("amount: 5\namount: 6", "`amount` is given twice"),
        ("just words", "line 1"),
        ("{not json", "not valid JSON"),
        ('{"zzz": 1}', "`zzz`"),
    ],
)
def test_bad_edits_name_the_problem(text: str, named: str) -> None:
    with pytest.raises(EditError, match=named.replace("`", ".")):
        parse_edit(text, PROPS)


def test_choice_values_are_fixed() -> None:
    assert [o["value"] for o in choice_options(edit=False, respond=False)] == [
        "approve",
        "reject",
        "reject_with_reason",
    ]
