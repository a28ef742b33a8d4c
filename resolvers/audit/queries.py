"""Query.auditLog: the tenant's audit trail, for admins."""

from __future__ import annotations

from uuid import UUID

import strawberry

from app.auth import Role
from app.cost.directives import connection
from app.errors import Forbidden
from resolvers.audit.types import (
    AuditEntry,
    AuditLogFilter,
    audit_cursor,
    audit_filter,
    audit_page_args,
)
from resolvers.info import Info
from resolvers.relay import Connection, build_connection


@strawberry.type
class AuditQueries:
    @strawberry.field(
        description="Every audited change of the tenant, newest first (admins). Append-only: "
        "entries are never edited or removed by the API.",
        directives=connection(),
    )
    def audit_log(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        filter: AuditLogFilter | None = None,
    ) -> Connection[AuditEntry]:
        principal = info.context.require_principal()
        if not principal.role.allows(Role.ADMIN):
            raise Forbidden("The audit log needs the admin role")
        loaders = info.context.loaders
        where = audit_filter(filter)
        return build_connection(
            loaders.audit_log,
            (where, audit_page_args(first, after)),
            AuditEntry.from_row,
            audit_cursor,
            loaders.audit_log_count,
            where,
        )


def history(
    info: Info, aggregate_type: str, pk: UUID, first: int | None, after: str | None
) -> Connection[AuditEntry]:
    """A campaign's or an agent's history as a connection (Campaign.history, Agent.history)."""
    loaders = info.context.loaders
    return build_connection(
        loaders.history_by_aggregate,
        (aggregate_type, pk, audit_page_args(first, after)),
        AuditEntry.from_row,
        audit_cursor,
        loaders.history_count_by_aggregate,
        (aggregate_type, pk),
    )
