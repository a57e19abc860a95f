"""Response configs and defaults: valid ones round-trip, each invalid kind names its field."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from hitl_agent import ConfigError
from hitl_agent.models import (
    RESPONSE_TYPES,
    BooleanConfig,
    CreateRequestParams,
    EditableTextConfig,
    EditedText,
    MultiSelectConfig,
    NumberConfig,
    RatingConfig,
    SingleSelectConfig,
    TextConfig,
    check_value,
    option_value,
    parse_response_config,
)

from .strategies import CONFIGS, RELAXED, any_config, multi_select_config, option_values, options


@RELAXED
@given(any_config)
def test_valid_configs_are_accepted_and_round_trip(case: tuple[str, dict[str, Any]]) -> None:
    kind, raw = case
    config = parse_response_config(kind, raw)
    dumped = config.model_dump(mode="json", exclude_none=True)
    again = parse_response_config(kind, dumped)
    assert again == config
    assert again.model_dump(mode="json", exclude_none=True) == dumped


@RELAXED
@given(options())
def test_plain_string_options_become_value_label_pairs(raw: list[Any]) -> None:
    config = parse_response_config("single_select", {"options": raw})
    assert isinstance(config, SingleSelectConfig)
    assert [o.value for o in config.options] == option_values(raw)
    for item, option in zip(raw, config.options, strict=True):
        assert option.label == (item if isinstance(item, str) else item["label"])


def test_option_value_matches_the_documented_derivation() -> None:
    # hitl-api.md §7.1: "Approve with Warning" -> approve_with_warning
    assert option_value("Approve with Warning") == "approve_with_warning"
    assert option_value("✅ Approve") == "approve"
    assert option_value("  Needs  Changes! ") == "needs_changes"


def test_documented_defaults() -> None:
    text = parse_response_config("text", {})
    assert isinstance(text, TextConfig) and text.max_length == 5000
    number = parse_response_config("number", {"max_value": 10})
    assert isinstance(number, NumberConfig)
    # Always sent, because HITL.sh's own default min_value is 1.
    assert number.model_dump(exclude_none=True)["min_value"] == 0
    multi = parse_response_config("multi_select", {"options": ["A", "B", "C"]})
    assert isinstance(multi, MultiSelectConfig)
    assert (multi.max_selections, multi.min_selections) == (3, 1)
    rating = parse_response_config("rating", {"min": 0, "max": 10})
    assert isinstance(rating, RatingConfig)
    assert (rating.scale_min, rating.scale_max, rating.scale_step) == (0, 10, 1)
    assert rating.model_dump(exclude_none=True) == {"scale_min": 0, "scale_max": 10,
                                                    "scale_step": 1}  # fmt: skip


INVALID: list[tuple[str, Any, str]] = [
    ("single_select", {}, "response_config.options"),
    ("single_select", {"options": []}, "response_config.options"),
    ("single_select", {"options": [f"o{i}" for i in range(21)]}, "response_config.options"),
    ("single_select", {"options": ["Yes", "yes!"]}, "response_config.options"),
    ("single_select", {"options": [{"value": "x" * 101, "label": "X"}]},
     "response_config.options.0.value"),
    ("single_select", {"options": [{"value": "x", "label": "X" * 201}]},
     "response_config.options.0.label"),
    ("single_select", {"option": ["A"]}, "response_config.option"),
    ("multi_select", {"options": ["A", "B"], "max_selections": 3},
     "response_config.max_selections"),
    ("multi_select", {"options": ["A", "B"], "max_selections": 1, "min_selections": 2},
     "response_config.min_selections"),
    ("multi_select", {"options": ["A"], "max_selections": 0}, "response_config.max_selections"),
    ("rating", {}, "response_config.scale_max"),
    ("rating", {"scale_min": 5, "scale_max": 5}, "response_config.scale_min"),
    ("rating", {"min": 1, "max": 5, "scale_step": 3}, "response_config.scale_step"),
    ("rating", {"scale_max": True}, "response_config.scale_max"),
    ("rating", {"scale_max": math.inf}, "response_config.scale_max"),
    ("rating", {"scale_max": 5, "scale_step": 0}, "response_config.scale_step"),
    ("rating", {"scale_min": -1e308, "scale_max": 1e308, "scale_step": 1e-300},
     "response_config.scale_step"),
    ("number", {}, "response_config.max_value"),
    ("number", {"max_value": math.nan}, "response_config.max_value"),
    ("number", {"min_value": 10, "max_value": 5}, "response_config.min_value"),
    ("number", {"min_value": -5, "max_value": 5}, "response_config.min_value"),
    ("number", {"max_value": 5, "decimal_places": 11}, "response_config.decimal_places"),
    ("number", {"max_value": "5"}, "response_config.max_value"),
    ("text", {"max_length": 5001}, "response_config.max_length"),
    ("text", {"max_length": 0}, "response_config.max_length"),
    ("text", {"max_length": 10, "min_length": 11}, "response_config.min_length"),
    ("text", {"max_length": 10.0}, "response_config.max_length"),
    ("boolean", {"true_color": "green"}, "response_config.true_color"),
    ("boolean", {"true_label": ""}, "response_config.true_label"),
    ("editable_text", {}, "response_config.draft_text"),
    ("editable_text", {"draft_text": "abc", "max_length": 2}, "response_config.draft_text"),
    ("ranking", {}, "response_type"),
    ("text", ["not", "a", "dict"], "response_config"),
    ("text", SingleSelectConfig(options=[{"value": "a", "label": "A"}]),
     "response_config"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "config", "field"), INVALID)
def test_each_invalid_config_names_its_field(kind: str, config: Any, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_response_config(kind, config)
    err = caught.value
    assert err.field == field
    assert err.problem and err.fix
    assert str(err).startswith(f"{field}: ")
    assert isinstance(err, ValueError)


@RELAXED
@given(st.integers(0, 30), st.integers(0, 1))
def test_option_count_outside_1_to_20_is_refused(count: int, multi: int) -> None:
    kind = "multi_select" if multi else "single_select"
    raw = {"options": [f"Option {i}" for i in range(count)]}
    if 1 <= count <= 20:
        assert len(parse_response_config(kind, raw).options) == count  # type: ignore[union-attr]
    else:
        with pytest.raises(ConfigError) as caught:
            parse_response_config(kind, raw)
        assert caught.value.field == "response_config.options"


KNOWN_KEYS = {
    *(name for model in (TextConfig, SingleSelectConfig, MultiSelectConfig, RatingConfig,
                         NumberConfig, BooleanConfig, EditableTextConfig)
      for name in model.model_fields),
    "max", "min", "step",  # the older rating/number spellings
    "prompt",  # n8n's extra key: tolerated (issue 22 W4)
}  # fmt: skip


@RELAXED
@given(st.text(min_size=1, max_size=30), st.sampled_from(RESPONSE_TYPES))
def test_unknown_keys_are_named(key: str, kind: str) -> None:
    assume(key not in KNOWN_KEYS)
    with pytest.raises(ConfigError) as caught:
        parse_response_config(kind, {key: 1})
    assert caught.value.field == f"response_config.{key}"
    assert "unknown field" in caught.value.problem


# --- default_response ---------------------------------------------------------------------


def _fits(kind: str, config: Any, value: Any) -> bool:
    """An independent oracle for "is ``value`` a valid answer under ``config``"."""
    if kind in ("text", "editable_text"):
        return isinstance(value, str) and config.min_length <= len(value) <= config.max_length
    if kind == "single_select":
        return isinstance(value, str) and value in {o.value for o in config.options}
    if kind == "multi_select":
        values = {o.value for o in config.options}
        return (
            isinstance(value, list)
            and all(isinstance(v, str) and v in values for v in value)
            and len(set(value)) == len(value)
            and config.min_selections <= len(value) <= config.max_selections
        )
    if kind == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    if kind == "rating":
        steps = (value - config.scale_min) / config.scale_step
        return bool(
            config.scale_min <= value <= config.scale_max and abs(steps - round(steps)) < 1e-6
        )
    scaled = value * 10**config.decimal_places
    return bool(
        config.min_value <= value <= config.max_value and abs(scaled - round(scaled)) < 1e-6
    )


@st.composite
def config_and_candidate(draw: st.DrawFn) -> tuple[str, Any, Any]:
    kind, raw = draw(any_config)
    config = parse_response_config(kind, raw)
    if kind in ("single_select", "multi_select"):
        pool = [o.value for o in config.options] + ["not_an_option"]  # type: ignore[union-attr]
        single = st.sampled_from(pool)
        value = draw(single if kind == "single_select" else st.lists(single, max_size=22))
    elif kind == "rating":
        rating: Any = config
        grid = st.integers(-2, 42).map(lambda n: rating.scale_min + n * rating.scale_step / 2)
        value = draw(grid | st.floats(allow_nan=False) | st.booleans())
    elif kind == "number":
        number: Any = config
        value = draw(
            st.integers(int(number.min_value) - 5, int(number.max_value) + 5)
            | st.decimals(number.min_value, number.max_value, places=3).map(float)
            | st.floats()
        )
    elif kind == "boolean":
        value = draw(st.booleans() | st.sampled_from([0, 1, "true", None]))
    else:
        value = draw(st.text(max_size=12) | st.integers() | st.none())
    return kind, config, value


@RELAXED
@given(config_and_candidate())
def test_default_response_is_accepted_exactly_when_it_fits(case: tuple[str, Any, Any]) -> None:
    kind, config, value = case
    body = {"request_text": "Review", "response_type": kind, "response_config": config,
            "default_response": value, "timeout_seconds": 600}  # fmt: skip
    if _fits(kind, config, value):
        params = CreateRequestParams.build(**body)
        assert params.to_body()["default_response"] == value
        typed = check_value(config, value, field="default_response")
        assert typed == (EditedText(text=value) if kind == "editable_text" else value)
    else:
        with pytest.raises(ConfigError) as caught:
            CreateRequestParams.build(**body)
        assert caught.value.field == "default_response"


@RELAXED
@given(multi_select_config())
def test_multi_select_default_within_selections(raw: dict[str, Any]) -> None:
    config = parse_response_config("multi_select", raw)
    assert isinstance(config, MultiSelectConfig)
    values = [o.value for o in config.options]
    assert config.max_selections is not None
    enough = values[: max(config.min_selections, 1)]
    check_value(config, enough[: config.max_selections], field="default_response")
    with pytest.raises(ConfigError):
        check_value(config, [*values, "extra"], field="default_response")


def test_every_type_has_a_strategy() -> None:
    assert set(CONFIGS) == set(RESPONSE_TYPES)


# --- issue 22 W4: the keys real clients send -------------------------------------------------


@pytest.mark.parametrize("kind", RESPONSE_TYPES)
def test_n8n_prompt_key_is_ignored_not_fatal(kind: str) -> None:
    # HITL.sh's n8n node sends "prompt" with every type; `hitl-agent review` refused such
    # requests with "response_config.prompt: unknown field".
    base: dict[str, Any] = {
        "text": {},
        "single_select": {"options": ["Approve", "Reject"]},
        "multi_select": {"options": ["A", "B"], "max_selections": 2},
        "rating": {"min": 1, "max": 5},
        "number": {"min": 0, "max": 10},
        "boolean": {},
        "editable_text": {"draft_text": "hi"},
    }[kind]
    assert parse_response_config(kind, {**base, "prompt": ""}) == parse_response_config(kind, base)


@pytest.mark.parametrize(
    ("kind", "raw", "stored"),
    [
        ("rating", {"min": 1, "max": 5, "scale_min": 1, "scale_max": 5}, (1, 5)),
        ("rating", {"min": 0, "scale_max": 10}, (0, 10)),
        ("number", {"min": 2, "max": 9, "min_value": 2, "max_value": 9}, (2, 9)),
        ("number", {"min": 5, "min_value": 3, "max_value": 9}, (3, 9)),
    ],
)
def test_alias_and_stored_spellings_together_are_one_key(
    kind: str, raw: dict[str, Any], stored: tuple[float, float]
) -> None:
    # A config stored with both spellings (the local server kept n8n's min/max beside the
    # filled scale_min/scale_max) made every answer fail with "response_config.min: unknown
    # field". The stored name wins over the alias.
    config = parse_response_config(kind, raw)
    low, high = (
        (config.scale_min, config.scale_max)  # type: ignore[union-attr]
        if kind == "rating"
        else (config.min_value, config.max_value)  # type: ignore[union-attr]
    )
    assert (low, high) == stored


def test_strict_false_ignores_any_unknown_key_but_strict_names_it() -> None:
    raw = {"options": ["Yes", "No"], "layout": "grid"}
    assert len(parse_response_config("single_select", raw, strict=False).options) == 2  # type: ignore[union-attr]
    with pytest.raises(ConfigError) as caught:
        parse_response_config("single_select", raw)
    assert caught.value.field == "response_config.layout"
