"""The relay: committed outbox events to each tenant's Redis Stream, then marked published.

Only one relay publishes at a time: each pass takes a PostgreSQL advisory lock for its
transaction, and a process that cannot get it does nothing. A pass reads the oldest
BATCH_SIZE events still unpublished, in id order, XADDs those subscriptions carry (campaign
events of CAMPAIGN_EVENT_TYPES) and marks them all published, the ones it skipped too.

Ids are drawn when an event is inserted, not when its transaction commits, so id order is
commit order only between transactions that could not overlap. An event whose transaction
commits after a pass has published higher ids is not lost, since every pass reads every row
still unpublished, but it reaches the stream after them. Campaign events written under the
campaign's row lock (UPDATED, STATUS_CHANGED, AGENT_ASSIGNED, AGENT_UNASSIGNED; and CREATED,
which no other transaction can see until it commits) therefore reach the stream in commit
order for each campaign. ENGAGEMENT (`record_engagement`) and MEDIA_READY (`complete_upload`)
are written without that lock: against other events of the same campaign committed at about
the same moment, they may reach the stream in either order.

Publishing is one Lua script per batch (one round trip, whatever the batch size: a relay
that waited a loop turn per event fell behind 50 events/s on a busy instance) that, for
each event in order, sets a per-event marker and XADDs. A relay that dies after publishing
but before marking the rows publishes nothing twice on its next pass (the marker lives
MARKER_TTL_SECONDS, far longer than any pass), so the stream holds each event once. A pass
stops at the first event it cannot publish: that event and every later one stay
unpublished and are retried, in order, on the next pass. Their age is what
`chimera doctor` and /readyz report.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import Row, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.events.wakeup import OutboxWakeup
from app.stores.postgres.tables import outbox
from app.stores.redis import keys

log = logging.getLogger(__name__)

CAMPAIGN_EVENT_TYPES = frozenset(
    {
        "CREATED",
        "UPDATED",
        "STATUS_CHANGED",
        "AGENT_ASSIGNED",
        "AGENT_UNASSIGNED",
        "MEDIA_READY",
        "ENGAGEMENT",
    }
)
RELAY_LOCK = 0x52454C59  # "RELY"
BATCH_SIZE = 200
STREAM_MAXLEN = 100_000  # per tenant; older events are trimmed and can no longer be replayed
MARKER_TTL_SECONDS = 7 * 24 * 3600
# An event the relay has not published for this long means live updates are stuck.
RELAY_LAG_ALARM_SECONDS = 60.0

# One call publishes a whole batch, in order: KEYS are (stream, marker) per event, ARGV the
# marker TTL, the stream cap, then (event, type, campaign, at) per event. An event whose
# marker exists was published by an earlier pass and is skipped. The first XADD that fails
# ends the script (its marker removed again) and the reply says how many came before it.
PUBLISH_BATCH = """
local ttl, maxlen = ARGV[1], ARGV[2]
local count = #KEYS / 2
for i = 1, count do
  local stream, marker, a = KEYS[2 * i - 1], KEYS[2 * i], 2 + 4 * (i - 1)
  if redis.call('SET', marker, '1', 'NX', 'EX', ttl) then
    local added = redis.pcall('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'event', ARGV[a + 1],
                              'type', ARGV[a + 2], 'campaign', ARGV[a + 3], 'at', ARGV[a + 4])
    if type(added) == 'table' and added.err then
      redis.call('DEL', marker)
      return {i - 1, added.err}
    end
  end
end
return {count, false}
"""


def is_stream_event(aggregate_type: str, event_type: str) -> bool:
    return aggregate_type == "campaign" and event_type in CAMPAIGN_EVENT_TYPES


async def publish_once(engine: AsyncEngine, redis: Redis, *, batch_size: int = BATCH_SIZE) -> int:
    """Publish one batch if this process holds the relay lock; returns events settled."""
    async with engine.begin() as conn:
        locked = await conn.scalar(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": RELAY_LOCK}
        )
        if not locked:
            return 0  # another instance is relaying
        events = list(
            await conn.execute(
                select(outbox)
                .where(outbox.c.published_at.is_(None))
                .order_by(outbox.c.id)
                .limit(batch_size)
            )
        )
        if not events:
            return 0
        to_publish = [e for e in events if is_stream_event(e.aggregate_type, e.event_type)]
        try:
            published = await _publish(redis, to_publish)
        except Exception:
            # The reply is unknown: settle nothing. Whatever the script did publish carries
            # its marker, so the next pass skips it rather than adding it twice.
            log.warning("relay could not reach Redis; will retry", exc_info=True)
            return 0
        # Keep order: settle only what precedes the first event that could not be published;
        # it and everything after it are retried on the next pass.
        stop = to_publish[published].id if published < len(to_publish) else None
        settled = [e.id for e in events if stop is None or e.id < stop]
        if settled:
            await conn.execute(
                update(outbox).where(outbox.c.id.in_(settled)).values(published_at=func.now())
            )
        return len(settled)


async def _publish(redis: Redis, events: Sequence[Row[Any]]) -> int:
    """XADD the events in one round trip; returns how many were published (or found already
    published) before the first failure."""
    if not events:
        return 0
    script = redis.register_script(PUBLISH_BATCH)
    stream_keys: list[str] = []
    args: list[str | int] = [MARKER_TTL_SECONDS, STREAM_MAXLEN]
    for event in events:
        stream_keys += [
            keys.event_stream(event.tenant_id),
            keys.published_marker(event.tenant_id, event.id),
        ]
        args += [event.id, event.event_type, str(event.aggregate_id), _iso(event.created_at)]
    published, error = await script(keys=stream_keys, args=args)
    if error:
        failed = events[int(published)]
        log.warning("relay could not publish event %s: %s; will retry", failed.id, error)
    return int(published)


def _iso(moment: datetime) -> str:
    return moment.isoformat()


async def oldest_unpublished_age(engine: AsyncEngine) -> float | None:
    """Seconds since the oldest event still waiting to be published, or None."""
    async with engine.connect() as conn:
        oldest = await conn.scalar(
            select(func.extract("epoch", func.now() - func.min(outbox.c.created_at))).where(
                outbox.c.published_at.is_(None)
            )
        )
    return float(oldest) if oldest is not None else None


async def run_forever(
    engine: AsyncEngine,
    redis: Redis,
    *,
    idle_seconds: float = 0.05,
    listening_idle_seconds: float = 1.0,
) -> None:
    """Relay until cancelled. Idle, it waits for a commit notification (app/events/wakeup.py)
    and looks anyway every ``listening_idle_seconds``; without notifications it polls every
    ``idle_seconds``, so commit-to-stream stays in the tens of milliseconds either way."""
    wakeup = OutboxWakeup(engine)
    try:
        while True:
            listening = await wakeup.ensure()
            wakeup.event.clear()  # a commit during this pass wakes the next wait at once
            try:
                settled = await publish_once(engine, redis)
            except Exception:
                log.exception("relay pass failed")
                settled = 0
            if not settled:
                await wakeup.wait(listening_idle_seconds if listening else idle_seconds)
    finally:
        await wakeup.close()
