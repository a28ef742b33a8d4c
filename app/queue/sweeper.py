"""The task sweeper: leases that ran out are taken back even when no runtime claims.

A claim takes back its own agent's expired leases first, so a live runtime never waits for
this. An agent whose every runtime died has no claims, though: its RUNNING tasks would stay
RUNNING (and counted active) until one came back. Once a second, the sweeper sweeps every
tenant, one script call per tenant, all in one pipeline: expired leases go back to QUEUED
(or DEAD after their last attempt) and finished tasks past retention are deleted. Each call
is idempotent, so sweepers of several instances may run at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from uuid import UUID

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.queue import core, scripts
from app.stores.postgres.tables import tenant
from app.stores.redis import keys
from app.stores.redis.scripts import evalsha_each

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 1.0
TENANTS_REFRESH_SECONDS = 5.0  # a new tenant's leases are swept within this (plus a pass)
AT_MOST = 500  # leases taken back and tasks retired per tenant and pass


async def sweep_all(redis: Redis, tenant_ids: list[UUID]) -> int:
    """One pass over these tenants; returns the leases taken back."""
    if not tenant_ids:
        return 0
    replies = await evalsha_each(
        redis,
        scripts.SWEEP,
        [
            (
                [keys.task_leases(tenant_id)],
                [keys.tenant_prefix(tenant_id), core.EVENTS_MAXLEN, core.RETENTION_MS, AT_MOST],
            )
            for tenant_id in tenant_ids
        ],
    )
    failed = [reply for reply in replies if isinstance(reply, Exception)]
    if failed:  # those tenants' leases wait for the next pass
        log.warning("task sweep failed for %d tenants: %r; will retry", len(failed), failed[0])
    return sum(int(reply) for reply in replies if not isinstance(reply, Exception))


async def run_forever(
    engine: AsyncEngine, redis: Redis, *, interval: float = INTERVAL_SECONDS
) -> None:
    tenant_ids: list[UUID] = []
    listed_at = float("-inf")
    while True:
        try:
            if time.monotonic() - listed_at > TENANTS_REFRESH_SECONDS:
                async with engine.connect() as conn:
                    tenant_ids = list(await conn.scalars(select(tenant.c.id)))
                listed_at = time.monotonic()
            taken = await sweep_all(redis, tenant_ids)
            if taken:
                log.info("task sweeper took back %d expired leases", taken)
        except Exception:
            log.warning("task sweep failed; will retry", exc_info=True)
        await asyncio.sleep(interval)
