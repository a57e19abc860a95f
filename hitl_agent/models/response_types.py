"""The seven HITL.sh response types: their configs, their values, and the two answer shapes.

A response config is validated before anything is sent (:func:`parse_response_config`), and so
is every value that must fit it: a ``default_response`` or a reviewer's answer
(:func:`check_value`). Answers read back from the API come in two documented shapes, plain
(``"approve"``, ``4.5``, ``true``) or wrapped (``{"selected_value": "approve"}``,
``{"rating": 4.5}``, ...); :func:`normalize_response_data` turns both into one typed value::

    config = parse_response_config("single_select", {"options": ["Approve", "Reject"]})
    check_value(config, "approve", field="default_response")      # ok
    normalize_response_data("single_select", {"selected_value": "approve"})   # "approve"
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import AliasChoices, BeforeValidator, Field, field_validator, model_validator

from .._exceptions import ConfigError, ResponseShapeError
from .base import StrictModel, problem, validate_strict

__all__ = [
    "RESPONSE_TYPES",
    "TOLERATED_CONFIG_KEYS",
    "BooleanConfig",
    "EditableTextConfig",
    "EditedText",
    "MultiSelectConfig",
    "NumberConfig",
    "RatingConfig",
    "ResponseConfig",
    "ResponseType",
    "ResponseValue",
    "SelectOption",
    "SingleSelectConfig",
    "TextConfig",
    "canonical_config_keys",
    "check_value",
    "config_key_spellings",
    "normalize_response_data",
    "option_value",
    "parse_response_config",
]

ResponseType: TypeAlias = Literal[
    "text", "single_select", "multi_select", "rating", "number", "boolean", "editable_text"
]
RESPONSE_TYPES: tuple[ResponseType, ...] = (
    "text",
    "single_select",
    "multi_select",
    "rating",
    "number",
    "boolean",
    "editable_text",
)
_MAX_TEXT = 5000


def _finite_number(value: Any) -> Any:
    # Lax pydantic would take True as 1 and accept inf/nan, which then break the scale
    # arithmetic; what we send must be a plain finite number.
    if not _is_number(value):
        raise problem(f"{value!r} is not a finite number", "give a number such as 5 or 2.5")
    return value


def _integer(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        raise problem(f"{value!r} is not an integer", "give a whole number such as 10")
    return value


Number: TypeAlias = Annotated[int | float, BeforeValidator(_finite_number)]
"""A finite int or float; booleans, strings, inf and nan are refused."""
Integer: TypeAlias = Annotated[int, BeforeValidator(_integer)]
"""An int; booleans, floats and strings are refused."""


def option_value(label: str) -> str:
    """The value HITL.sh derives from a plain option: "Approve it" -> "approve_it"."""
    value = re.sub(r"[^0-9a-z]+", "_", label.strip().lower()).strip("_")
    return (value or label.strip())[:100]


class SelectOption(StrictModel):
    """One choice of a select: ``value`` is what comes back, ``label`` is what the reviewer sees."""

    value: Annotated[str, Field(min_length=1, max_length=100)]
    label: Annotated[str, Field(min_length=1, max_length=200)]
    color: str | None = None
    description: str | None = None


def _options(raw: Any) -> Any:
    if not isinstance(raw, list):
        return raw
    return [
        {"value": option_value(item), "label": item.strip() or item}
        if isinstance(item, str)
        else item
        for item in raw
    ]


def _unique_values(options: list[SelectOption]) -> list[SelectOption]:
    if not 1 <= len(options) <= 20:
        raise problem(
            f"{len(options)} options given; HITL.sh accepts 1 to 20",
            "give between 1 and 20 options",
        )
    seen: set[str] = set()
    for option in options:
        if option.value in seen:
            raise problem(
                f"two options share the value {option.value!r}",
                "give every option a distinct value (labels that differ only in case or "
                "punctuation map to the same value)",
            )
        seen.add(option.value)
    return options


class TextConfig(StrictModel):
    """Free text. ``max_length`` defaults to HITL.sh's maximum, 5000."""

    max_length: Annotated[Integer, Field(ge=1, le=_MAX_TEXT)] = _MAX_TEXT
    min_length: Annotated[Integer, Field(ge=0, le=_MAX_TEXT)] = 0
    placeholder: str | None = None
    required: bool | None = None

    @model_validator(mode="after")
    def _lengths(self) -> TextConfig:
        if self.min_length > self.max_length:
            raise problem(
                f"min_length {self.min_length} exceeds max_length {self.max_length}",
                "lower min_length or raise max_length",
                field="min_length",
            )
        return self


