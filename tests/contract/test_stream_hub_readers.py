"""The subscriber fan-out's readers on a real Redis: one blocking XREAD per tenant's stream
with subscribers on this instance, each holding a connection while it waits, so the readers'
client must open as many connections as there are such streams."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime

import pytest

from app.events.hub import StreamHub
from app.stores.redis import keys
from app.stores.redis.client import create_redis

TENANTS = 150  # past redis-py's default pool of 100 connections


async def test_readers_of_many_tenants_each_deliver_their_event_at_once(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    redis = create_redis(redis_url, timeout=5, max_connections=10)
    readers = create_redis(redis_url, timeout=5)  # as app/lifespan.py makes the readers'
    hub = StreamHub(redis, readers, block_ms=2000, per_tenant_cap=10, timeout=5)
    tenants = [uuid.uuid4() for _ in range(TENANTS)]
    subscribers = [await hub.subscribe(tenant) for tenant in tenants]
    try:
        await asyncio.sleep(0.5)  # every reader waiting in its XREAD
        at = datetime.now(UTC).isoformat()
        for tenant in tenants:
            event = {"event": "1", "type": "CAMPAIGN_UPDATED", "campaign": str(tenant), "at": at}
            await redis.xadd(keys.event_stream(tenant), event)  # type: ignore[arg-type]
        # Well within one blocking read (2 s): no reader is waiting for a connection.
        async with asyncio.timeout(1.5):
            batches = [await subscriber.queue.get() for subscriber in subscribers]
        assert [batch.events[0].campaign_id for batch in batches] == tenants
        refused = [r.getMessage() for r in caplog.records if "lost Redis" in r.getMessage()]
        assert refused == [], refused[:3]
    finally:
        for subscriber in subscribers:
            await hub.unsubscribe(subscriber)
        await readers.aclose()
        await redis.aclose()
