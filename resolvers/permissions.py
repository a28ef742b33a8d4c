"""Role checks declared on fields, so a reader sees who may call a mutation at its definition."""

from __future__ import annotations

from typing import Any, ClassVar

from strawberry.permission import BasePermission

from app.auth import Role
from resolvers.info import Info


class IsEditor(BasePermission):
    message = "This action needs the editor role"
    error_extensions: ClassVar[dict[str, object]] = {"code": "FORBIDDEN"}  # type: ignore[misc]

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        principal = info.context.principal
        return principal is not None and principal.role.allows(Role.EDITOR)


class IsAdmin(BasePermission):
    message = "This action needs the admin role"
    error_extensions: ClassVar[dict[str, object]] = {"code": "FORBIDDEN"}  # type: ignore[misc]

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        principal = info.context.principal
        return principal is not None and principal.role.allows(Role.ADMIN)


class IsAgentRuntime(BasePermission):
    message = "This action needs an agent token (`chimera token --agent ID --role agent`)"
    error_extensions: ClassVar[dict[str, object]] = {"code": "FORBIDDEN"}  # type: ignore[misc]

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        principal = info.context.principal
        return principal is not None and principal.agent_id is not None