class SingleSelectConfig(StrictModel):
    """Pick one option. Plain-string options become ``{value, label}``."""

    options: list[SelectOption]
    required: bool | None = None

    _normalize = field_validator("options", mode="before")(_options)
    _check = field_validator("options")(_unique_values)


class MultiSelectConfig(StrictModel):
    """Pick several options; ``max_selections`` defaults to the number of options."""

    options: list[SelectOption]
    max_selections: Annotated[Integer, Field(ge=1)] | None = None
    min_selections: Annotated[Integer, Field(ge=0)] = 1
    required: bool | None = None

    _normalize = field_validator("options", mode="before")(_options)
    _check = field_validator("options")(_unique_values)

    @model_validator(mode="after")
    def _selections(self) -> MultiSelectConfig:
        maximum = len(self.options) if self.max_selections is None else self.max_selections
        if maximum > len(self.options):
            raise problem(
                f"max_selections {maximum} exceeds the {len(self.options)} options",
                f"set max_selections to at most {len(self.options)}",
                field="max_selections",
            )
        if self.min_selections > maximum:
            raise problem(
                f"min_selections {self.min_selections} exceeds max_selections {maximum}",
                "lower min_selections or raise max_selections",
                field="min_selections",
            )
        object.__setattr__(self, "max_selections", maximum)
        return self

    @property
    def limit(self) -> int:
        """The effective maximum number of selections."""
        return len(self.options) if self.max_selections is None else self.max_selections


class RatingConfig(StrictModel):
    """A scale; accepts ``scale_min``/``scale_max`` and the older ``min``/``max``."""

    scale_max: Number = Field(validation_alias=AliasChoices("scale_max", "max"))
    scale_min: Number = Field(default=1, validation_alias=AliasChoices("scale_min", "min"))
    scale_step: Annotated[Number, Field(gt=0)] = Field(
        default=1, validation_alias=AliasChoices("scale_step", "step")
    )
    labels: dict[str, str] | None = None
    required: bool | None = None

    @model_validator(mode="after")
    def _scale(self) -> RatingConfig:
        if self.scale_min >= self.scale_max:
            raise problem(
                f"scale_min {self.scale_min:g} is not below scale_max {self.scale_max:g}",
                "make scale_min smaller than scale_max",
                field="scale_min",
            )
        if not _on_step(self.scale_max, self.scale_min, self.scale_step):
            raise problem(
                f"scale_step {self.scale_step:g} does not divide the scale "
                f"{self.scale_min:g}..{self.scale_max:g}",
                "choose a scale_step that lands exactly on scale_max",
                field="scale_step",
            )
        return self


class NumberConfig(StrictModel):
    """A number in ``[min_value, max_value]``.

    ``min_value`` defaults to 0 and is always sent: HITL.sh's own default is a surprising 1.
    """

    max_value: Number = Field(validation_alias=AliasChoices("max_value", "max"))
    min_value: Number = Field(default=0, validation_alias=AliasChoices("min_value", "min"))
    decimal_places: Annotated[Integer, Field(ge=0, le=10)] = 2
    allow_negative: bool = False
    prefix: str | None = None
    suffix: str | None = None
    required: bool | None = None

    @model_validator(mode="after")
    def _bounds(self) -> NumberConfig:
        if self.min_value > self.max_value:
            raise problem(
                f"min_value {self.min_value:g} exceeds max_value {self.max_value:g}",
                "make min_value at most max_value",
                field="min_value",
            )
        if self.min_value < 0 and not self.allow_negative:
            raise problem(
                f"min_value {self.min_value:g} is negative but allow_negative is false",
                "set allow_negative to true or raise min_value to 0",
                field="min_value",
            )
        return self


