"""Tenants known to exist, so that a token whose tenant is gone is refused at the door.

A token is valid until it expires, whatever happens to its tenant meanwhile. Without this
check such a token read empty pages (every query filters on its tenant) and failed deep
inside mutations on a foreign key. A tenant seen to exist is remembered for a minute, so
the check costs a statement per tenant per minute, not one per request; deleting a tenant
takes up to that long to lock its tokens out everywhere.

The same statement reads the tenant's demand-control limits (app/ratelimit/limits.py), so
`chimera tenant limits` reaches every instance within that minute too, at no extra cost;
and its slug, which a token must name as well as its id: a token signed by an identity
provider whose two claims disagree is refused rather than logged under the wrong tenant.
"""

from __future__ import annotations

import asyncio
import time
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import Principal
from app.errors import StoreUnavailable, Unauthenticated
from app.ratelimit.limits import Limits, tenant_limits
from app.stores.failures import is_store_failure
from app.stores.postgres import reads

REMEMBERED_SECONDS = 60.0
REMEMBERED_AT_MOST = 10_000
LIMITS_SQL = (
    "SELECT slug, max_cost, rate_capacity, rate_per_second, client_rate_capacity,"
    " client_rate_per_second FROM tenant WHERE id = $1"
)


class KnownTenants:
    def __init__(self, timeout: float, defaults: Limits) -> None:
        self.timeout = timeout
        self.defaults = defaults
        self._seen: dict[UUID, float] = {}
        self._limits: dict[UUID, Limits] = {}
        self._slugs: dict[UUID, str] = {}

    def forget(self, tenant_id: UUID) -> None:
        """Read the tenant (and its limits) again on its next request."""
        self._seen.pop(tenant_id, None)
        self._limits.pop(tenant_id, None)
        self._slugs.pop(tenant_id, None)

    def limits(self, tenant_id: UUID) -> Limits:
        """The tenant's limits as last read (the defaults until it has been checked)."""
        return self._limits.get(tenant_id, self.defaults)

    async def check(self, engine: AsyncEngine, principal: Principal) -> Principal:
        """The principal, if its tenant exists; UNAUTHENTICATED if it does not."""
        now = time.monotonic()
        seen = self._seen.get(principal.tenant_id)
        if seen is not None and now - seen < REMEMBERED_SECONDS:
            return self._same_slug(principal)
        try:
            async with asyncio.timeout(self.timeout):
                rows = await reads.fetch(engine, LIMITS_SQL, principal.tenant_id)
        except TimeoutError as exc:
            raise StoreUnavailable("PostgreSQL", "timed out") from exc
        except Exception as exc:
            if is_store_failure(exc):
                raise StoreUnavailable("PostgreSQL") from exc
            raise
        if not rows:
            self._seen.pop(principal.tenant_id, None)
            raise Unauthenticated("The bearer token's tenant does not exist")
        if len(self._seen) >= REMEMBERED_AT_MOST:
            self._seen.clear()
            self._limits.clear()
            self._slugs.clear()
        row = dict(rows[0])
        self._seen[principal.tenant_id] = now
        self._limits[principal.tenant_id] = tenant_limits(self.defaults, row)
        self._slugs[principal.tenant_id] = row["slug"]
        return self._same_slug(principal)

    def _same_slug(self, principal: Principal) -> Principal:
        if self._slugs.get(principal.tenant_id) != principal.tenant_slug:
            raise Unauthenticated("The bearer token names its tenant by two different tenants")
        return principal
