"""Hypothesis strategies for valid response configs and values that fit them."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

SLUG = st.from_regex(r"[a-z][a-z0-9]{0,11}", fullmatch=True)
LABEL = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40
).filter(lambda s: s.strip() != "")


@st.composite
def options(draw: st.DrawFn, *, min_size: int = 1, max_size: int = 20) -> list[Any]:
    """1-20 options with distinct values: plain strings, ``{value, label}`` or a mix."""
    slugs = draw(st.lists(SLUG, min_size=min_size, max_size=max_size, unique=True))
    out: list[Any] = []
    for slug in slugs:
        if draw(st.booleans()):
            out.append(slug.capitalize())  # a plain string; HITL.sh derives the value
        else:
            out.append({"value": slug, "label": draw(LABEL)})
    return out


def option_values(raw: list[Any]) -> list[str]:
    return [item.lower() if isinstance(item, str) else item["value"] for item in raw]


@st.composite
def text_config(draw: st.DrawFn) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if draw(st.booleans()):
        config["max_length"] = draw(st.integers(1, 5000))
    if draw(st.booleans()):
        config["min_length"] = draw(st.integers(0, config.get("max_length", 5000)))
    if draw(st.booleans()):
        config["placeholder"] = draw(st.text(max_size=20))
    return config


@st.composite
def single_select_config(draw: st.DrawFn) -> dict[str, Any]:
    return {"options": draw(options())}


@st.composite
def multi_select_config(draw: st.DrawFn) -> dict[str, Any]:
    opts = draw(options())
    config: dict[str, Any] = {"options": opts}
    maximum = len(opts)
    if draw(st.booleans()):
        maximum = draw(st.integers(1, len(opts)))
        config["max_selections"] = maximum
    if draw(st.booleans()):
        config["min_selections"] = draw(st.integers(0, maximum))
    return config


@st.composite
def rating_config(draw: st.DrawFn) -> dict[str, Any]:
    step = draw(st.sampled_from([1, 2, 0.5, 0.25]))
    low = draw(st.integers(-10, 10))
    count = draw(st.integers(1, 20))
    high = low + count * step
    old_spelling = draw(st.booleans())  # D-snap and n8n send min/max
    config: dict[str, Any] = {"max" if old_spelling else "scale_max": high}
    if low != 1 or draw(st.booleans()):
        config["min" if old_spelling else "scale_min"] = low
    if step != 1 or draw(st.booleans()):
        config["scale_step"] = step
    return config


@st.composite
def number_config(draw: st.DrawFn) -> dict[str, Any]:
    allow_negative = draw(st.booleans())
    low = draw(st.integers(-1000 if allow_negative else 0, 1000))
    high = low + draw(st.integers(0, 10_000))
    config: dict[str, Any] = {"max_value": high, "min_value": low}
    if allow_negative or draw(st.booleans()):
        config["allow_negative"] = allow_negative
    if draw(st.booleans()):
        config["decimal_places"] = draw(st.integers(0, 10))
    return config


@st.composite
def boolean_config(draw: st.DrawFn) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if draw(st.booleans()):
        config["true_label"] = draw(LABEL)
    if draw(st.booleans()):
        config["false_color"] = draw(st.from_regex(r"#[0-9a-f]{6}", fullmatch=True))
    return config


@st.composite
def editable_text_config(draw: st.DrawFn) -> dict[str, Any]:
    max_length = draw(st.integers(1, 5000))
    draft = draw(st.text(max_size=min(max_length, 200)))
    return {"draft_text": draft, "max_length": max_length}


CONFIGS = {
    "text": text_config(),
    "single_select": single_select_config(),
    "multi_select": multi_select_config(),
    "rating": rating_config(),
    "number": number_config(),
    "boolean": boolean_config(),
    "editable_text": editable_text_config(),
}

any_config = st.sampled_from(sorted(CONFIGS)).flatmap(
    lambda kind: st.tuples(st.just(kind), CONFIGS[kind])
)

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(
            ["selected_value", "selected_values", "rating", "number", "boolean", "revised_text",
             "was_edited", "value", "values", "text", "x"]
        ),
        children,
        max_size=3,
    ),
    max_leaves=8,
)  # fmt: skip
"""Any JSON-like value, biased towards the documented wrapper keys."""

RELAXED = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
"""The tree is shared with other suites running at once: timing is not what these tests check."""
