"""Loops: the groups of reviewers that requests are broadcast to."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AliasChoices, Field

from .base import HITLModel, StrictModel

__all__ = [
    "CreateLoopParams",
    "Loop",
    "LoopCreated",
    "LoopDeleted",
    "LoopMember",
    "LoopMembers",
    "MemberRemoved",
    "UpdateLoopParams",
]


class CreateLoopParams(StrictModel):
    """The body of ``POST /loops``."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    icon: Annotated[str, Field(min_length=1, max_length=100)] = "shield-check"
    description: Annotated[str, Field(max_length=500)] | None = None


class UpdateLoopParams(StrictModel):
    """The body of ``PUT /loops/{id}``: at least one field."""

    name: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    icon: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    description: Annotated[str, Field(max_length=500)] | None = None


class LoopMember(HITLModel):
    """A member of a loop; ``status`` is ``active`` or ``pending``."""

    user_id: str | None = Field(default=None, validation_alias=AliasChoices("user_id", "id"))
    email: str | None = None
    status: str | None = None
    joined_at: datetime | None = None
    role: str | None = None
    last_active: datetime | None = None


class Loop(HITLModel):
    """A loop as the API returns it."""

    id: str = Field(validation_alias=AliasChoices("id", "loop_id", "_id"))
    name: str | None = None
    description: str | None = None
    icon: str | None = None
    creator_id: str | None = None
    members: list[LoopMember] = Field(default_factory=list)
    member_count: int | None = None
    pending_count: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def from_data(cls, data: Any) -> Loop:
        """Parse ``{"loop": {...}}`` or the loop itself."""
        if isinstance(data, dict) and isinstance(data.get("loop"), dict):
            data = data["loop"]
        return cls.model_validate(data)


class LoopCreated(HITLModel):
    """What creating a loop returns: the loop and how reviewers join it."""

    loop: Loop
    invite_code: str | None = None
    qr_code_base64: str | None = None
    qr_code_url: str | None = None
    join_url: str | None = None


class DeletedData(HITLModel):
    """Counts of what a loop deletion removed."""

    members_removed: int | None = None
    requests_deleted: int | None = None
    responses_deleted: int | None = None


class LoopDeleted(HITLModel):
    """What deleting a loop returns."""

    loop_id: str
    deleted_at: datetime | None = None
    deleted_data: DeletedData | None = None


class LoopMembers(HITLModel):
    """The members of a loop, with counts."""

    members: list[LoopMember] = Field(default_factory=list)
    total_count: int | None = Field(
        default=None, validation_alias=AliasChoices("total_count", "member_count")
    )
    active_count: int | None = None
    pending_count: int | None = None
    loop_id: str | None = None


class MemberRemoved(HITLModel):
    """What removing a member returns."""

    loop_id: str | None = None
    user_id: str | None = None
    removed_at: datetime | None = None