_HEX_COLOR = r"^#[0-9a-fA-F]{6}$"


class BooleanConfig(StrictModel):
    """Yes or no, with optional labels and colors."""

    true_label: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    false_label: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    true_color: Annotated[str, Field(pattern=_HEX_COLOR)] | None = None
    false_color: Annotated[str, Field(pattern=_HEX_COLOR)] | None = None
    required: bool | None = None


class EditableTextConfig(StrictModel):
    """The reviewer edits ``draft_text``; the answer is the revised text."""

    draft_text: str
    max_length: Annotated[Integer, Field(ge=1, le=_MAX_TEXT)] = _MAX_TEXT
    min_length: Annotated[Integer, Field(ge=0, le=_MAX_TEXT)] = 0
    placeholder: str | None = None
    required: bool | None = None

    @model_validator(mode="after")
    def _draft(self) -> EditableTextConfig:
        if len(self.draft_text) > self.max_length:
            raise problem(
                f"draft_text has {len(self.draft_text)} characters, over max_length "
                f"{self.max_length}",
                "shorten draft_text or raise max_length (at most 5000)",
                field="draft_text",
            )
        if self.min_length > self.max_length:
            raise problem(
                f"min_length {self.min_length} exceeds max_length {self.max_length}",
                "lower min_length or raise max_length",
                field="min_length",
            )
        return self


ResponseConfig: TypeAlias = (
    TextConfig
    | SingleSelectConfig
    | MultiSelectConfig
    | RatingConfig
    | NumberConfig
    | BooleanConfig
    | EditableTextConfig
)

_CONFIGS: dict[str, type[ResponseConfig]] = {
    "text": TextConfig,
    "single_select": SingleSelectConfig,
    "multi_select": MultiSelectConfig,
    "rating": RatingConfig,
    "number": NumberConfig,
    "boolean": BooleanConfig,
    "editable_text": EditableTextConfig,
}


TOLERATED_CONFIG_KEYS: frozenset[str] = frozenset({"prompt"})
"""Keys real HITL.sh clients put in ``response_config`` that no config documents: HITL.sh's
own n8n node sends ``prompt`` with every type. Accepted and ignored, never fatal."""


def config_key_spellings(model: type[ResponseConfig]) -> dict[str, str]:
    """Every spelling a config key may take (field names and documented aliases such as
    ``min``/``max``/``step``) mapped to the field's one stored name."""
    spellings: dict[str, str] = {}
    for name, info in model.model_fields.items():
        spellings[name] = name
        if isinstance(info.validation_alias, AliasChoices):
            for choice in info.validation_alias.choices:
                if isinstance(choice, str):
                    spellings.setdefault(choice, name)
    return spellings


