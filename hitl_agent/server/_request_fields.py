"""What a create or update body may hold, checked the way HITL.sh checks it.

The client's models are strict on what *we* send; the server must instead accept whatever
HITL.sh's own code sends it (reference ``hitl-api.md`` §6.1 and the official MCP server):

- fields the docs do not list (``tags``, ...) are stored and returned, not refused;
- a plain-string option keeps its value exactly as written (``"Reject"`` stays ``"Reject"``);
  the snake-cased spelling the newest docs derive (``"reject"``) is accepted as well;
- a text ``default_response`` shorter than ``min_length`` is accepted (the MCP test scripts
  send one); the length bound binds reviewers, not the default;
- unknown keys inside ``response_config`` (n8n sends ``prompt``) are kept and ignored;
- alias keys (``min``/``max``, n8n's spelling) are stored once, under the documented names;
- a number request without ``min_value`` gets HITL.sh's documented default, 1;
- a time-sensitive request without ``timeout_seconds`` gets the documented message.

Everything the docs do refuse is refused with the field named: types, lengths, enums, the
option list, the timeout range, the media URL of an image request.
"""

from __future__ import annotations

from typing import Any

from .._exceptions import ConfigError
from ..models.base import validate_strict
from ..models.requests import CreateRequestParams
from ..models.response_types import (
    BooleanConfig,
    EditableTextConfig,
    MultiSelectConfig,
    NumberConfig,
    RatingConfig,
    ResponseConfig,
    ResponseValue,
    SingleSelectConfig,
    TextConfig,
    canonical_config_keys,
    check_value,
    option_value,
    parse_response_config,
)
from ._errors import ServerError, validation_error

__all__ = [
    "IMMUTABLE_FIELDS",
    "TIMEOUT_REQUIRED",
    "check_answer",
    "parse_create_body",
    "server_config",
    "stored_config",
]

TIMEOUT_REQUIRED = "timeout_seconds is required for time-sensitive requests"
"""The documented message (reference §6.1, §3) for a time-sensitive request without one."""

_KNOWN = frozenset(CreateRequestParams.model_fields)
_CONFIG_MODELS: dict[str, type[ResponseConfig]] = {
    "text": TextConfig,
    "single_select": SingleSelectConfig,
    "multi_select": MultiSelectConfig,
    "rating": RatingConfig,
    "number": NumberConfig,
    "boolean": BooleanConfig,
    "editable_text": EditableTextConfig,
}
IMMUTABLE_FIELDS = frozenset(
    {
        "id",
        "request_id",
        "_id",
        "loop_id",
        "creator_id",
        "api_key_id",
        "status",
        "timeout_at",
        "broadcasted_to",
        "broadcasted_at",
        "response_by",
        "response_by_user",
        "response_at",
        "response_data",
        "response_time_seconds",
        "created_at",
        "updated_at",
        "cancelled_at",
        "claimed_by",
        "claim_expires_at",
        "request_html",
        "responses",
    }
)
"""Names the server sets itself: never taken from a body (an extra field may not shadow them)."""


NUMBER_MIN_DEFAULT = 1
"""HITL.sh's documented ``min_value`` of a number request that gives none
(``responses/types.mdx``; reference hitl-2026.md): a default or answer of 0 is then refused."""


def server_config(response_type: Any, raw: Any) -> ResponseConfig:
    """``raw`` validated for ``response_type``, tolerating unknown keys, reading alias keys
    (``min``/``max``) as their stored names and keeping plain options' values as written.
    Raises ConfigError naming the field."""
    if not isinstance(response_type, str):
        raise ConfigError("response_type", "missing", "pass response_type, e.g. 'boolean'")
    model = _CONFIG_MODELS.get(response_type)
    if model is None or not isinstance(raw, dict):
        # The client-side parser words these errors (unknown type, not an object).
        return parse_response_config(response_type, raw)
    known, _ = canonical_config_keys(model, raw)
    if model is NumberConfig:
        known.setdefault("min_value", NUMBER_MIN_DEFAULT)
    options = known.get("options")
    if isinstance(options, list):
        known["options"] = [
            {"value": item, "label": item} if isinstance(item, str) else item for item in options
        ]
    return validate_strict(model, known, prefix="response_config")


