"""Tenants known to exist, so that a token whose tenant is gone is refused at the door.

A token is valid until it expires, whatever happens to its tenant meanwhile. Without this
check such a token read empty pages (every query filters on its tenant) and failed deep
inside mutations on a foreign key. A tenant seen to exist is remembered for a minute, so
the check costs a statement per tenant per minute, not one per request; deleting a tenant
takes up to that long to lock its tokens out everywhere.
"""

from __future__ import annotations

import asyncio
import time
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import Principal
from app.errors import StoreUnavailable, Unauthenticated
from app.stores.failures import is_store_failure
from app.stores.postgres import reads

REMEMBERED_SECONDS = 60.0
REMEMBERED_AT_MOST = 10_000


class KnownTenants:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._seen: dict[UUID, float] = {}

    async def check(self, engine: AsyncEngine, principal: Principal) -> Principal:
        """The principal, if its tenant exists; UNAUTHENTICATED if it does not."""
        now = time.monotonic()
        seen = self._seen.get(principal.tenant_id)
        if seen is not None and now - seen < REMEMBERED_SECONDS:
            return principal
        try:
            async with asyncio.timeout(self.timeout):
                rows = await reads.fetch(
                    engine, "SELECT 1 FROM tenant WHERE id = $1", principal.tenant_id
                )
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
        self._seen[principal.tenant_id] = now
        return principal