def canonical_config_keys(
    model: type[ResponseConfig], config: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``config`` with alias keys renamed to their one stored name, and the keys no spelling
    knows. Where both spellings are present (``scale_min`` and ``min``) the stored name wins.
    """
    spellings = config_key_spellings(model)
    known: dict[str, Any] = {}
    unknown: dict[str, Any] = {}
    for key, value in config.items():
        name = spellings.get(key)
        if name is None:
            unknown[key] = value
        elif key == name:
            known[name] = value  # the stored name wins over an alias given beside it
        elif name not in config:
            known.setdefault(name, value)
    return known, unknown


def parse_response_config(
    response_type: str, config: Any, *, strict: bool = True
) -> ResponseConfig:
    """Validate ``config`` for ``response_type``; raise ConfigError naming the field and the fix.

    Alias keys (``min``/``max`` for rating and number) are read as their stored names, and
    :data:`TOLERATED_CONFIG_KEYS` (n8n's ``prompt``) are ignored. Any other unknown key is
    an error (a typo in what we are about to send), unless ``strict=False`` (reading a
    config a server sent, which may carry keys this library does not know yet).
    """
    model = _CONFIGS.get(response_type)
    if model is None:
        raise ConfigError(
            "response_type",
            f"unknown response type {response_type!r}",
            "use one of " + ", ".join(RESPONSE_TYPES),
        )
    if isinstance(config, model):
        return config
    if isinstance(config, StrictModel):
        raise ConfigError(
            "response_config",
            f"a {type(config).__name__} was given for response_type {response_type!r}",
            f"pass a {model.__name__} or a dict",
        )
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ConfigError(
            "response_config",
            f"expected an object, got {type(config).__name__}",
            "pass a dict such as {'options': ['Approve', 'Reject']}",
        )
    known, unknown = canonical_config_keys(model, config)
    if strict:
        # Left in, an unknown key fails validation below with its name and the known ones.
        known.update((k, v) for k, v in unknown.items() if k not in TOLERATED_CONFIG_KEYS)
    return validate_strict(model, known, prefix="response_config")


class EditedText(StrictModel):
    """An ``editable_text`` answer."""

    text: str
    was_edited: bool | None = None


ResponseValue: TypeAlias = str | list[str] | float | bool | EditedText


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_value(config: ResponseConfig, value: Any, *, field: str) -> ResponseValue:
    """Check that ``value`` is a valid answer under ``config``; return it in its typed form.

    Used for ``default_response`` before a create and for reviewers' answers on the local
    server. Raises ConfigError naming ``field``.
    """
    if isinstance(config, TextConfig | EditableTextConfig):
        if isinstance(config, EditableTextConfig) and isinstance(value, dict):
            value = value.get("revised_text", value.get("text"))
        if not isinstance(value, str):
            raise ConfigError(field, f"expected a string, got {_kind(value)}", "give text")
        if not config.min_length <= len(value) <= config.max_length:
            raise ConfigError(
                field,
                f"{len(value)} characters, outside {config.min_length}..{config.max_length}",
                f"give between {config.min_length} and {config.max_length} characters",
            )
        return EditedText(text=value) if isinstance(config, EditableTextConfig) else value
    if isinstance(config, SingleSelectConfig):
        values = [option.value for option in config.options]
        if not isinstance(value, str) or value not in values:
            raise ConfigError(
                field, f"{value!r} is not an option value", "use one of " + ", ".join(values)
            )
        return value
    if isinstance(config, MultiSelectConfig):
        values = [option.value for option in config.options]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(
                field, f"expected a list of option values, got {_kind(value)}", "give a list"
            )
        unknown = [item for item in value if item not in values]
        if unknown:
            raise ConfigError(
                field, f"{unknown[0]!r} is not an option value", "use only " + ", ".join(values)
            )
        if len(set(value)) != len(value):
            raise ConfigError(field, "an option is selected twice", "list each option once")
        if not config.min_selections <= len(value) <= config.limit:
            raise ConfigError(
                field,
                f"{len(value)} selections, outside {config.min_selections}..{config.limit}",
                f"select between {config.min_selections} and {config.limit} options",
            )
        return list(value)
    if isinstance(config, RatingConfig):
        if not _is_number(value):
            raise ConfigError(field, f"expected a number, got {_kind(value)}", "give a rating")
        on_scale = config.scale_min <= value <= config.scale_max
        if not on_scale or not _on_step(value, config.scale_min, config.scale_step):
            raise ConfigError(
                field,
                f"{value!r} is not on the scale {config.scale_min:g}..{config.scale_max:g} "
                f"step {config.scale_step:g}",
                "give a value on the scale",
            )
        return float(value)
    if isinstance(config, NumberConfig):
        if not _is_number(value):
            raise ConfigError(field, f"expected a number, got {_kind(value)}", "give a number")
        number = float(value)
        if not config.min_value <= number <= config.max_value:
            raise ConfigError(
                field,
                f"{value!r} is outside {config.min_value:g}..{config.max_value:g}",
                "give a number within the bounds",
            )
        if number < 0 and not config.allow_negative:
            raise ConfigError(field, f"{value!r} is negative", "give a number >= 0")
        # Compare in units of the last decimal place: 0.1 + 0.2 is two places, 1e-261 is not.
        scaled = number * 10**config.decimal_places
        if math.isfinite(scaled) and abs(scaled - round(scaled)) >= 1e-6:
            raise ConfigError(
                field,
                f"{value!r} has more than {config.decimal_places} decimal places",
                f"round to {config.decimal_places} decimal places",
            )
        return number
    if not isinstance(value, bool):
        raise ConfigError(field, f"expected true or false, got {_kind(value)}", "give a boolean")
    return value


def _on_step(value: float, start: float, step: float) -> bool:
    """True when ``value`` is a whole number of ``step`` away from ``start``."""
    steps = (value - start) / step
    # A huge scale over a tiny step overflows to inf, which round() cannot take.
    return math.isfinite(steps) and abs(steps - round(steps)) <= 1e-6


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


_WRAPPERS: dict[str, tuple[str, ...]] = {
    "single_select": ("selected_value", "value"),
    "multi_select": ("selected_values", "values"),
    "rating": ("rating", "value"),
    "number": ("number", "value"),
    "boolean": ("boolean", "value"),
    "text": ("text", "value"),
}


def normalize_response_data(response_type: str | None, raw: Any) -> ResponseValue | None:
    """The answer in ``raw`` as one typed value, whichever documented shape it came in.

    Returns ``None`` for ``None`` (no answer yet). Raises ResponseShapeError for anything
    that is no documented shape of ``response_type``.
    """
    if raw is None:
        return None
    if response_type == "editable_text" or (
        response_type is None and isinstance(raw, dict) and "revised_text" in raw
    ):
        return _edited_text(raw)
    if response_type is None:
        response_type = _guess_type(raw)
    keys = _WRAPPERS.get(response_type)
    if keys is None:
        raise ResponseShapeError(f"unknown response_type {response_type!r}")
    if isinstance(raw, dict):
        found = next((key for key in keys if key in raw), None)
        if found is None:
            raise ResponseShapeError(
                f"response_data for {response_type} has none of the keys {', '.join(keys)}"
            )
        raw = raw[found]
    return _typed(response_type, raw)


def _guess_type(raw: Any) -> str:
    if isinstance(raw, dict):
        for response_type, keys in _WRAPPERS.items():
            if keys[0] in raw:
                return response_type
        raise ResponseShapeError("response_data object matches no documented shape")
    if isinstance(raw, bool):
        return "boolean"
    if isinstance(raw, list):
        return "multi_select"
    if _is_number(raw):
        return "number"
    return "text"


def _typed(response_type: str, raw: Any) -> ResponseValue:
    if response_type in ("text", "single_select"):
        if isinstance(raw, str):
            return raw
    elif response_type == "multi_select":
        if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
            return list(raw)
    elif response_type in ("rating", "number"):
        if _is_number(raw):
            return float(raw)
        if isinstance(raw, str):
            try:
                number = float(raw)
            except ValueError:
                pass
            else:
                if math.isfinite(number):
                    return number
    elif response_type == "boolean":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "false"):
            return raw.lower() == "true"
    raise ResponseShapeError(f"response_data for {response_type} cannot be {_kind(raw)}: {raw!r}")


def _edited_text(raw: Any) -> EditedText:
    if isinstance(raw, str):
        return EditedText(text=raw)
    if isinstance(raw, dict) and isinstance(raw.get("revised_text"), str):
        was_edited = raw.get("was_edited")
        return EditedText(
            text=raw["revised_text"],
            was_edited=was_edited if isinstance(was_edited, bool) else None,
        )
    raise ResponseShapeError(
        f"response_data for editable_text must be text or {{revised_text, was_edited}}: {raw!r}"
    )