def stored_config(config: ResponseConfig, raw_config: Any) -> dict[str, Any]:
    """The ``response_config`` to store: one spelling per key, normalised once at create.

    The documented keys as sent under their stored names (``min``/``max`` become
    ``scale_min``/``scale_max`` or ``min_value``/``max_value``: storing both spellings made
    every later answer fail with "response_config.min: unknown field"), the defaults filled
    in beneath them, plain options as written, and unknown keys (n8n's ``prompt``) kept.
    """
    filled = config.model_dump(mode="json", exclude_none=True)
    if not isinstance(raw_config, dict):
        return filled
    known, unknown = canonical_config_keys(type(config), raw_config)
    return {**filled, **known, **unknown}


def _aliases(raw_config: Any) -> dict[str, str]:
    """Derived spelling → written value, for the plain-string options of ``raw_config``."""
    options = raw_config.get("options") if isinstance(raw_config, dict) else None
    if not isinstance(options, list):
        return {}
    written: set[Any] = {item for item in options if isinstance(item, str)}
    written |= {item.get("value") for item in options if isinstance(item, dict)}
    return {
        option_value(item): item
        for item in options
        if isinstance(item, str) and option_value(item) not in written
    }


def _canonical(config: ResponseConfig, raw_config: Any, value: Any) -> Any:
    if not isinstance(config, SingleSelectConfig | MultiSelectConfig):
        return value
    aliases = _aliases(raw_config)
    if isinstance(value, str):
        return aliases.get(value, value)
    if isinstance(value, list):
        return [aliases.get(item, item) if isinstance(item, str) else item for item in value]
    return value


def check_answer(
    config: ResponseConfig, raw_config: Any, value: Any, *, field: str, default: bool = False
) -> ResponseValue:
    """Check a reviewer's answer (or, with ``default=True``, a ``default_response``)."""
    if default and isinstance(config, TextConfig | EditableTextConfig) and config.min_length:
        config = config.model_copy(update={"min_length": 0})
    return check_value(config, _canonical(config, raw_config, value), field=field)


def _refuse(err: ConfigError) -> ServerError:
    head = err.field.split(".", 1)[0]
    if head in ("response_type", "response_config"):
        return validation_error(err, "Invalid response configuration")
    if err.field == "timeout_seconds" and err.problem == TIMEOUT_REQUIRED:
        return validation_error(err, TIMEOUT_REQUIRED)
    return validation_error(err)


def parse_create_body(body: Any) -> tuple[CreateRequestParams, dict[str, Any]]:
    """Validate a create (or merged update) body; return the typed fields and what to store.

    The stored body holds the documented fields as sent (``response_config`` with the
    defaults filled in beneath what was sent) plus every undocumented field.
    """
    if not isinstance(body, dict):
        raise ServerError(
            400, "Invalid request body", "the body must be a JSON object of request fields"
        )
    known = {key: value for key, value in body.items() if key in _KNOWN}
    extra = {
        key: value
        for key, value in body.items()
        if key not in _KNOWN and key not in IMMUTABLE_FIELDS
    }
    raw_config = known.get("response_config")
    try:
        config = server_config(known.get("response_type"), raw_config)
        if "default_response" not in known:
            raise ConfigError(
                "default_response",
                "required field is missing",
                "pass the answer to record on timeout, e.g. the reject option's value",
            )
        check_answer(
            config, raw_config, known["default_response"], field="default_response", default=True
        )
        filled = config.model_dump(mode="json", exclude_none=True)
        params = validate_strict(CreateRequestParams, {**known, "response_config": filled})
    except ConfigError as err:
        raise _refuse(err) from None
    stored = params.to_body()
    stored["response_config"] = stored_config(config, raw_config)
    stored["default_response"] = known["default_response"]
    return params, {**stored, **extra}
