"""Query.apiKeys: the tenant's keys, for admins."""

from __future__ import annotations

import strawberry

from app.auth import Role
from app.cost.directives import connection
from app.errors import Forbidden
from loaders.postgres.api_keys import API_KEY_ORDER
from resolvers.apikeys.types import ApiKey, api_key_cursor
from resolvers.info import Info
from resolvers.listing import time_args
from resolvers.relay import Connection, build_connection


def require_admin(info: Info, what: str) -> None:
    if not info.context.require_principal().role.allows(Role.ADMIN):
        raise Forbidden(f"{what} needs the admin role")


@strawberry.type
class ApiKeyQueries:
    @strawberry.field(
        description="The tenant's API keys, newest first, revoked ones included (admins).",
        directives=connection(),
    )
    def api_keys(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[ApiKey]:
        require_admin(info, "Listing API keys")
        loaders = info.context.loaders
        return build_connection(
            loaders.api_keys,
            time_args(first, after, API_KEY_ORDER),
            ApiKey.from_row,
            api_key_cursor,
            loaders.api_key_count,
            "all",
        )
