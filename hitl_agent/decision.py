"""Decision: the typed human answer, and the one fail-closed way to read it.

A :class:`Decision` is what a review returns and what a suspended LangGraph thread is resumed
with, so it is a JSON round-trippable pydantic model. :meth:`Decision.from_request` is the only
place that turns a HITL request into a decision::

    request = client.requests.get(request_id)
    decision = Decision.from_request(request)       # None while the request is still open
    if decision is not None and decision.approved:
        run_the_action()
    else:
        tell_the_agent(decision.reason)             # "timed out" is not "rejected"

``approved`` is True only for an explicit approving answer from a reviewer: a boolean ``true``,
a ``single_select`` value in the approve list, or a non-empty ``editable_text`` submission
(the reviewer signed off on the revised text, which is the ``value`` that must run). A timeout
is judged by the request's ``default_response`` alone, and never approves unless
``approve_on_timeout=True`` *and* that default is approving; a
cancellation, an unknown status or an answer in no documented shape never approves.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

from ._answer_words import DEFAULT_APPROVE_VALUES, DEFAULT_REJECT_VALUES
from ._exceptions import ResponseShapeError
from .models.requests import Request, Reviewer
from .models.response_types import (
    EditedText,
    ResponseValue,
    normalize_response_data,
    option_value,
)

__all__ = [
    "DEFAULT_APPROVE_VALUES",
    "DEFAULT_REJECT_VALUES",
    "ApproveAction",
    "Decision",
    "DecisionAction",
    "DecisionStatus",
    "EditAction",
    "Outcome",
    "RejectAction",
    "RespondAction",
]

DecisionStatus: TypeAlias = Literal["completed", "timeout", "cancelled"]
Outcome: TypeAlias = Literal["approved", "rejected", "edited", "answered", "timed_out", "cancelled"]


class ApproveAction(BaseModel):
    """Run the action exactly as it was reviewed."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    type: Literal["approve"] = "approve"


class EditAction(BaseModel):
    """Run the action with the reviewer's arguments instead (validated before they run)."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    type: Literal["edit"] = "edit"
    args: dict[str, Any]


class RejectAction(BaseModel):
    """Do not run the action; ``message`` is the reviewer's reason ("" when none was given)."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    type: Literal["reject"] = "reject"
    message: str = ""


