"""Recording engagement: the ENGAGEMENT outbox event commits first, then Redis counts it.

PostgreSQL holds the event, Redis the counters derived from events (ADR 0019). The command
commits the event, then applies it to Redis with a script that counts an event once
(app/stores/redis/scripts.py: the HINCRBY and a per-event marker in one step). The relay
applies every committed ENGAGEMENT event with the same script before it publishes it, so
an event whose request died between its commit and its apply is still counted, once, within
the relay's latency; and nothing is ever counted for an event that did not commit. The two
stores can then only disagree for as long as an event waits for the relay.

Before committing, the command reads the counters inside its transaction: Redis being down
then fails the mutation with STORE_UNAVAILABLE and rolls the event back, as before, and the
read is the answer's fallback if Redis fails in the moment between the commit and the apply.
After the commit the increment is recorded, so the mutation succeeds whatever Redis does:
failing it would invite a retry, and a retry would count the engagement twice.

A client that retries anyway (its answer was lost) passes an ``idempotencyKey``: the key, a
digest of the increment and its event are written in the event's transaction, and a retry
within KEY_WINDOW finds them, adds nothing and answers with the current counts. A key used
for another increment is IDEMPOTENCY_KEY_REUSED. After the window the key is free again and
the media sweeper deletes it (``prune_engagement_keys``).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import replace
from datetime import timedelta

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.auth import Principal
from app.commands.changes import jsonable
from app.commands.owned import owned_row
from app.errors import BadUserInput, IdempotencyKeyReused, StoreUnavailable
from app.stores.postgres.tables import campaign, engagement_key, outbox
from app.stores.redis import keys
from app.stores.redis.client import unavailable_as_error
from app.stores.redis.scripts import APPLIED_TTL_SECONDS, APPLY_ENGAGEMENT
from app.telemetry.event_links import current_traceparent
from app.validation import clean_idempotency_key
from loaders.redis.counters import EngagementCounts, engagement_from

log = logging.getLogger(__name__)

MAX_INCREMENT = 1_000_000

# In an ENGAGEMENT event's payload: Redis counts this event from the outbox, after its commit.
# Events written before ADR 0019 lack it: they were counted before their commit, and the
# relay must not count them again.
APPLY_AFTER_COMMIT = "applyAfterCommit"

# What the apply script answers while `chimera reconcile` fences the tenant: not counted yet
# (scripts.APPLY_INCREMENT_FUNCTION; 1 is "counted now", 0 "counted before", by the relay).
FENCED = -1

# How long a recordEngagement idempotency key holds: longer than any client retries for.
KEY_WINDOW = timedelta(hours=24)


async def record_engagement(
    engine: AsyncEngine,
    redis: Redis,
    principal: Principal,
    campaign_id: uuid.UUID,
    field: str,
    count: int,
    *,
    timeout: float,
    idempotency_key: str | None = None,
) -> EngagementCounts:
    """Commit an ENGAGEMENT event, count it in Redis, and return the campaign's counts with it.

    The counts come from the script that applied the event, so they include this increment
    and every one applied before it. When the increment cannot be applied now (Redis failed
    after the commit, or `chimera reconcile` is measuring the tenant) the relay applies it
    shortly, and the answer is the counts Redis had plus this increment.
    """
    if field not in keys.ENGAGEMENT_FIELDS:
        raise BadUserInput(f"Unknown engagement kind {field!r}", field="kind")
    if count < 1 or count > MAX_INCREMENT:
        raise BadUserInput(f"'count' must be between 1 and {MAX_INCREMENT}", field="count")
    counters = keys.campaign_engagement(principal.tenant_id, campaign_id)
    key = clean_idempotency_key(idempotency_key) if idempotency_key is not None else None
    fingerprint = hashlib.sha256(f"{campaign_id}:{field}:{count}".encode()).hexdigest()
    async with engine.begin() as conn:
        await owned_row(
            conn, campaign, principal, campaign_id, what="Campaign", argument="campaignId"
        )
        if key is not None and not await _claim(conn, principal, key, fingerprint):
            # Counted when the key was first used: nothing to add, the answer is the counts.
            async with unavailable_as_error(timeout):
                now = await redis.hmget(counters, list(keys.ENGAGEMENT_FIELDS))
            return engagement_from(now)
        event_id: int = (
            await conn.execute(
                insert(outbox)
                .values(
                    tenant_id=principal.tenant_id,
                    aggregate_type="campaign",
                    aggregate_id=campaign_id,
                    event_type="ENGAGEMENT",
                    payload=jsonable(
                        {
                            "campaignId": campaign_id,
                            "field": field,
                            "count": count,
                            APPLY_AFTER_COMMIT: True,
                        }
                    ),
                    traceparent=current_traceparent(),
                )
                .returning(outbox.c.id)
            )
        ).scalar_one()
        if key is not None:
            await conn.execute(
                update(engagement_key)
                .where(
                    engagement_key.c.tenant_id == principal.tenant_id, engagement_key.c.key == key
                )
                .values(event_id=event_id)
            )
        # Redis unreachable: STORE_UNAVAILABLE here rolls the event back. The counts read are
        # also the answer's base should Redis fail between the commit and the apply.
        async with unavailable_as_error(timeout):
            before = await redis.hmget(counters, list(keys.ENGAGEMENT_FIELDS))
    counted_before = engagement_from(before)
    try:
        async with unavailable_as_error(timeout):
            state, values = await APPLY_ENGAGEMENT(
                redis,
                [
                    counters,
                    keys.engagement_applied(principal.tenant_id, event_id),
                    keys.engagement_fence(principal.tenant_id),
                ],
                [APPLIED_TTL_SECONDS, field, count, *keys.ENGAGEMENT_FIELDS],
            )
    except (StoreUnavailable, RedisError) as exc:
        log.warning("engagement event %s committed, not counted yet: %s", event_id, exc)
        return _plus(counted_before, field, count)
    counts = engagement_from(values)
    return _plus(counts, field, count) if int(state) == FENCED else counts


async def _claim(conn: AsyncConnection, principal: Principal, key: str, fingerprint: str) -> bool:
    """Take the key for this increment: True if it is new (or its window has passed), False
    if a committed increment holds it with the same input; IDEMPOTENCY_KEY_REUSED if with
    another. A concurrent first use waits here for the other transaction's outcome."""
    taken = await conn.execute(
        pg_insert(engagement_key)
        .values(tenant_id=principal.tenant_id, key=key, fingerprint=fingerprint)
        .on_conflict_do_update(
            index_elements=["tenant_id", "key"],
            set_={"fingerprint": fingerprint, "event_id": None, "created_at": func.now()},
            where=engagement_key.c.created_at < func.now() - KEY_WINDOW,
        )
        .returning(engagement_key.c.key)
    )
    if taken.first() is not None:
        return True
    held = (
        await conn.execute(
            select(engagement_key.c.fingerprint).where(
                engagement_key.c.tenant_id == principal.tenant_id, engagement_key.c.key == key
            )
        )
    ).scalar_one()
    if held != fingerprint:
        raise IdempotencyKeyReused(
            "This idempotency key was used for a different increment", field="idempotencyKey"
        )
    return False


async def prune_engagement_keys(engine: AsyncEngine) -> int:
    """Delete keys whose window has passed; they could be taken again anyway."""
    async with engine.begin() as conn:
        gone = await conn.execute(
            delete(engagement_key).where(engagement_key.c.created_at < func.now() - KEY_WINDOW)
        )
    return int(gone.rowcount or 0)


def _plus(counts: EngagementCounts, field: str, count: int) -> EngagementCounts:
    """``counts`` with this increment, for an answer given before Redis has counted it."""
    return replace(counts, **{field: getattr(counts, field) + count})
