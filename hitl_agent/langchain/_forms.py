"""The forms a reviewer fills for a gated tool call, and how their answers are read.

Every HITL.sh request has one response type, so a decision that needs text (a reason, edited
arguments, a reply) takes two requests: first a ``single_select`` whose option values this
module owns (a reviewer's label such as "Yes, refund" never decides anything), then, only for
the choices that need it, a follow-up:

=========================  =========================================================
first answer               follow-up request
=========================  =========================================================
``approve``                none: the tool runs with exactly the reviewed arguments
``reject``                 none: not run, no reason
``reject_with_reason``     ``text``: the reason, given to the agent with the rejection
``edit``                   ``editable_text`` prefilled with one ``name: value`` line
                           per argument; the submitted lines are the new arguments
``respond``                ``text``: the reply, returned to the agent as the tool result
=========================  =========================================================

No IO and no LangChain here: the tool wrapper drives these forms through the gate.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .._text import confusable_words, reveal_invisible

__all__ = [
    "APPROVE",
    "EDIT",
    "EDIT_MAX_CHARS",
    "REJECT",
    "REJECT_WITH_REASON",
    "RESPOND",
    "EditError",
    "choice_options",
    "edit_draft",
    "parse_edit",
]

APPROVE = "approve"
REJECT = "reject"
REJECT_WITH_REASON = "reject_with_reason"
EDIT = "edit"
RESPOND = "respond"

EDIT_MAX_CHARS = 5000
"""``editable_text`` holds at most 5000 characters: longer arguments cannot be edited there."""

_LABELS = {
    APPROVE: "✅ Approve: run it",
    REJECT: "❌ Reject",
    REJECT_WITH_REASON: "❌ Reject and say why…",
    EDIT: "✏ Edit the arguments…",
    RESPOND: "💬 Answer instead of running it…",
}


def choice_options(*, edit: bool, respond: bool, approve: bool = True) -> list[dict[str, str]]:
    """The first form's options, as explicit ``{value, label}`` pairs (no Approve when the
    reviewer could not be shown the whole call)."""
    values = [APPROVE] if approve else []
    values += [REJECT, REJECT_WITH_REASON]
    if edit:
        values.append(EDIT)
    if respond:
        values.append(RESPOND)
    return [{"value": value, "label": _LABELS[value]} for value in values]


NOT_SHOWN_IN_FULL = (
    "Approve was not offered: the arguments were too long to show the reviewer in full "
    "(cut: {cut}); send shorter arguments, or split the call."
)
"""Told to the agent when a call's arguments did not fit the request text."""


def choice_footer(
    tool: str,
    *,
    edit: bool,
    respond: bool,
    edit_note: str = "",
    cut: str = "",
    attached: str = "",
    approvals: int = 1,
) -> list[str]:
    """The trusted lines under the arguments that say what each choice does (kept short: the
    arguments get the room). ``cut``: the arguments that could not be shown in full (then
    Approve is not offered, and this says why). ``attached``: they could not, but all of
    them are in the document this markdown link names (then Approve is offered, and this
    says where to read them first). ``approvals``: how many different reviewers' approvals
    the call needs (a quorum): Approve is then one of them."""
    runs = (
        f"runs {tool} once"
        if approvals == 1
        else f"is one of the {approvals} approvals from different reviewers after which "
        f"{tool} runs once"
    )
    if attached:
        lines = [
            f"**Some arguments are cut here; all of them are attached:** {attached}. Read them "
            f"before you approve: **Approve** {runs} with exactly those arguments; "
            f"**Reject** does not."
        ]
    elif cut:
        lines = [
            f"**Approve is not offered:** the arguments are too long to show here in full "
            f"(cut: {cut}), and you cannot approve what you cannot see. **Reject** does not "
            f"run {tool}."
        ]
        if edit:
            lines.append(
                "**Edit the arguments…** shows them all in a text box; what you submit runs."
            )
    else:
        lines = [f"**Approve** {runs} with exactly these arguments; **Reject** does not."]
    second = ["your reason (reject and say why)"]
    if edit:
        second.append("the arguments as `name: value` lines to change (edit)")
    if respond:
        second.append("the reply the agent gets instead (answer)")
    lines.append("A choice ending in … sends you a second request for " + ", ".join(second) + ".")
    if edit_note:
        lines.append(edit_note)
    lines.append("No answer by the deadline: not run (timed out).")
    return lines


def _string_field(schema: Mapping[str, Any]) -> bool:
    """True when a JSON-schema property accepts a string and nothing else."""
    if schema.get("type") == "string":
        return True
    variants = schema.get("anyOf") or schema.get("oneOf") or []
    types = {v.get("type") for v in variants if isinstance(v, dict)}
    return bool(types) and types <= {"string", "null"} and "string" in types


def _shown(value: Any, as_string: bool) -> str:
    if (
        as_string
        and isinstance(value, str)
        and value == value.strip()
        and "\n" not in value
        and not value.startswith('"')
        and not _hides(value)
    ):
        return value
    # JSON keeps everything else exact on one line; invisible characters and look-alike
    # letters become \\u escapes (ensure_ascii), so the reviewer's text box shows them.
    ascii_only = isinstance(value, str) and _hides(value)
    return json.dumps(value, ensure_ascii=ascii_only)


def _hides(text: str) -> bool:
    """True when ``text`` holds an invisible character or a word mixing scripts."""
    return reveal_invisible(text) != text or bool(confusable_words(text, 1))


def edit_draft(args: Mapping[str, Any], properties: Mapping[str, Any]) -> str:
    """The ``editable_text`` draft: one ``name: value`` line per argument, in schema order."""
    order = [name for name in properties if name in args]
    order += [name for name in args if name not in properties]
    lines = []
    for name in order:
        schema = properties.get(name)
        as_string = isinstance(schema, dict) and _string_field(schema)
        lines.append(f"{name}: {_shown(args[name], as_string)}")
    return "\n".join(lines)


class EditError(ValueError):
    """The reviewer's edited text is not a set of arguments; the message names the field."""


def _value(raw: str, as_string: bool) -> Any:
    if as_string:
        if raw.startswith('"'):
            try:
                decoded = json.loads(raw)
            except ValueError:
                return raw
            return decoded if isinstance(decoded, str) else raw
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw  # not JSON: a bare word; the schema check will say if it does not fit


def parse_edit(text: str, properties: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments in a reviewer's edited text.

    Accepts the draft's ``name: value`` lines (a string field takes the rest of the line as
    is; other fields take JSON, e.g. ``amount: 250`` or ``tags: ["a", "b"]``) or one JSON
    object. Blank lines are skipped.

    Raises:
        EditError: a line without ``name:``, an argument the tool does not have, or one given
            twice; the message names it.
    """
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            parsed = json.loads(stripped)
        except json.JSONDecodeError as err:
            raise EditError(f"the edited text is not valid JSON ({err.msg})") from None
        if not isinstance(parsed, dict):
            raise EditError("the edited text is not a JSON object")
        args = parsed
    else:
        args = {}
        for number, line in enumerate(stripped.splitlines(), start=1):
            if not line.strip():
                continue
            name, colon, raw = line.partition(":")
            name = name.strip()
            if not colon or not name:
                raise EditError(f"line {number} is not `name: value`")
            if name in args:
                raise EditError(f"field `{name}` is given twice")
            schema = properties.get(name)
            args[name] = _value(raw.strip(), isinstance(schema, dict) and _string_field(schema))
    unknown = [name for name in args if name not in properties]
    if unknown:
        raise EditError(f"field `{unknown[0]}` is not an argument of this tool")
    return args
