"""GraphQL types of tenant API keys. Never the key: it is shown once, when created."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import strawberry

from app.cost.directives import POSTGRES
from app.ids import encode_id
from app.pagination import encode_cursor
from loaders.postgres.api_keys import API_KEY_ORDER
from resolvers.columns import Row, column, row_of
from resolvers.tenants.types import ViewerRole


def api_key_id(pk: UUID) -> str:
    return encode_id("ApiKey", pk)


def api_key_cursor(row: Any) -> str:
    return encode_cursor(API_KEY_ORDER, row["created_at"], row["id"])


@strawberry.type(
    description="A tenant's key for server-to-server clients, sent as `Authorization: Bearer "
    "chk_...`. Only its prefix is ever shown again.",
    directives=[POSTGRES],
)
class ApiKey:
    __slots__ = ("row",)
    row: strawberry.Private[Row]
    id: strawberry.ID = column("id", api_key_id)
    name: str = column("name")
    role: ViewerRole = column("role", ViewerRole)
    prefix: str = column(
        "prefix", lambda value: f"chk_{value}", description="How the key begins: names it."
    )
    created_by: str = column("created_by")
    created_at: datetime = column("created_at")
    last_used_at: datetime | None = column(
        "last_used_at", description="Recorded about once a minute, not on every request."
    )
    revoked_at: datetime | None = column("revoked_at")

    @classmethod
    def from_row(cls, row: Any) -> ApiKey:
        return cls(row=row_of(row))


@strawberry.input
class RevokeApiKeyInput:
    id: strawberry.ID


@strawberry.type
class RevokeApiKeyPayload:
    api_key: ApiKey
