"""Workflows: what a trigger returns, and the two documented shapes of a trigger URL.

HITL.sh converted loops to workflows (``guides/migration.mdx``): a trigger POST starts an
execution whose Human Review node creates an ordinary request, read afterwards with
``GET /v1/api/requests/{request_id}``. The docs print the trigger as
``https://api.hitl.sh/v1/workflows/{id}/trigger``; HITL.sh's own n8n node posts to
``https://api.hitl.sh/v1/workflows/webhook/{id}``. Both are accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import AliasChoices, Field, model_validator

from .._exceptions import ConfigError
from .base import HITLModel, StrictModel, problem
from .requests import Priority
from .response_types import ResponseType

__all__ = [
    "HumanReviewNode",
    "TriggerNode",
    "WorkflowDefinition",
    "WorkflowFile",
    "WorkflowRef",
    "WorkflowTrigger",
    "workflow_ref",
]

TriggerShape = Literal["trigger", "webhook"]

# .../workflows/{id}/trigger and .../workflows/webhook/{id}, under any base path.
_TRIGGER = re.compile(r"/workflows/(?P<id>[^/]+)/trigger/?$")
_WEBHOOK = re.compile(r"/workflows/webhook/(?P<id>[^/]+)/?$")
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@dataclass(frozen=True)
class WorkflowRef:
    """A workflow to trigger: its id and which documented route to POST to.

    Attributes:
        id: the workflow id.
        shape: ``"trigger"`` (``/workflows/{id}/trigger``, the docs' form, the default) or
            ``"webhook"`` (``/workflows/webhook/{id}``, HITL.sh's n8n node's form).
    """

    id: str
    shape: TriggerShape = "trigger"

    def path(self) -> str:
        """The route under the client's ``base_url`` (``https://api.hitl.sh/v1``)."""
        from urllib.parse import quote

        escaped = quote(self.id, safe="")
        if self.shape == "webhook":
            return f"/workflows/webhook/{escaped}"
        return f"/workflows/{escaped}/trigger"


def workflow_ref(value: str | WorkflowRef, *, field: str = "workflow") -> WorkflowRef:
    """The workflow ``value`` names: an id, or a trigger URL in either documented shape.

    Only the id and the shape are taken from a URL: the trigger is always sent to the
    client's ``base_url``, so an API key never goes to a host it was not configured for,
    and moving between HITL.sh and the local server stays one ``base_url`` away.

    Raises:
        ConfigError: ``value`` is empty, or a URL of neither shape (naming ``field``).
    """
    if isinstance(value, WorkflowRef):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            field, "missing", "pass the workflow id, or its trigger URL from HITL.sh's dashboard"
        )
    text = value.strip()
    if "/" not in text:
        if not _ID.match(text):
            raise ConfigError(
                field,
                f"{text[:40]!r} is not a workflow id",
                "pass the id shown in the designer, or the trigger URL",
            )
        return WorkflowRef(text)
    path = urlsplit(text).path if "://" in text else text
    for shape, pattern in (("trigger", _TRIGGER), ("webhook", _WEBHOOK)):
        found = pattern.search(path)
        if found is not None:
            return WorkflowRef(unquote(found.group("id")), shape)  # type: ignore[arg-type]
    raise ConfigError(
        field,
        "a URL of neither documented shape",
        "pass .../v1/workflows/{id}/trigger, .../v1/workflows/webhook/{id}, or the id alone",
    )


class WorkflowTrigger(HITLModel):
    """What a trigger returns: the execution, and the request its Human Review node made.

    ``request_id`` is the backing request: read it, list it, wait on it like any other.
    It is None only when the workflow reached no Human Review node (yet).
    """

    execution_id: str | None = Field(
        default=None, validation_alias=AliasChoices("execution_id", "id")
    )
    request_id: str | None = None
    workflow_id: str | None = None
    status: str | None = None
    timeout_at: datetime | None = None


# -- definitions the local server runs (``hitl-agent serve --workflow FILE``) -----------


class TriggerNode(StrictModel):
    """The node a trigger POST starts at; its body is available to every node."""

    type: Literal["trigger"]
    id: str = "trigger"