class RespondAction(BaseModel):
    """Do not run the action; ``text`` is the reviewer's answer, given back in its place."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    type: Literal["respond"] = "respond"
    text: str


DecisionAction: TypeAlias = Annotated[
    ApproveAction | EditAction | RejectAction | RespondAction, Field(discriminator="type")
]
"""What the reviewer told the agent to do: approve, edit (with args), reject (with a message)
or respond (with text). None on a decision no reviewer made (timeout, cancellation) and on an
answer to a plain question."""


class Decision(BaseModel):
    """A terminal human decision on one review request.

    Attributes:
        request_id: the HITL request it decides.
        status: the request's terminal status: completed, timeout or cancelled.
        outcome: approved, rejected, edited, answered, timed_out or cancelled.
        value: the answer typed per response type (the default on timeout, None if none).
        approved: True only when a reviewer explicitly approved (or, with the opt-in, a
            timeout whose default approves).
        reason: one sentence for the agent saying what happened and why.
        reviewer: who answered, when known.
        responded_at: when the reviewer answered.
        response_time_seconds: how long the reviewer took.
        used_default: True when the value is the request's default (timeout).
        response_type: the request's response type.
        action: the typed action (see :data:`DecisionAction`): ``approve`` for an approving
            answer, ``reject`` for a rejecting one; the tool wrappers also set ``edit`` and
            ``respond``. None when no reviewer decided (timed out, cancelled) or the answer
            is not an approval question's. Only ``approved`` says whether something may run.
        approvers: on an approval of a request several reviewers answered (a workflow's
            endorsement), every reviewer whose own answer approves, as HITL.sh reported them
            (``responses``); None for a request one answer decides. A quorum counts them.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    request_id: str
    status: DecisionStatus
    outcome: Outcome
    value: ResponseValue | None = None
    approved: bool = False
    reason: str = ""
    reviewer: Reviewer | None = None
    responded_at: datetime | None = None
    response_time_seconds: float | None = None
    used_default: bool = False
    response_type: str | None = None
    action: DecisionAction | None = None
    approvers: list[Reviewer] | None = None

    @property
    def idempotency_key(self) -> str:
        """A key for the approved action's own side effect, e.g. a payment API's idempotency key.

        LangGraph re-runs a task whose final checkpoint a crash prevented, so an approved
        action can run again after recovery (at least once). Passing this key to the system
        that performs the action makes the repeat a no-op there: it is the same on every
        replay of one decision and differs between decisions.
        """
        return f"hitl-{self.request_id}"

    @property
    def text(self) -> str | None:
        """The text of a text or editable_text answer, else None."""
        if isinstance(self.value, EditedText):
            return self.value.text
        return self.value if isinstance(self.value, str) else None

    @classmethod
    def from_request(
        cls,
        request: Request,
        *,
        approve_values: Iterable[str] = DEFAULT_APPROVE_VALUES,
        reject_values: Iterable[str] = DEFAULT_REJECT_VALUES,
        approve_on_timeout: bool = False,
    ) -> Decision | None:
        """Interpret a request read from a trusted source (a GET), failing closed.

        Args:
            request: the request as the API returned it.
            approve_values: ``single_select`` values that approve (case-insensitive).
            reject_values: ``single_select`` values that reject.
            approve_on_timeout: opt-in: a timeout whose default is approving approves.

        Returns:
            The decision, or None while the request is not terminal (pending, claimed, or a
            status this library does not know): keep waiting.
        """
        if not request.is_terminal:
            return None
        approve = {value.strip().lower() for value in approve_values}
        reject = {value.strip().lower() for value in reject_values}
        approve -= reject  # a value listed as both never approves (fail closed)
        common: dict[str, Any] = {
            "request_id": request.id,
            "response_type": request.response_type,
        }
        if request.status == "cancelled":
            # "failed" (HITL.sh's n8n node) is read as a cancellation: final, never approving.
            failed = (request.reported_status or "").strip().lower() == "failed"
            return cls(
                status="cancelled",
                outcome="cancelled",
                reason=(
                    "The review failed on the HITL side; not approved."
                    if failed
                    else "The review was cancelled before a reviewer answered; not approved."
                ),
                **common,
            )
        if request.status == "timeout":
            return cls._timed_out(request, approve, approve_on_timeout, common)
        common.update(
            reviewer=_reviewer(request),
            responded_at=request.response_at,
            response_time_seconds=request.response_time_seconds,
        )
        try:
            value = request.response_value
        except ResponseShapeError as err:
            return cls(
                status="completed",
                outcome="rejected",
                reason=f"The reviewer's answer could not be read ({err}); treated as rejected.",
                **common,
            )
        if value is None:
            return cls(
                status="completed",
                outcome="rejected",
                reason="The request completed without an answer; treated as rejected.",
                **common,
            )
        refused = _outside_form(request, value)
        if refused is not None:
            # No reviewer picked this from the form: it decides nothing, whatever it says.
            return cls(
                status="completed",
                outcome="rejected",
                value=value,
                reason=f"{refused}; not approved (failed closed).",
                **common,
            )
        outcome = _outcome(request.response_type, value, approve, reject)
        action: DecisionAction | None = None
        if outcome == "approved":
            action = ApproveAction()
        elif outcome == "rejected":
            action = RejectAction()
        return cls(
            status="completed",
            outcome=outcome,
            value=value,
            approved=outcome in ("approved", "edited"),
            reason=_REASONS[outcome],
            action=action,
            approvers=_approvers(request, approve, reject) if outcome == "approved" else None,
            **common,
        )

    @classmethod
    def _timed_out(
        cls, request: Request, approve: set[str], opt_in: bool, common: dict[str, Any]
    ) -> Decision:
        # Judged by the request's default_response alone: that is the answer a timeout
        # records. Whatever response_data a server stores on timeout is no reviewer's answer
        # (the docs leave it unspecified), so it can neither approve nor explain.
        try:
            value = normalize_response_data(request.response_type, request.default_response)
        except ResponseShapeError:
            value = None
        approving = (
            value is not None
            and _outside_form(request, value) is None
            and _outcome(request.response_type, value, approve, set()) in ("approved", "edited")
        )
        lead = "No reviewer answered before the deadline"
        if opt_in and approving:
            reason = (
                f"{lead}; approved only because approve_on_timeout is enabled and the "
                "default approves."
            )
        elif approving:
            reason = f"{lead}; not approved (timed out; approving on timeout is not enabled)."
        else:
            reason = f"{lead}; not approved (timed out; the default does not approve)."
        return cls(
            status="timeout",
            outcome="timed_out",
            value=value,
            approved=opt_in and approving,
            used_default=True,
            reason=reason,
            **common,
        )

    @classmethod
    def fail_closed(cls, request_id: str, reason: str) -> Decision:
        """A denial recorded when no trustworthy answer can be had before the deadline.

        Used by the poller for requests past their deadline whose truth cannot be fetched
        (API errors, an unknown status, an exhausted call budget).
        """
        return cls(
            request_id=request_id,
            status="timeout",
            outcome="timed_out",
            reason=f"{reason}; not approved (failed closed).",
        )


