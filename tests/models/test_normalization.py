"""Answers: shapes A and B of hitl-api.md §7.2 give one typed value; garbage is refused."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hitl_agent import EditedText, Request, ResponseShapeError
from hitl_agent.models import RESPONSE_TYPES, normalize_response_data

from .strategies import JSON, LABEL, RELAXED, SLUG

finite = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**9), 10**9)


@st.composite
def answer(draw: st.DrawFn) -> tuple[str, Any, Any, Any]:
    """(response_type, shape A, shape B, expected typed value) for one documented answer."""
    kind = draw(st.sampled_from(RESPONSE_TYPES))
    if kind == "text":
        text = draw(st.text())
        return kind, text, text, text
    if kind == "single_select":
        value = draw(SLUG)
        return kind, value, {"selected_value": value, "selected_label": draw(LABEL)}, value
    if kind == "multi_select":
        values = draw(st.lists(SLUG, unique=True, max_size=5))
        labels = [v.upper() for v in values]
        return kind, values, {"selected_values": values, "selected_labels": labels}, values
    if kind == "rating":
        rating = draw(finite)
        return kind, rating, {"rating": rating, "rating_label": "Good"}, float(rating)
    if kind == "number":
        number = draw(finite)
        return kind, number, {"number": number, "formatted_value": f"${number}"}, float(number)
    if kind == "boolean":
        flag = draw(st.booleans())
        return kind, flag, {"boolean": flag, "boolean_label": "✅ Approve"}, flag
    text = draw(st.text())
    edited = draw(st.booleans())
    # editable_text has one documented object shape; a bare string is its plain form.
    return (
        kind,
        {"revised_text": text, "was_edited": edited},
        {"revised_text": text, "was_edited": edited},
        EditedText(text=text, was_edited=edited),
    )


@RELAXED
@given(answer())
def test_shape_a_and_shape_b_normalize_to_the_same_typed_value(
    case: tuple[str, Any, Any, Any],
) -> None:
    kind, shape_a, shape_b, expected = case
    from_a = normalize_response_data(kind, shape_a)
    from_b = normalize_response_data(kind, shape_b)
    assert from_a == from_b == expected
    assert type(from_a) is type(expected) and type(from_b) is type(expected)
    # The Request model exposes the same value and keeps the raw one untouched.
    request = Request.model_validate({"id": "r1", "status": "completed", "response_type": kind,
                                      "response_data": shape_b})  # fmt: skip
    assert request.response_value == expected
    assert request.response_data == shape_b


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        # hitl-api.md §7.2, row by row: shape A then shape B.
        ("text", "Looks good", "Looks good"),
        ("single_select", "approve", "approve"),
        ("single_select", {"selected_value": "approve", "selected_label": "✅ Approve"}, "approve"),
        ("multi_select", ["spam", "grammar"], ["spam", "grammar"]),
        ("multi_select", {"selected_values": ["spam"], "selected_labels": ["Spam"]}, ["spam"]),
        ("rating", 4.5, 4.5),
        ("rating", {"rating": 4.5, "rating_label": "Good"}, 4.5),
        ("rating", 4, 4.0),
        ("number", 299.99, 299.99),
        ("number", {"number": 299.99, "formatted_value": "$299.99 USD"}, 299.99),
        ("boolean", True, True),
        ("boolean", {"boolean": True, "boolean_label": "✅ Approve"}, True),
        ("editable_text", {"revised_text": "Hi", "was_edited": True},
         EditedText(text="Hi", was_edited=True)),
        ("editable_text", "Hi", EditedText(text="Hi", was_edited=None)),
        # §9 callback doc: {"selected_value": "Approve"} with no response_type known.
        (None, {"selected_value": "Approve"}, "Approve"),
        (None, {"revised_text": "x", "was_edited": False}, EditedText(text="x", was_edited=False)),
        (None, True, True),
        (None, ["a"], ["a"]),
        (None, 3, 3.0),
        (None, "approve", "approve"),
        ("rating", None, None),
    ],
)  # fmt: skip
def test_documented_shapes(kind: str | None, raw: Any, expected: Any) -> None:
    value = normalize_response_data(kind, raw)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        ("single_select", 3),
        ("single_select", {"selected_label": "Approve"}),
        ("multi_select", "spam"),
        ("multi_select", ["spam", 1]),
        ("rating", True),
        ("rating", "four"),
        ("rating", {"rating": float("nan")}),
        ("number", [1]),
        ("number", "1e400"),
        ("boolean", "yes"),
        ("boolean", 1),
        ("editable_text", {"was_edited": True}),
        ("editable_text", 5),
        ("ranking", "a"),
        (None, {"unknown": 1}),
    ],
)
def test_garbage_raises_response_shape_error(kind: str | None, raw: Any) -> None:
    with pytest.raises(ResponseShapeError):
        normalize_response_data(kind, raw)


EXPECTED_TYPES: dict[str | None, tuple[type, ...]] = {
    "text": (str,),
    "single_select": (str,),
    "multi_select": (list,),
    "rating": (float,),
    "number": (float,),
    "boolean": (bool,),
    "editable_text": (EditedText,),
    None: (str, list, float, bool, EditedText),
    "unknown_type": (),
}


@RELAXED
@given(st.sampled_from(list(EXPECTED_TYPES)), JSON)
def test_any_input_gives_a_typed_value_or_response_shape_error(kind: str | None, raw: Any) -> None:
    try:
        value = normalize_response_data(kind, raw)
    except ResponseShapeError:
        return
    if raw is None:
        assert value is None
        return
    assert isinstance(value, EXPECTED_TYPES[kind])
    if isinstance(value, list):
        assert all(isinstance(item, str) for item in value)
    if isinstance(value, float):
        assert value == value and abs(value) != float("inf")  # finite


@RELAXED
@given(JSON)
def test_request_response_value_never_raises_anything_else(raw: Any) -> None:
    request = Request.model_validate({"id": "r", "response_type": "rating", "response_data": raw})
    try:
        value = request.response_value
    except ResponseShapeError:
        return
    assert value is None or isinstance(value, float)
