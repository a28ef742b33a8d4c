"""GraphQL types for the caller's own tenant and role."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

import strawberry

from app.cost.directives import CostStore, Store
from app.ids import encode_id
from resolvers.columns import Row, column, row_of
from resolvers.relay import Node


@strawberry.enum
class ViewerRole(Enum):
    AGENT = "agent"
    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"


def tenant_id(pk: UUID) -> str:
    return encode_id("Tenant", pk)


@strawberry.type(
    description="A customer of Chimera; every other object belongs to one.",
    directives=[Store(name=CostStore.POSTGRES)],
)
class Tenant(Node):
    __slots__ = ("row",)
    row: strawberry.Private[Row]
    id: strawberry.ID = column("id", tenant_id)
    slug: str = column("slug")
    name: str = column("name")
    created_at: datetime = column("created_at")

    @classmethod
    def from_row(cls, row: Any) -> Tenant:
        return cls(row=row_of(row))


@strawberry.type(description="The caller: the tenant its token is bound to, and its role.")
class Viewer:
    tenant: Tenant
    role: ViewerRole
    subject: str
