"""Recording engagement: an atomic Redis increment paired with an ENGAGEMENT outbox event.

Redis holds the counters; PostgreSQL holds the event. The increment runs inside the open
PostgreSQL transaction, so a Redis failure rolls the event back, and a failed commit after a
successful increment is compensated by the inverse increment. Concurrent writers never lose
an update: HINCRBY is atomic on the server.
"""

from __future__ import annotations

import uuid
from contextlib import suppress

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import Principal
from app.commands.changes import emit_event
from app.commands.owned import owned_row
from app.errors import BadUserInput
from app.stores.postgres.tables import campaign
from app.stores.redis import keys
from app.stores.redis.client import unavailable_as_error
from loaders.redis.counters import EngagementCounts, engagement_from

MAX_INCREMENT = 1_000_000


async def record_engagement(
    engine: AsyncEngine,
    redis: Redis,
    principal: Principal,
    campaign_id: uuid.UUID,
    field: str,
    count: int,
    *,
    timeout: float,
) -> EngagementCounts:
    if field not in keys.ENGAGEMENT_FIELDS:
        raise BadUserInput(f"Unknown engagement kind {field!r}", field="kind")
    if count < 1 or count > MAX_INCREMENT:
        raise BadUserInput(f"'count' must be between 1 and {MAX_INCREMENT}", field="count")
    key = keys.campaign_engagement(principal.tenant_id, campaign_id)
    incremented = False
    try:
        async with engine.begin() as conn:
            await owned_row(
                conn, campaign, principal, campaign_id, what="Campaign", argument="campaignId"
            )
            await emit_event(
                conn,
                principal,
                aggregate_type="campaign",
                aggregate_id=campaign_id,
                event_type="ENGAGEMENT",
                payload={"campaignId": campaign_id, "field": field, "count": count},
            )
            async with unavailable_as_error(timeout), redis.pipeline(transaction=True) as pipe:
                pipe.hincrby(key, field, count)
                pipe.hmget(key, list(keys.ENGAGEMENT_FIELDS))
                _, values = await pipe.execute()
            incremented = True
    except Exception:
        if incremented:  # the commit failed after Redis counted: take the count back
            with suppress(RedisError, OSError):
                await redis.hincrby(key, field, -count)
        raise
    return engagement_from(values)
