"""``client.loops``: create, list, get, update, delete, members, remove_member."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._base_client import APICall, api_path, path_param
from .._exceptions import ConfigError
from ..models.base import validate_strict
from ..models.loops import (
    CreateLoopParams,
    Loop,
    LoopCreated,
    LoopDeleted,
    LoopMembers,
    MemberRemoved,
    UpdateLoopParams,
)

if TYPE_CHECKING:
    from .._client import AsyncHITLClient, HITLClient

__all__ = ["AsyncLoops", "Loops"]


def _loops(data: Any) -> list[Loop]:
    items = data.get("loops", []) if isinstance(data, dict) else data
    return [Loop.model_validate(item) for item in items]


def _create(name: str, icon: str, description: str | None) -> APICall[LoopCreated]:
    body = validate_strict(
        CreateLoopParams, {"name": name, "icon": icon, "description": description}
    ).model_dump(exclude_none=True)
    return APICall("POST", api_path("loops"), LoopCreated.model_validate, json=body)


def _update(
    loop_id: str, name: str | None, icon: str | None, description: str | None
) -> APICall[Loop]:
    body = validate_strict(
        UpdateLoopParams, {"name": name, "icon": icon, "description": description}
    ).model_dump(exclude_none=True)
    if not body:
        raise ConfigError(
            "name",
            "at least one field must be provided for update",
            "pass name, icon or description",
        )
    return APICall(
        "PUT", api_path("loops", path_param("loop_id", loop_id)), Loop.from_data, json=body
    )


def _get(loop_id: str) -> APICall[Loop]:
    return APICall("GET", api_path("loops", path_param("loop_id", loop_id)), Loop.from_data)


def _delete(loop_id: str) -> APICall[LoopDeleted]:
    path = api_path("loops", path_param("loop_id", loop_id))
    return APICall("DELETE", path, LoopDeleted.model_validate)


def _members(loop_id: str) -> APICall[LoopMembers]:
    path = api_path("loops", path_param("loop_id", loop_id), "members")
    return APICall("GET", path, LoopMembers.model_validate)


def _remove_member(loop_id: str, user_id: str) -> APICall[MemberRemoved]:
    path = api_path(
        "loops", path_param("loop_id", loop_id), "members", path_param("user_id", user_id)
    )
    return APICall("DELETE", path, MemberRemoved.model_validate)


class Loops:
    """Loop endpoints on the sync client."""

    def __init__(self, client: HITLClient) -> None:
        self._client = client

    def create(
        self, name: str, *, icon: str = "shield-check", description: str | None = None
    ) -> LoopCreated:
        """Create a loop; the result carries the invite code reviewers join with."""
        return self._client._execute(_create(name, icon, description))

    def list(self) -> list[Loop]:
        """The loops this key created or belongs to."""
        return self._client._execute(APICall("GET", api_path("loops"), _loops))

    def get(self, loop_id: str) -> Loop:
        """One loop."""
        return self._client._execute(_get(loop_id))

    def update(
        self,
        loop_id: str,
        *,
        name: str | None = None,
        icon: str | None = None,
        description: str | None = None,
    ) -> Loop:
        """Change a loop's name, icon or description (at least one)."""
        return self._client._execute(_update(loop_id, name, icon, description))

    def delete(self, loop_id: str) -> LoopDeleted:
        """Delete a loop with its requests and responses. Irreversible."""
        return self._client._execute(_delete(loop_id))

    def members(self, loop_id: str) -> LoopMembers:
        """The loop's members and their counts."""
        return self._client._execute(_members(loop_id))

    def remove_member(self, loop_id: str, user_id: str) -> MemberRemoved:
        """Remove a member (not the creator)."""
        return self._client._execute(_remove_member(loop_id, user_id))


class AsyncLoops:
    """Loop endpoints on the async client."""

    def __init__(self, client: AsyncHITLClient) -> None:
        self._client = client

    async def create(
        self, name: str, *, icon: str = "shield-check", description: str | None = None
    ) -> LoopCreated:
        """Create a loop; the result carries the invite code reviewers join with."""
        return await self._client._execute(_create(name, icon, description))

    async def list(self) -> list[Loop]:
        """The loops this key created or belongs to."""
        return await self._client._execute(APICall("GET", api_path("loops"), _loops))

    async def get(self, loop_id: str) -> Loop:
        """One loop."""
        return await self._client._execute(_get(loop_id))

    async def update(
        self,
        loop_id: str,
        *,
        name: str | None = None,
        icon: str | None = None,
        description: str | None = None,
    ) -> Loop:
        """Change a loop's name, icon or description (at least one)."""
        return await self._client._execute(_update(loop_id, name, icon, description))

    async def delete(self, loop_id: str) -> LoopDeleted:
        """Delete a loop with its requests and responses. Irreversible."""
        return await self._client._execute(_delete(loop_id))

    async def members(self, loop_id: str) -> LoopMembers:
        """The loop's members and their counts."""
        return await self._client._execute(_members(loop_id))

    async def remove_member(self, loop_id: str, user_id: str) -> MemberRemoved:
        """Remove a member (not the creator)."""
        return await self._client._execute(_remove_member(loop_id, user_id))