class HumanReviewNode(StrictModel):
    """A Human Review node: the form, the timeout with its default, and who reviews.

    Each of ``request_text``, ``response_type``, ``response_config``, ``default_response``,
    ``timeout_seconds`` and ``priority`` is the node's default: a trigger body that carries
    the field (as a gate's, and HITL.sh's n8n node's, do) overrides it. A body without
    ``request_text`` shows its ``content`` (the docs' example body), else the body as JSON.
    """

    type: Literal["human_review"]
    id: str = "review"
    request_text: str | None = None
    response_type: ResponseType = "single_select"
    response_config: dict[str, Any] | None = None
    default_response: Any = None
    # HITL.sh's designer allows 60 s to 24 h.
    timeout_seconds: Annotated[int, Field(ge=60, le=86_400)] = 3600
    priority: Priority = "medium"
    reviewers: list[str] = Field(default_factory=list)
    """Reviewer emails (made members of the workflow's reviewers)."""
    groups: list[str] = Field(default_factory=list)
    """Names of groups from the file's ``groups``."""
    mode: Literal["any", "fan_out", "endorsement"] = "any"
    """``any``: the first answer decides (a loop's behaviour). ``fan_out``: every reviewer
    answers; the answer is theirs when all agree, else ``default_response``.
    ``endorsement``: ``threshold`` distinct reviewers approving decide early."""
    threshold: Annotated[int, Field(ge=1)] | None = None
    approve_values: list[Any] | None = None
    """Endorsement: the answers that count as approvals (default: ``approve`` for a
    single_select, ``true`` for a boolean)."""
    any_reject_rejects: bool = True
    """Endorsement: one rejection rejects at once; False: only once the threshold can no
    longer be reached."""

    @model_validator(mode="after")
    def _defaults(self) -> HumanReviewNode:
        if self.response_type == "single_select" and self.response_config is None:
            object.__setattr__(
                self,
                "response_config",
                {
                    "options": [
                        {"value": "approve", "label": "Approve"},
                        {"value": "reject", "label": "Reject"},
                    ]
                },
            )
            if self.default_response is None:
                object.__setattr__(self, "default_response", "reject")
        if self.mode == "endorsement":
            if self.response_type not in ("single_select", "boolean"):
                raise problem(
                    f"endorsement counts approvals, which a {self.response_type} answer is not",
                    "use response_type single_select or boolean, or mode fan_out",
                    field="mode",
                )
            if self.threshold is None:
                raise problem(
                    "endorsement needs the number of approvals that decide",
                    "pass threshold: M (at most the number of reviewers)",
                    field="threshold",
                )
        elif self.threshold is not None:
            raise problem(
                f"threshold applies to mode endorsement, not {self.mode!r}",
                "remove threshold, or set mode: endorsement",
                field="threshold",
            )
        return self

    def approvals(self) -> list[Any]:
        """The answers an endorsement counts as approvals."""
        if self.approve_values is not None:
            return list(self.approve_values)
        return [True] if self.response_type == "boolean" else ["approve"]


Node = Annotated[TriggerNode | HumanReviewNode, Field(discriminator="type")]


class WorkflowDefinition(StrictModel):
    """One workflow: a trigger followed by one Human Review node.

    ``id``: the id its trigger URL carries (default: ``wf_`` and the name made a slug, so a
    file served again keeps its ids). ``status``: ``active``, or ``draft`` (ignores triggers,
    as HITL.sh's drafts do: 409).
    """

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")] | None = None
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: str | None = None
    status: Literal["active", "draft"] = "active"
    nodes: list[Node]

    @model_validator(mode="after")
    def _shape(self) -> WorkflowDefinition:
        kinds = [node.type for node in self.nodes]
        if kinds != ["trigger", "human_review"]:
            raise problem(
                f"nodes are {kinds}: the local server runs a trigger followed by one "
                "human_review node",
                "give nodes [{'type': 'trigger'}, {'type': 'human_review', ...}]",
            )
        return self

    @property
    def review(self) -> HumanReviewNode:
        """The Human Review node."""
        node = self.nodes[1]
        assert isinstance(node, HumanReviewNode)
        return node

    def workflow_id(self) -> str:
        """The id given, or one derived from the name."""
        if self.id:
            return self.id
        slug = re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")[:60] or "workflow"
        return f"wf_{slug}"


class WorkflowFile(StrictModel):
    """A file of workflows: ``{"groups": {name: [emails]}, "workflows": [...]}``."""

    groups: dict[str, list[str]] = Field(default_factory=dict)
    workflows: Annotated[list[WorkflowDefinition], Field(min_length=1)]

    @model_validator(mode="after")
    def _known_groups(self) -> WorkflowFile:
        for definition in self.workflows:
            for group in definition.review.groups:
                if group not in self.groups:
                    raise problem(
                        f"workflow {definition.name!r} names group {group!r}, which "
                        "the file does not define",
                        f"add groups: {{{group!r}: [emails]}} or fix the name",
                    )
        ids = [definition.workflow_id() for definition in self.workflows]
        if len(set(ids)) != len(ids):
            raise problem("two workflows share an id", "give each workflow its own id or name")
        return self

    @classmethod
    def parse(cls, data: Any) -> WorkflowFile:
        """Read a file's data: the full form, one workflow, or a list of workflows.

        Raises:
            ConfigError: naming the field (``workflows.0.nodes.1.timeout_seconds``).
        """
        from .base import validate_strict

        if isinstance(data, list):
            data = {"workflows": data}
        elif isinstance(data, dict) and "nodes" in data:
            data = {"workflows": [data]}
        return validate_strict(cls, data)
