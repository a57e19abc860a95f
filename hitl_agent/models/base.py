"""Base classes for the models: tolerant on what we read, strict on what we send."""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict

from .._exceptions import ConfigError

__all__ = ["HITLModel", "StrictModel", "config_error_from", "validate_strict"]

_StrictT = TypeVar("_StrictT", bound="StrictModel")


class HITLModel(BaseModel):
    """A model of something the server sent: unknown fields are kept, never rejected."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class StrictModel(BaseModel):
    """A model of something we send: unknown fields are an error, values are checked."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


def config_error_from(
    err: pydantic.ValidationError, *, prefix: str = "", allowed: list[str] | None = None
) -> ConfigError:
    """Turn pydantic's first error into a ConfigError that names the field and the fix.

    An unknown field is reported before a missing one: ``option`` instead of ``options``
    is a typo, and "options is missing" would hide it.
    """
    errors = err.errors(include_url=False)
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = ".".join(str(part) for part in first["loc"] if part != "__root__")
    kind = first["type"]
    message = str(first["msg"]).removeprefix("Value error, ")
    if " | field: " in message:
        message, loc = message.split(" | field: ", 1)
    field = ".".join(part for part in (prefix, loc) if part) or "value"
    if kind == "extra_forbidden":
        known = f" (known fields: {', '.join(allowed)})" if allowed else ""
        return ConfigError(field, "unknown field", f"remove it or fix its spelling{known}")
    if kind == "missing":
        return ConfigError(field, "required field is missing", f"pass a value for {field}")
    if " | fix: " in message:
        text, fix = message.split(" | fix: ", 1)
        return ConfigError(field, text, fix)
    return ConfigError(field, message, f"give {field} a valid value")


def validate_strict(model: type[_StrictT], data: Any, *, prefix: str = "") -> _StrictT:
    """Validate ``data`` into ``model``, raising ConfigError instead of pydantic's error."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as err:
        raise config_error_from(err, prefix=prefix, allowed=list(model.model_fields)) from None


def problem(text: str, fix: str, *, field: str | None = None) -> ValueError:
    """A ValueError that config_error_from splits back into problem, fix and field."""
    return ValueError(f"{text} | fix: {fix}" + (f" | field: {field}" if field else ""))
