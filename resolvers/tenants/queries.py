"""Query.viewer."""

from __future__ import annotations

import strawberry

from app.errors import Unauthenticated
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
            raise Unauthenticated("The token's tenant no longer exists")
        return Viewer(
            tenant=Tenant.from_row(row),
            role=ViewerRole(principal.role.value),
            subject=principal.subject,
        )