_REASONS: dict[str, str] = {
    "approved": "A reviewer approved.",
    "rejected": "A reviewer rejected.",
    "edited": "A reviewer submitted revised text; run exactly the revised text.",
    "answered": "A reviewer answered; the answer is not an approval.",
}


def _outcome(
    response_type: str | None, value: ResponseValue, approve: set[str], reject: set[str]
) -> Outcome:
    if isinstance(value, EditedText):
        # Submitting the revised draft is the reviewer's sign-off on that text; an empty
        # submission approves nothing.
        return "edited" if value.text.strip() else "rejected"
    if isinstance(value, bool):
        return "approved" if value else "rejected"
    if response_type == "single_select" and isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in approve:
            return "approved"
        if lowered in reject:
            return "rejected"
    return "answered"


def _outside_form(request: Request, value: ResponseValue) -> str | None:
    """Why ``value`` is no answer of ``request``'s form, or None when it is one (or when the
    form's options are not known: a list item carries no ``response_config``; the row's
    approve values, which are the form's approving options, decide then)."""
    if request.response_type is None:
        return (
            "The request carries no response_type, so its answer cannot be checked against the form"
        )
    if request.response_type != "single_select" or not isinstance(value, str):
        return None
    options = _option_values(request.response_config)
    if options is None:
        return None
    answer = value.strip().lower()
    if any(answer == option.strip().lower() for option in options):
        return None
    shown = ", ".join(repr(option) for option in list(dict.fromkeys(options))[:10])
    return f"The answer {value!r} is not one of the form's options ({shown})"


def _option_values(config: dict[str, Any] | None) -> list[str] | None:
    """The option values of a ``single_select`` config as the API returns it, or None when it
    holds no readable options. A plain-string option is known by its text and by the value
    HITL.sh derives from it ("Needs changes" and "needs_changes")."""
    raw = (config or {}).get("options")
    if not isinstance(raw, list) or not raw:
        return None
    values: list[str] = []
    for option in raw:
        if isinstance(option, str):
            values += [option, option_value(option)]
        elif isinstance(option, dict) and isinstance(option.get("value"), str):
            values.append(option["value"])
        else:
            return None  # an option in no known shape: the form cannot be read
    return values


def _approvers(request: Request, approve: set[str], reject: set[str]) -> list[Reviewer] | None:
    """The reviewers whose own answer approves, when HITL.sh lists every answer (an
    endorsement panel); an answer that cannot be read, or names nobody, counts for no one."""
    if not request.responses:
        return None
    found: list[Reviewer] = []
    for answer in request.responses:
        try:
            value = answer.value(request.response_type)
        except ResponseShapeError:
            continue
        if value is None or _outside_form(request, value) is not None:
            continue
        if _outcome(request.response_type, value, approve, reject) != "approved":
            continue
        who = answer.response_by_user or (Reviewer(id=answer.user_id) if answer.user_id else None)
        if who is not None:
            found.append(who)
    return found


def _reviewer(request: Request) -> Reviewer | None:
    try:
        return request.reviewer
    except ValueError:  # a response_by object in no known shape: keep the decision
        return None
