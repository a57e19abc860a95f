"""One gated tool call as a sequence of reviews: which form comes next, and what the answers mean.

No IO: :class:`ApprovalFlow` says which review to ask (:class:`Ask`) and, given its Decision,
either the next review or the :class:`Verdict`. The tool wrapper's sync and async paths drive
the same flow, so they cannot disagree about what an answer means.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from .._exceptions import ConfigError
from ..decision import ApproveAction, Decision, EditAction, RejectAction, RespondAction
from ..gate import ARGS_HASH_KEY, GATED_TOOL_KEY, args_hash
from ..gate._grants import SCOPES
from ..gate._policy import NOTES_MAX
from ..models.response_types import EditedText
from ..policies import Quorum
from ..protocol import jsonable
from . import _forms as forms
from ._attach import call_document
from ._grants import grant_footer, grant_options
from ._render import (
    MAX_REQUEST_TEXT,
    ToolCallView,
    code_span,
    neutralise,
    render_tool_call,
    render_tool_call_checked,
    reveal_invisible,
)

if TYPE_CHECKING:
    from ..ledger import GrantScope
    from ..policies import Grants

__all__ = ["ApprovalFlow", "Ask", "Verdict"]


log = logging.getLogger("hitl_agent.langchain")


@dataclass(frozen=True)
class Ask:
    """One review to make: ``keeper.review(text, **kwargs)``; ``step`` names the form."""

    step: Literal["choice", "reason", "edit", "respond"]
    text: str
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class Verdict:
    """What the tool call ends in.

    Attributes:
        run: True to run the tool with ``args``.
        args: the arguments to run with (the reviewed ones, or the reviewer's edit).
        message: the tool result when it does not run (``error`` says which status).
        error: the result is an error (rejected, timed out, cancelled, invalid edit).
        decision: the typed decision (``action`` set), for the result's artifact.
        grant: the standing grant the reviewer chose with the approval (``thread`` or
            ``args``), else None.
    """

    run: bool
    decision: Decision | None
    args: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    error: bool = True
    grant: GrantScope | None = None


def not_run(reason: str, decision: Decision | None = None) -> Verdict:
    """A verdict that does not run the tool."""
    return Verdict(run=False, decision=decision, message=f"Not run: {reason}")


@dataclass
class ApprovalFlow:
    """The reviews of one tool call (see :mod:`hitl_agent.langchain._forms` for the forms).

    Args:
        view: the call as the reviewer sees it.
        properties: the JSON-schema properties of the tool's model-visible arguments.
        validate: checks edited arguments against the tool's schema; returns them coerced or
            raises ``ValueError`` naming the field.
        allow_edit, allow_respond: offer those choices.
        priority, timeout_seconds: passed to every review (None: the keeper's defaults).
    """

    view: ToolCallView
    properties: Mapping[str, Any]
    validate: Callable[[dict[str, Any]], dict[str, Any]]
    allow_edit: bool = False
    allow_respond: bool = False
    priority: str | None = None
    timeout_seconds: int | None = None
    grants: Grants | None = None
    thread_id: str | None = None
    attach: Callable[[str, str], str] | None = None
    """Hosts a document (its text, its file name) and returns its URL: used when the call
    cannot be shown in full, so the reviewer can read all of it before approving."""
    policy: Mapping[str, Any] = field(default_factory=dict)
    """The approval policy's ``keeper.review`` arguments (``quorum``, ``exclude``,
    ``escalate``): all of them for the first form, ``exclude`` for the follow-ups (whose
    reviewer may be anyone; the lead replaces it with the first form's stored exclusion)."""
    binding: str = ""
    first_request_id: str | None = None
    _draft: str = ""
    _edit: bool = False
    _unbindable: str = ""
    _cut: str = ""

    def __post_init__(self) -> None:
        # What the reviewer sees and what the approval is bound to must be the same text in
        # the process that resumes: sets sorted, NaN and address-only objects refused.
        try:
            self.view = replace(self.view, args=jsonable(dict(self.view.args), field="args"))
        except ConfigError as err:
            self._unbindable = f"its arguments cannot be reviewed: {err}"
            return
        self.binding = args_hash(self.view.tool, self.view.args)
        draft = forms.edit_draft(self.view.args, self.properties) if self.allow_edit else ""
        self._edit = self.allow_edit and len(draft) <= forms.EDIT_MAX_CHARS
        self._draft = draft if self._edit else ""

    @property
    def _tool(self) -> str:
        return code_span(self.view.tool)

    @property
    def _name(self) -> str:
        """The tool name for a summary (plain text): invisible characters shown as such."""
        return neutralise(reveal_invisible(self.view.tool))[:200]

    @property
    def _approvals(self) -> int:
        """The different reviewers' approvals the call needs (``quorum``; 1 without)."""
        quorum = self.policy.get("quorum")
        return quorum.approvals if isinstance(quorum, Quorum) else int(quorum or 1)

    @property
    def _limit(self) -> int:
        """The request text's share of HITL.sh's 2,000 characters: a policy's notes take
        their part on top (gate._policy.NOTES_MAX)."""
        return MAX_REQUEST_TEXT - NOTES_MAX - 2 if self.policy else MAX_REQUEST_TEXT

    def _common(self, summary: str, *, first: bool = False) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "approve_on_timeout": False,  # a tool call never runs because nobody answered
            "summary": summary,
            "context": {ARGS_HASH_KEY: self.binding, GATED_TOOL_KEY: self.view.tool},
        }
        if self.priority is not None:
            kwargs["priority"] = self.priority
        if self.timeout_seconds is not None:
            kwargs["timeout_seconds"] = self.timeout_seconds
        if first:
            kwargs.update(self.policy)
        elif self.policy.get("exclude") is not None:
            kwargs["exclude"] = self.policy["exclude"]
        return kwargs

    def first(self) -> Ask | Verdict:
        """The first form: approve, reject, reject and say why[, edit][, answer instead];
        a not-run verdict, without asking anyone, for arguments no review can be bound to."""
        if self._unbindable:
            return not_run(self._unbindable)
        note = ""
        if self.allow_edit and not self._edit:
            note = "Editing is not offered: the arguments are too long to edit in one request."
        footer = forms.choice_footer(
            self._tool,
            approvals=self._approvals,
            edit=self._edit,
            respond=self.allow_respond,
            edit_note=note,
        )
        granting = grant_footer(self.grants, self._tool, self.thread_id)
        rendered = render_tool_call_checked(
            self.view, footer=[*footer[:1], *granting, *footer[1:]], max_chars=self._limit
        )
        attached = "" if rendered.complete else self._attached()
        if attached:
            # Cut here, but every argument is in the attached document: Approve stays.
            footer = forms.choice_footer(
                self._tool,
                approvals=self._approvals,
                edit=self._edit,
                respond=self.allow_respond,
                edit_note=note,
                attached=attached,
            )
            rendered = render_tool_call_checked(
                self.view, footer=[*footer[:1], *granting, *footer[1:]], max_chars=self._limit
            )
        elif not rendered.complete:
            # The reviewer cannot see the whole call in one request: no Approve (an edit
            # still shows every argument in its text box, and runs only what is submitted).
            self._cut = ", ".join(rendered.cut) or "the tool name"
            footer = forms.choice_footer(
                self._tool,
                approvals=self._approvals,
                edit=self._edit,
                respond=self.allow_respond,
                edit_note=note,
                cut=code_span(self._cut),
            )
            rendered = render_tool_call_checked(self.view, footer=footer, max_chars=self._limit)
        options = forms.choice_options(
            edit=self._edit, respond=self.allow_respond, approve=not self._cut
        )
        # Grants only beside Approve: what cannot be approved once cannot be for longer.
        extra = [] if self._cut else grant_options(self.grants)
        options[1:1] = extra
        kwargs = self._common(f"Approve tool call {self._name}?", first=True)
        kwargs.update(
            response_type="single_select",
            response_config={"options": options},
            default_response=forms.REJECT,
            approve_values=[forms.APPROVE, *(option["value"] for option in extra)],
        )
        return Ask("choice", rendered.text, kwargs)

    def _attached(self) -> str:
        """A markdown link to a document holding the whole call, hosted through
        :attr:`attach`; "" when there is no host or it failed (then Approve is not offered).

        The document is the call as pretty JSON with invisible characters marked; the link
        text gives its size and sha256, so what the reviewer read can be checked later."""
        if self.attach is None:
            return ""
        document = call_document(self.view.tool, self.view.args)
        try:
            url = self.attach(document.body, document.name)
        except Exception as err:  # no host, no quota, a refusal: fall back to no Approve
            log.warning("could not attach a long tool call's arguments: %s", type(err).__name__)
            return ""
        return document.link(url)

    def _follow_up(self, step: Literal["reason", "edit", "respond"]) -> Ask:
        if step == "edit":
            title = "Edit the arguments of"
            footer = [
                f"Change the values in the text box, one `name: value` per line, and submit: "
                f"{self._tool} runs once with what you submit, if it passes the tool's checks. "
                "Submit an empty text to not run it."
            ]
            config: dict[str, Any] = {"draft_text": self._draft, "max_length": 5000}
            kwargs = self._common(f"Edit the arguments of {self._name}")
            kwargs.update(
                response_type="editable_text", response_config=config, default_response=""
            )
        else:
            if step == "reason":
                title = "Say why you reject"
                what = "Type why you reject this call; the agent reads it. It does not run."
                placeholder = "Why not? The agent reads this."
            else:
                title = "Answer instead of running"
                what = (
                    f"Type the answer the agent gets instead of running {self._tool}. "
                    "The tool does not run."
                )
                placeholder = "Your answer is returned to the agent as the tool's result."
            footer = [what]
            kwargs = self._common(f"{title}: {self._name}")
            kwargs.update(
                response_type="text",
                response_config={"max_length": 5000, "placeholder": placeholder},
                default_response="",
            )
        text = render_tool_call(self.view, footer=footer, title=title, max_chars=self._limit)
        return Ask(step, text, kwargs)

    def next(self, ask: Ask, decision: Decision) -> Ask | Verdict:
        """The next review after ``decision`` answered ``ask``, or the verdict."""
        if decision.outcome == "timed_out":
            return not_run(
                "timed out: no reviewer answered before the deadline." + self._why_no_approve(),
                decision.model_copy(update={"action": None}),
            )
        if decision.outcome == "cancelled":
            return not_run("the review was cancelled before a reviewer answered.", decision)
        if ask.step == "choice":
            self.first_request_id = decision.request_id
            return self._after_choice(decision)
        if ask.step == "reason":
            message = (decision.text or "").strip()
            return self._rejected(decision, message)
        if ask.step == "respond":
            text = decision.text or ""
            if not text.strip():
                return self._rejected(decision, "")
            answered = decision.model_copy(update={"action": RespondAction(text=text)})
            return Verdict(run=False, decision=answered, message=text, error=False)
        return self._after_edit(decision)

    def _rejected(self, decision: Decision, message: str) -> Verdict:
        rejected = decision.model_copy(
            update={"approved": False, "action": RejectAction(message=message)}
        )
        why = f" Reason: {message}" if message else " No reason was given."
        return not_run(
            f"a reviewer rejected this call of {self.view.tool}.{why}{self._why_no_approve()}",
            rejected,
        )

    def _why_no_approve(self) -> str:
        """What the agent is told when Approve was not offered (empty when it was)."""
        return " " + forms.NOT_SHOWN_IN_FULL.format(cut=self._cut) if self._cut else ""

    def _after_choice(self, decision: Decision) -> Ask | Verdict:
        value = decision.value if isinstance(decision.value, str) else None
        offered = {option["value"] for option in grant_options(self.grants)}
        if decision.approved and value in offered and not self._cut:
            approved = decision.model_copy(update={"action": ApproveAction()})
            return Verdict(
                run=True, decision=approved, args=dict(self.view.args), grant=SCOPES[value]
            )
        if decision.approved and value in (forms.APPROVE, *SCOPES) and self._cut:
            # Approve was not among the options: an answer no reviewer could pick.
            return not_run(
                "the review's answer 'approve' was not offered." + self._why_no_approve(),
                decision.model_copy(update={"approved": False}),
            )
        if decision.approved and value == forms.APPROVE:
            approved = decision.model_copy(update={"action": ApproveAction()})
            return Verdict(run=True, decision=approved, args=dict(self.view.args))
        if value == forms.REJECT or isinstance(decision.action, RejectAction):
            return self._rejected(decision, "")
        if decision.outcome == "rejected":  # an answer no reviewer could pick: refused
            return not_run(decision.reason, decision)
        if value == forms.REJECT_WITH_REASON:
            return self._follow_up("reason")
        if value == forms.EDIT and self._edit:
            return self._follow_up("edit")
        if value == forms.RESPOND and self.allow_respond:
            return self._follow_up("respond")
        return not_run(f"the review's answer {value!r} is not one of this form's choices.")

    def _after_edit(self, decision: Decision) -> Verdict:
        value = decision.value
        text = value.text if isinstance(value, EditedText) else None
        if not decision.approved or text is None or not text.strip():
            return self._rejected(decision, "The reviewer cleared the arguments.")
        try:
            edited = forms.parse_edit(text, self.properties)
            edited = self.validate(edited)
        except ValueError as err:
            return not_run(
                f"the reviewer's edited arguments are invalid: {err}",
                decision.model_copy(update={"approved": False}),
            )
        edit = decision.model_copy(update={"action": EditAction(args=edited)})
        return Verdict(run=True, decision=edit, args=edited)

    def bound(self, stored: str | None) -> bool:
        """True when the hash stored with the first review is the hash of this call.

        The first review's ledger row keeps ``args_hash(tool, args)`` of the call the reviewer
        saw; this flow's ``binding`` is the hash of the call about to run. They differ when
        the arguments changed after the review was made (an edited checkpoint, a replayed
        model turn whose arguments differ past what the text shows).
        """
        return stored is not None and stored == self.binding
