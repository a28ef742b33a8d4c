"""GraphQL types for the caller's own tenant and role."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry

from app.ids import encode_id
from resolvers.relay import Node


@strawberry.enum
class ViewerRole(Enum):
    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"


@strawberry.type(description="A customer of Chimera; every other object belongs to one.")
class Tenant(Node):
    slug: str
    name: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Tenant:
        return cls(
            id=strawberry.ID(encode_id("Tenant", row.id)),
            slug=row.slug,
            name=row.name,
            created_at=row.created_at,
        )


@strawberry.type(description="The caller: the tenant its token is bound to, and its role.")
class Viewer:
    tenant: Tenant
    role: ViewerRole
    subject: str
