"""What the reviewer sees for one bridged action, and how their answers become LangChain's.

Every HITL.sh request has one response type, so a decision that needs text takes two
requests, as the tool wrapper's do (:mod:`hitl_agent.langchain._forms`). The first is always
a ``single_select``, one tap, whose options follow the tool's ``allowed_decisions``:

==========================  ================================  ==============================
option (value)              when offered                      follow-up request
==========================  ================================  ==============================
✅ Approve (``approve``)     approve allowed, the whole call   none: 1 request
                            shown or attached
✏ Edit… (``edit``)          edit allowed, args fit 5000       ``editable_text`` pre-filled
                            characters                        with the args as JSON
❌ Reject (``reject``)       always (how a reviewer says no)   none: 1 request
❌ Reject and say why…       with Reject                       ``text``: the reason
(``reject_with_reason``)
💬 Answer instead…           respond allowed                   ``text``: the reply
(``respond``)
==========================  ================================  ==============================

The follow-up edits the args of the reviewed tool only (an edit never changes the tool).
When the request text cannot show the whole call (an argument was cut to fit HITL.sh's 2000
characters), the whole call is attached as a document the text links to (``attached``: see
:mod:`._attach`) and Approve stays; with nothing attached (no host, the upload failed),
Approve is not offered and an ``approve`` answer is refused with the reason; the edit box
still holds every argument in full. The middleware's ``description`` is untrusted (a
callable may quote the model): it is boxed under its label, never the title.

:func:`read_answer` (a first answer that decides alone), :func:`follow_up_of` (which
follow-up a first answer asks for) and :func:`read_follow_up` (the final decision from the
follow-up's answer) validate everything (type against ``allowed_decisions``, a reply for
respond, the edited args against the agent's tools); ``approvable`` says whether the form
that was sent offered Approve (the bridge's codec reads it off the row's spec, so a form with
an attachment is read as it was sent), else it is re-derived from the rendering. Whatever
cannot be made valid becomes a reject whose message says why; timeouts and cancellations, of
either request, become rejects saying so. A tool that allows neither reject nor respond
cannot be refused in LangChain's format at all: such an answer raises
:class:`UndeliverableDecision` and nothing is sent.
Answers to the earlier one-request ``decision:`` draft are still read (:func:`_from_draft`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ValidationError

from .._text import confusable_words
from ..decision import Decision
from ..models.response_types import EditedText
from ..policies import Grants
from ._bridge_schema import DECISION_TYPES, BridgeAction
from ._render import (
    MAX_REQUEST_TEXT,
    ToolCallView,
    code_span,
    render_tool_call,
    render_tool_call_checked,
    reveal_invisible,
)

__all__ = [
    "CANCELLED",
    "FOLLOW_UP_OF",
    "REJECT_WITH_REASON",
    "TIMED_OUT",
    "Answer",
    "Shown",
    "Step",
    "UndeliverableDecision",
    "first_form",
    "follow_up_form",
    "follow_up_of",
    "form_for",
    "read_answer",
    "read_follow_up",
    "refusal",
    "render_request",
]

TIMED_OUT = "No reviewer answered before the deadline (timed out); the tool call was not run."
CANCELLED = "The review was cancelled before a reviewer answered; the tool call was not run."

_EDITABLE_MAX = 5000
_DEFAULT_FORMAT = re.compile(r"\A(?P<prefix>.*)\n\nTool: (?P<tool>.*)\nArgs: (?P<args>.*)\Z", re.S)


class UndeliverableDecision(Exception):
    """The answer is a refusal but the tool allows neither reject nor respond."""


@dataclass(frozen=True)
class Answer:
    """A LangChain decision for one action, and why it differs from the reviewer's answer.

    Attributes:
        decision: ``{"type": "approve"}``, ``{"type": "edit", "edited_action": {...}}``,
            ``{"type": "reject", "message": ...}`` or ``{"type": "respond", "message": ...}``.
        problem: None when this is what the reviewer answered; otherwise the reason the
            answer was replaced (logged by the bridge).
    """

    decision: dict[str, Any]
    problem: str | None = None


# -- rendering -------------------------------------------------------------------------


def header_of(action: BridgeAction) -> str:
    """The trusted part of the description: the middleware's prefix, or the app's text.

    The middleware's default description is ``"{description_prefix}\\n\\nTool: {name}\\nArgs:
    {args}"``; its tail repeats what the model sent, so only the prefix is used as the header
    (the args are rendered apart, fenced).
    """
    match = _DEFAULT_FORMAT.match(action.description)
    if match and match["tool"] == action.name and match["args"] == str(action.args):
        return match["prefix"]
    return action.description


_NOTE_LABEL = "The app's description of this call (its words; it may quote the model)"
_TITLE = "Approve tool call"


def what_it_does(action: BridgeAction, tools: Mapping[str, Any] | None) -> str | None:
    """The tool's own description, when the agent's tools are known."""
    what = getattr((tools or {}).get(action.name), "description", None)
    return what if isinstance(what, str) and what else None


def _view(action: BridgeAction, what_it_does: str | None) -> ToolCallView:
    header = " ".join(header_of(action).split())
    return ToolCallView(
        tool=action.name,
        args=action.args,
        description=what_it_does,
        asked_by="an AI agent (LangChain HumanInTheLoopMiddleware)",
        tool_call_id=action.tool_call_id,
        call_index=action.index + 1 if action.count > 1 else None,
        call_count=action.count if action.count > 1 else None,
        # The middleware's description (a callable's output may quote the model's args) is
        # untrusted: boxed under its label, never the bold title.
        notes=((_NOTE_LABEL, header),) if header else (),
    )


def shows_whole_call(action: BridgeAction, what_it_does: str | None = None) -> bool:
    """True when the form's request text shows every argument in full (else the form offers
    Approve only with the call attached): the same rendering :func:`form_for` makes, so the
    same answer."""
    return _form(action, what_it_does)[1] == "whole"


def _render(
    action: BridgeAction,
    what_it_does: str | None,
    note: str,
    max_chars: int = MAX_REQUEST_TEXT,
    granting: Sequence[str] = (),
) -> tuple[str, bool]:
    footer = [note] if note else []
    footer += granting
    footer.append("No answer before the deadline: the tool does not run (timed out).")
    rendered = render_tool_call_checked(
        _view(action, what_it_does), footer=footer, title=_TITLE, max_chars=max_chars
    )
    return rendered.text, rendered.complete


def render_request(action: BridgeAction, *, what_it_does: str | None = None, note: str = "") -> str:
    """The request text (the gate's renderer): a fixed title, the app's description boxed
    under its label, the tool, fenced args, how to answer."""
    return _render(action, what_it_does, note)[0]


def _args_json(args: Mapping[str, Any]) -> str:
    """The args as the draft shows them; ``\\u`` escapes when they hide invisible characters
    or look-alike letters (a text box would show neither)."""
    text = json.dumps(args, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    if reveal_invisible(text) != text or confusable_words(text, 1):
        text = json.dumps(args, indent=2, sort_keys=True, ensure_ascii=True, default=str)
    return text


# -- the form --------------------------------------------------------------------------

REJECT_WITH_REASON = "reject_with_reason"
"""The first form's option for a reject that sends a reason (a follow-up asks for it)."""

Step: TypeAlias = Literal["edit", "reason", "respond"]
"""A follow-up request: the edited args, a reject's reason, or a reply."""

FOLLOW_UP_OF: dict[str, Step] = {"edit": "edit", REJECT_WITH_REASON: "reason", "respond": "respond"}
"""The first form's options that open a follow-up, and which."""

# value: (label, description). Labels end in … when a second request follows.
_OPTIONS: dict[str, tuple[str, str]] = {
    "approve": ("✅ Approve: run it", "Runs the call once with exactly the arguments shown."),
    "edit": (
        "✏ Edit the arguments…",
        "A second request shows the arguments in a text box; what you submit runs.",
    ),
    "reject": ("❌ Reject", "Does not run it."),
    REJECT_WITH_REASON: (
        "❌ Reject and say why…",
        "Does not run it; a second request asks for your reason, which the agent reads.",
    ),
    "respond": (
        "💬 Answer instead of running it…",
        "Does not run it; a second request asks for the reply the agent gets as the result.",
    ),
}


def _edit_fits(action: BridgeAction) -> bool:
    """True when the edit follow-up's text box can hold every argument (5000 characters)."""
    return len(_args_json(action.args)) <= _EDITABLE_MAX


def _choices(action: BridgeAction, whole: bool) -> list[str]:
    """The first form's option values, in the order shown: the decisions the tool's
    ``allowed_decisions`` allow (approve only when the text shows the whole call, edit only
    when the args fit the edit box) and a reject with a reason beside a plain reject. Reject
    is offered whenever nothing else can say no."""
    values: list[str] = []
    if "approve" in action.allowed and whole:
        values.append("approve")
    edit = "edit" in action.allowed and _edit_fits(action)
    if edit:
        values.append("edit")
    # A tool that allows neither reject nor respond still gets Reject: a reviewer must be
    # able to say no (the answer becomes the refusal its config accepts, or none is sent).
    if "reject" in action.allowed or "respond" not in action.allowed:
        values += ["reject", REJECT_WITH_REASON]
    if "respond" in action.allowed:
        values.append("respond")
    return values


_NO_APPROVE = (
    "**Approve is not offered:** the arguments are too long to show here in full, and you "
    "cannot approve what you cannot see."
)


_ATTACHED = (
    "**Some arguments are cut here; all of them are attached:** {link}. Read them before you "
    "approve."
)

Shown: TypeAlias = Literal["whole", "attached", "cut"]
"""How a first form shows the call: whole in its text, cut there but attached whole (Approve
offered either way), or cut with nothing attached (no Approve)."""


_SECOND = {
    "edit": "the arguments to change (edit)",
    REJECT_WITH_REASON: "your reason (reject and say why)",
    "respond": "your reply (answer instead)",
}


def _choice_note(
    action: BridgeAction, values: list[str], whole: bool, attached: str = "", approvals: int = 1
) -> str:
    """The product's line saying what the options do (the arguments get the room).
    ``attached``: the link to the whole call's document, when the text cuts it.
    ``approvals``: how many different reviewers' approvals the call needs (a quorum)."""
    parts = [] if whole or "approve" not in action.allowed else [_NO_APPROVE]
    if attached:
        parts = [_ATTACHED.format(link=attached)]
    says = []
    if "approve" in values:
        these = "the attached" if attached else "these"
        says.append(f"**Approve** {_runs(approvals)} with exactly {these} arguments")
    if "reject" in values:
        says.append("**Reject** does not run it")
    if says:
        parts.append("; ".join(says) + ".")
    seconds = [_SECOND[v] for v in values if v in FOLLOW_UP_OF]
    if seconds:
        parts.append("A choice ending in … opens a second request for " + ", ".join(seconds) + ".")
    if "edit" in action.allowed and "edit" not in values:
        parts.append("Edit is not offered: the arguments are too long to edit here.")
    return " ".join(parts)


def _runs(approvals: int) -> str:
    if approvals < 2:
        return "runs the call once"
    return (
        f"is one of the {approvals} approvals from different reviewers after which the call "
        "runs once"
    )


def form_for(
    action: BridgeAction, what_it_does: str | None = None, *, attached: str = ""
) -> dict[str, Any]:
    """The first request's ``request_text``, ``response_type`` (``single_select``),
    ``response_config`` and ``default_response``.

    Args:
        action: the action.
        what_it_does: the tool's own description, when the agent's tools are known.
        attached: a markdown link to the whole call's document (:mod:`._attach`), used when
            the text cannot show the whole call: Approve is then offered.
    """
    return _form(action, what_it_does, attached)[0]


def first_form(
    action: BridgeAction,
    what_it_does: str | None = None,
    *,
    attached: str = "",
    max_chars: int = MAX_REQUEST_TEXT,
    approvals: int = 1,
    grants: Grants | None = None,
) -> tuple[dict[str, Any], Shown]:
    """:func:`form_for`, and how it shows the call (whether it offers Approve).
    ``max_chars``: the text's share of HITL.sh's 2,000 characters (less under an approval
    policy, whose notes go on top); ``approvals``: a quorum's (Approve is one of them);
    ``grants``: the standing grants offered beside Approve (only when Approve is)."""
    return _form(action, what_it_does, attached, max_chars, approvals, grants)


def _form(
    action: BridgeAction,
    what_it_does: str | None,
    attached: str = "",
    max_chars: int = MAX_REQUEST_TEXT,
    approvals: int = 1,
    grants: Grants | None = None,
) -> tuple[dict[str, Any], Shown]:
    """The form with Approve when its text shows the whole call or links it attached, else
    the form without it; and which one it is."""
    values = _choices(action, True)
    # Grants only beside Approve: what cannot be approved once cannot be for longer.
    granting = _grant_lines(action, grants) if "approve" in values else []
    note = _choice_note(action, values, True, approvals=approvals)
    text, whole = _render(action, what_it_does, note, max_chars, granting)
    # An attachment only matters beside Approve (the edit box holds every argument anyway).
    attachable = attached and "approve" in action.allowed
    shown: Shown = "whole" if whole else "attached" if attachable else "cut"
    if shown == "attached":
        # Cut here, but every argument is in the attached document: Approve stays.
        note = _choice_note(action, values, True, attached, approvals)
        text, _ = _render(action, what_it_does, note, max_chars, granting)
    elif shown == "cut":
        values, granting = _choices(action, False), []
        note = _choice_note(action, values, False, approvals=approvals)
        text, _ = _render(action, what_it_does, note, max_chars)
    options = [
        {"value": value, "label": _OPTIONS[value][0], "description": _OPTIONS[value][1]}
        for value in values
    ]
    if granting and grants is not None:
        at = values.index("approve") + 1
        options[at:at] = _grant_options(action, grants)
    if approvals > 1 and "approve" in values:
        options[values.index("approve")] = {
            "value": "approve",
            "label": "✅ Approve",
            "description": f"One of the {approvals} approvals from different reviewers after "
            "which the call runs once with exactly the arguments shown.",
        }
    form = {
        "request_text": text,
        "response_type": "single_select",
        "response_config": {"options": options},
        # What a timeout stores (a timeout never runs the call, whatever it stores): one of
        # the options, so the form is valid.
        "default_response": "reject" if "reject" in values else "respond",
    }
    return form, shown


def _grant_lines(action: BridgeAction, grants: Grants | None) -> list[str]:
    """The trusted lines saying what each grant choice approves (the wrapper's)."""
    from ._grants import grant_footer

    # The form is rendered from the action alone (a reader re-derives it): "this thread".
    return grant_footer(grants, code_span(action.name), None) if grants is not None else []


def _grant_options(action: BridgeAction, grants: Grants) -> list[dict[str, str]]:
    from ..gate._grants import GRANT_THREAD, grant_options

    tool = code_span(action.name)
    described = {
        GRANT_THREAD: f"Runs it once now, and later calls of {tool} in this thread without "
        "asking, until the grant expires.",
    }
    return [
        {
            **option,
            "description": described.get(
                option["value"],
                f"Runs it once now, and later calls of {tool} with exactly these arguments "
                "without asking, until the grant expires.",
            ),
        }
        for option in grant_options(grants)
    ]


_FOLLOW_UP_TITLES: dict[Step, str] = {
    "edit": "Edit the arguments of",
    "reason": "Say why you reject",
    "respond": "Answer instead of running",
}


def follow_up_form(
    action: BridgeAction, step: Step, what_it_does: str | None = None
) -> dict[str, Any]:
    """The follow-up request of ``step`` (after the reviewer chose it in the first form).

    ``edit``: an ``editable_text`` pre-filled with the current args as JSON (the text box holds
    every argument in full); ``reason`` and ``respond``: a ``text``.
    """
    tool = code_span(action.name)
    if step == "edit":
        footer = (
            "Change the arguments in the text box (JSON) and submit: "
            f"{tool} runs once with what you submit, if it passes the tool's checks. "
            "Submit an empty text to not run it."
        )
        config: dict[str, Any] = {
            "draft_text": _args_json(action.args),
            "max_length": _EDITABLE_MAX,
        }
        response_type = "editable_text"
    else:
        if step == "reason":
            footer = "Type why you reject this call; the agent reads it. It does not run."
            placeholder = "Why not? The agent reads this."
        else:
            footer = (
                f"Type the answer the agent gets instead of running {tool}. The tool does not run."
            )
            placeholder = "Your answer is returned to the agent as the tool's result."
        config = {"max_length": _EDITABLE_MAX, "placeholder": placeholder}
        response_type = "text"
    lines = [footer, "No answer before the deadline: the tool does not run (timed out)."]
    text = render_tool_call(
        _view(action, what_it_does), footer=lines, title=_FOLLOW_UP_TITLES[step]
    )
    return {
        "request_text": text,
        "response_type": response_type,
        "response_config": config,
        "default_response": "",
    }


# -- reading the answer ----------------------------------------------------------------


def refusal(action: BridgeAction, reason: str) -> dict[str, Any]:
    """A refusal the tool's config accepts: reject, else respond, else nothing."""
    if "reject" in action.allowed:
        return {"type": "reject", "message": reason}
    if "respond" in action.allowed:
        return {"type": "respond", "message": reason}
    raise UndeliverableDecision(
        f"tool {action.name!r} allows only {list(action.allowed)}, so it cannot be refused in "
        f"LangChain's format ({reason})"
    )


def _refused(action: BridgeAction, problem: str) -> Answer:
    reason = f"The reviewer's answer could not be used ({problem}); the tool call was not run."
    return Answer(refusal(action, reason), problem)


def _check_edit(
    action: BridgeAction, name: str, args: Any, tools: Mapping[str, Any] | None
) -> str | None:
    """Why an edited call cannot run, or None when it is valid.

    An edit may only produce a call the middleware's own configuration lets a reviewer
    produce for this action: the same tool (LangChain has no setting that lets an edit switch
    tools, and the target tool's own ``allowed_decisions`` were never consulted: an edit of
    ``write_file`` into ``execute_sql`` would run SQL that is approve/reject only, or a tool
    that is not gated at all), and that tool allows ``edit`` (checked by the caller).
    """
    if not isinstance(args, dict):
        return "the edited args are not a JSON object"
    if name != action.name:
        return (
            f"the edit names tool {name!r}; only {action.name!r} can be edited here "
            "(an edit may change the args, never the tool)"
        )
    # An agent-inbox action need not be a tool at all; without the agent's tools (a remote
    # graph) the server checks the args.
    if tools is None or (action.kind == "inbox" and name not in tools):
        return None
    if name not in tools:
        return f"the edit names tool {name!r}, which the agent does not have"
    schema = getattr(tools[name], "tool_call_schema", None)
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        try:
            schema.model_validate(args)
        except ValidationError as err:
            fields = ", ".join(".".join(str(p) for p in e["loc"]) or "(args)" for e in err.errors())
            return f"the edited args are invalid for {name!r} (field {fields})"
    return None


def _sections(text: str) -> dict[str, str]:
    """``decision`` / ``message`` / ``tool`` / ``args`` sections of a submitted draft."""
    found: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        head, sep, rest = line.partition(":")
        label = head.strip().lower()
        if sep and label in ("decision", "message", "tool", "args") and label not in found:
            current = label
            found[label] = [rest.strip()] if rest.strip() else []
        elif current is not None:
            found[current].append(line)
    return {label: "\n".join(lines).strip() for label, lines in found.items()}


_CUT = "approve was not offered: the arguments were too long to show the reviewer in full"


def _from_draft(
    text: str, action: BridgeAction, tools: Mapping[str, Any] | None, whole: bool
) -> Answer:
    """An answer to the bridge's earlier one-request form (a ``decision:`` draft): rows created
    before the two-step form still get read the way their reviewer was told."""
    sections = _sections(text)
    # Words of letters only: "Approve." and "approve" are the same choice.
    words = re.findall(r"[a-z]+", sections.get("decision", "").lower())
    chosen = [w for w in words if w in DECISION_TYPES]
    if len(chosen) != 1 or len(words) != 1:
        return _refused(action, "keep exactly one decision word after 'decision:'")
    kind = chosen[0]
    if kind not in action.allowed:
        return _refused(action, f"{kind!r} is not allowed for {action.name!r}")
    message = sections.get("message", "")
    name = sections.get("tool", action.name) or action.name
    raw_args = sections.get("args")
    args: Any = action.args
    if raw_args is not None:
        try:
            args = json.loads(raw_args)
        except ValueError:
            return _refused(action, "the args are not valid JSON")
    changed = name != action.name or args != action.args
    if kind == "approve":
        if not whole:
            return _refused(action, _CUT)
        if changed:
            return _refused(action, "the call was changed under 'approve'; choose 'edit'")
        return Answer({"type": "approve"})
    if kind == "edit":
        problem = _check_edit(action, name, args, tools)
        if problem is not None:
            return _refused(action, problem)
        return Answer({"type": "edit", "edited_action": {"name": name, "args": args}})
    if kind == "respond":
        if not message:
            return _refused(action, "'respond' needs a message")
        return Answer({"type": "respond", "message": message})
    return _reject(action, message, whole)


_WHY_NO_APPROVE = (
    "Approve was not offered: the arguments were too long to show the reviewer in full; "
    "send shorter arguments, or split the call."
)


def _reject(action: BridgeAction, message: str, whole: bool) -> Answer:
    """A reviewer's reject; when Approve was not offered, the agent is told why. A tool whose
    ``allowed_decisions`` leave reject out gets it as the refusal its config accepts."""
    if not whole:
        message = f"{message} ({_WHY_NO_APPROVE})" if message else _WHY_NO_APPROVE
    if "reject" not in action.allowed:
        return Answer(refusal(action, message or _REJECTED), "reject is not allowed")
    return Answer({"type": "reject", "message": message} if message else {"type": "reject"})


_REJECTED = "A reviewer rejected the tool call; it was not run."


def _whole(
    action: BridgeAction, tools: Mapping[str, Any] | None, approvable: bool | None = None
) -> bool:
    """Whether the first form offered Approve: ``approvable`` when the caller read it off the
    form that was sent (a too-long call offers it when attached); else whether the text shows
    the whole call (the same rendering, so the same answer as when the form was made)."""
    if approvable is not None:
        return approvable
    return shows_whole_call(action, what_it_does(action, tools))


def follow_up_of(
    decision: Decision,
    action: BridgeAction,
    tools: Mapping[str, Any] | None = None,
    *,
    approvable: bool | None = None,
) -> Step | None:
    """The follow-up the reviewer's first answer asks for (a choice ending in …, offered by
    the form), or None when that answer decides on its own."""
    value = decision.value
    if decision.status != "completed" or not isinstance(value, str) or value not in FOLLOW_UP_OF:
        return None
    offered = _choices(action, _whole(action, tools, approvable))
    return FOLLOW_UP_OF[value] if value in offered else None


def read_answer(
    decision: Decision,
    action: BridgeAction,
    tools: Mapping[str, Any] | None = None,
    *,
    approvable: bool | None = None,
    granting: Collection[str] = (),
) -> Answer:
    """The LangChain decision for ``action`` given the reviewer's first ``decision`` (one that
    needs no follow-up: see :func:`follow_up_of`), validated.

    Args:
        decision: the recorded decision of the action's first HITL request.
        action: the action as the pending interrupt describes it now.
        tools: the agent's tools by name (edit validation); None for a remote graph.
        approvable: whether the form that was sent offered Approve (None: re-derived from
            the rendering, which knows of no attachment).
        granting: the grant choices the form offered beside Approve (each approves).

    Raises:
        UndeliverableDecision: a refusal for a tool that allows neither reject nor respond.
    """
    if decision.status == "cancelled":
        return Answer(refusal(action, CANCELLED), "cancelled")
    if decision.status == "timeout":  # never approves: the bridge's specs do not opt in
        return Answer(refusal(action, TIMED_OUT), "timed out")
    value = decision.value
    whole = _whole(action, tools, approvable)
    if isinstance(value, EditedText):
        return _from_draft(value.text, action, tools, whole)
    if value is None:
        return _refused(action, decision.reason or "the request completed without an answer")
    # The single_select's option values are the bridge's own, whatever the keeper's
    # approve_values say.
    if (value == "approve" or value in granting) and "approve" in action.allowed:
        if not whole:
            return _refused(action, _CUT)
        return Answer({"type": "approve"})
    if value == "reject" and value in _choices(action, whole):
        return _reject(action, "", whole)
    return _refused(action, f"{value!r} is not one of this form's answers")


_ASKED: dict[Step, tuple[str, str, str]] = {
    # what the reviewer chose, what the follow-up asks for, that without its article
    "edit": ("to edit the arguments", "the edited arguments", "edited arguments"),
    "reason": ("to reject with a reason", "a reason", "reason"),
    "respond": ("to answer instead", "a reply", "reply"),
}


def read_follow_up(
    step: Step,
    decision: Decision,
    action: BridgeAction,
    tools: Mapping[str, Any] | None = None,
    *,
    approvable: bool | None = None,
) -> Answer:
    """The LangChain decision once the follow-up of ``step`` is decided, validated.

    Whatever cannot be used fails closed: a refusal saying why (a timeout or a cancellation of
    the follow-up says so: the reviewer chose, then sent nothing).
    """
    chose, thing, bare = _ASKED[step]
    if decision.status in ("cancelled", "timeout"):
        why = (
            f"the reviewer chose {chose}, then the review was cancelled before {thing} was sent"
            if decision.status == "cancelled"
            else f"the reviewer chose {chose} but sent no {bare} before the deadline (timed out)"
        )
        return Answer(refusal(action, f"The{why[3:]}; the tool call was not run."), why)
    text = decision.text
    if text is None:
        return _refused(action, decision.reason or f"no {thing} was sent")
    whole = _whole(action, tools, approvable)
    if step == "reason":
        return _reject(action, text.strip(), whole)
    if step == "respond":
        if not text.strip():
            return _refused(action, "'respond' needs a message")
        return Answer({"type": "respond", "message": text})
    if not text.strip():
        return _refused(action, "the edited arguments were cleared")
    try:
        args = json.loads(text)
    except ValueError as err:
        return _refused(action, f"the edited args are not valid JSON ({err})")
    problem = _check_edit(action, action.name, args, tools)
    if problem is not None:
        return _refused(action, problem)
    return Answer({"type": "edit", "edited_action": {"name": action.name, "args": args}})
