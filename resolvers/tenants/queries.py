"""Query.viewer."""

from __future__ import annotations

import strawberry
from sqlalchemy import select

from app.errors import Unauthenticated
from app.stores.postgres.tables import tenant
from resolvers.info import Info
from resolvers.tenants.types import Tenant, Viewer, ViewerRole


@strawberry.type
class TenantQueries:
    @strawberry.field(description="Who is calling: their tenant and role.")
    async def viewer(self, info: Info) -> Viewer:
        principal = info.context.principal
        if principal is None:
            raise Unauthenticated("Authentication required")
        row = await info.context.loaders.tenant_by_id.load(principal.tenant_id)
        if row is None:
            # Authentication found the tenant on the primary; a read replica within its
            # allowed lag may not have replayed the tenant's creation yet.
            async with info.context.stores.engine.connect() as conn:
                found = await conn.execute(select(tenant).where(tenant.c.id == principal.tenant_id))
                row = found.mappings().first()
        if row is None:
            raise Unauthenticated("The token's tenant no longer exists")
        return Viewer(
            tenant=Tenant.from_row(row),
            role=ViewerRole(principal.role.value),
            subject=principal.subject,
        )
