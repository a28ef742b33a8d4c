"""The relay: committed outbox events to each tenant's Redis Stream, then marked published.

Only one relay publishes at a time: each pass takes a PostgreSQL advisory lock for its
transaction, and a process that cannot get it does nothing. A pass reads the oldest
BATCH_SIZE events still unpublished, in id order, XADDs those subscriptions carry (campaign
events of CAMPAIGN_EVENT_TYPES) and marks them published, the ones it skipped too.

The relay is also what keeps engagement counters equal to the committed ENGAGEMENT events
(ADR 0019): before it publishes one, it counts it in the campaign's counters, with the
script the request uses right after its commit (app/stores/redis/scripts.py), so that
whichever comes first counts the event and the other finds it counted. An increment whose
request died between its commit and its count is thus counted by the next pass.

Ids are drawn when an event is inserted, not when its transaction commits, so id order is
commit order only between transactions that could not overlap. An event whose transaction
commits after a pass has published higher ids is not lost, since every pass reads every row
still unpublished, but it reaches the stream after them. Campaign events written under the
campaign's row lock (UPDATED, STATUS_CHANGED, AGENT_ASSIGNED, AGENT_UNASSIGNED; and CREATED,
which no other transaction can see until it commits) therefore reach the stream in commit
order for each campaign. ENGAGEMENT (`record_engagement`) and MEDIA_READY (`complete_upload`)
are written without that lock: against other events of the same campaign committed at about
the same moment, they may reach the stream in either order.

Publishing is one Lua script per tenant in the batch, all sent in one pipeline (one round
trip, whatever the batch size: a relay that waited a loop turn per event fell behind 50
events/s on a busy instance). For each event in order, the script counts it if it is an
increment, sets a per-event marker and XADDs. A relay that dies after publishing but before
marking the rows counts and publishes nothing twice on its next pass (the markers live
MARKER_TTL_SECONDS, far longer than any pass), so the stream holds each event once and the
counters count it once. A tenant's call stops at the first event it cannot publish (or
count: `chimera reconcile` fences a tenant while it measures it): that event and the
tenant's later ones stay unpublished and are retried, in order, on the next pass; other
tenants' events are not held back. Their age is what `chimera doctor` and /readyz report.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from opentelemetry.trace import StatusCode
from redis.asyncio import Redis
from sqlalchemy import Row, Text, cast, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from app.commands.engagement import APPLY_AFTER_COMMIT
from app.events.wakeup import OutboxWakeup
from app.stores.postgres.tables import outbox
from app.stores.redis import keys
from app.stores.redis.scripts import (
    APPLIED_TTL_SECONDS,
    APPLY_INCREMENT_FUNCTION,
    LuaScript,
    evalsha_each,
)
from app.telemetry.event_links import batch_span

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from app.telemetry.metrics import Metrics

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
        "SPEND",
    }
)
RELAY_LOCK = 0x52454C59  # "RELY"
BATCH_SIZE = 200
STREAM_MAXLEN = 100_000  # per tenant; older events are trimmed and can no longer be replayed
MARKER_TTL_SECONDS = 7 * 24 * 3600
# An event the relay has not published for this long means live updates are stuck.
RELAY_LAG_ALARM_SECONDS = 60.0

# One call per tenant publishes that tenant's events of a batch, in order (one call never
# names two tenants' keys: Redis Cluster will keep each tenant's keys in one hash slot). KEYS
# are the stream and the tenant's reconcile fence, then per event its marker and, for an
# increment to count, its applied marker and the campaign's counters. ARGV are the marker TTL,
# the stream cap, the applied-marker TTL, then (event, type, campaign, at, field, amount, tp)
# per event, field '' when there is nothing to count, tp the traceparent of the write that
# caused it or '' (app/telemetry/event_links.py), which the entry carries to subscribers.
# An increment is counted first (once: see apply_increment), then the event is published
# unless its marker says it already was. The first event that cannot be counted or
# published ends the call (the marker of a failed XADD removed again), and the reply says
# how many came before it and why.
PUBLISH_TENANT = LuaScript(
    APPLY_INCREMENT_FUNCTION
    + """
local stream, fence = KEYS[1], KEYS[2]
local ttl, maxlen, applied_ttl = ARGV[1], ARGV[2], ARGV[3]
local count = (#ARGV - 3) / 7
local k = 3
for i = 1, count do
  local a = 3 + 7 * (i - 1)
  local marker = KEYS[k]
  k = k + 1
  if ARGV[a + 5] ~= '' then
    local state = apply_increment(KEYS[k + 1], KEYS[k], fence, ARGV[a + 5], ARGV[a + 6],
                                  applied_ttl)
    k = k + 2
    if state == -1 then return {i - 1, 'FENCED'} end
    if type(state) == 'table' then return {i - 1, state.err} end
  end
  if redis.call('SET', marker, '1', 'NX', 'EX', ttl) then
    local entry = {'event', ARGV[a + 1], 'type', ARGV[a + 2], 'campaign', ARGV[a + 3],
                   'at', ARGV[a + 4]}
    if ARGV[a + 7] ~= '' then
      entry[#entry + 1] = 'tp'
      entry[#entry + 1] = ARGV[a + 7]
    end
    local added = redis.pcall('XADD', stream, 'MAXLEN', '~', maxlen, '*', unpack(entry))
    if type(added) == 'table' and added.err then
      redis.call('DEL', marker)
      return {i - 1, added.err}
    end
  end
end
return {count, false}
"""
)


def is_stream_event(aggregate_type: str, event_type: str) -> bool:
    return aggregate_type == "campaign" and event_type in CAMPAIGN_EVENT_TYPES


def increment_of(event: Row[Any]) -> tuple[str, int] | None:
    """(field, amount) an event adds to its campaign's counters, if the relay must count it:
    ENGAGEMENT events written since ADR 0019. Older ones were counted before their commit."""
    if event.event_type != "ENGAGEMENT" or event.aggregate_type != "campaign":
        return None
    payload = event.payload if isinstance(event.payload, dict) else {}
    field, amount = payload.get("field"), payload.get("count")
    if payload.get(APPLY_AFTER_COMMIT) is not True:
        return None
    if field not in keys.ENGAGEMENT_FIELDS or type(amount) is not int:
        log.error("ENGAGEMENT event %s has no valid field and count: not counted", event.id)
        return None
    return field, amount


@dataclass(frozen=True)
class Partition:
    """Which tenants' events a relay loop publishes: partition ``index`` of ``count``, by a
    hash of the tenant id, so that each tenant's events stay in one partition, in order.
    Each partition has its own lock: one publisher per partition at a time, on whichever
    process holds it. Every relay must use the same count (CHIMERA_RELAY_PARTITIONS)."""

    index: int = 0
    count: int = 1

    def lock(self) -> tuple[str, dict[str, int]]:
        if self.count == 1:  # the lock relays have always taken: old and new ones exclude
            return "SELECT pg_try_advisory_xact_lock(:key)", {"key": RELAY_LOCK}
        return (
            "SELECT pg_try_advisory_xact_lock(:key, :index)",
            {"key": RELAY_LOCK, "index": self.index},
        )

    def where(self) -> list[ColumnElement[bool]]:
        if self.count == 1:
            return []
        hashed = func.hashtext(cast(outbox.c.tenant_id, Text)).op("&")(0x7FFFFFFF)
        return [hashed.op("%")(self.count) == self.index]


def partitions(count: int) -> list[Partition]:
    return [Partition(index, count) for index in range(count)]


async def publish_once(
    engine: AsyncEngine,
    redis: Redis,
    *,
    batch_size: int = BATCH_SIZE,
    metrics: Metrics | None = None,
    tracer: Tracer | None = None,
    partition: Partition = Partition(),
) -> int:
    """Publish one batch of ``partition`` if this process holds its lock; returns events
    settled. With ``tracer``, a batch holding events of traced writes is a span linked to
    them."""
    async with engine.begin() as conn:
        statement, parameters = partition.lock()
        locked = await conn.scalar(text(statement), parameters)
        if not locked:
            return 0  # another instance is relaying this partition
        events = list(
            await conn.execute(
                select(outbox)
                .where(outbox.c.published_at.is_(None), *partition.where())
                .order_by(outbox.c.id)
                .limit(batch_size)
            )
        )
        if not events:
            return 0
        by_tenant: dict[UUID, list[Row[Any]]] = {}
        for event in events:
            if is_stream_event(event.aggregate_type, event.event_type):
                by_tenant.setdefault(event.tenant_id, []).append(event)
        attributes = {"messaging.system": "redis", "messaging.batch.message_count": len(events)}
        writes = [(e.id, e.traceparent) for e in events]
        with batch_span(tracer, "outbox publish", writes, attributes) as span:
            try:
                held = await _publish(redis, list(by_tenant.values()))
            except Exception as exc:
                # The reply is unknown: settle nothing. Whatever the scripts did count or
                # publish carries its marker, so the next pass skips it, not doing it twice.
                log.warning("relay could not reach Redis; will retry", exc_info=True)
                if span is not None:
                    span.set_status(StatusCode.ERROR, f"Redis: {exc}")
                return 0
            # Keep each tenant's order: an event held back holds back its tenant's later
            # ones, to be retried in order on the next pass; other tenants' are settled.
            settled = [e.id for e in events if e.id not in held]
            if settled:
                await conn.execute(
                    update(outbox).where(outbox.c.id.in_(settled)).values(published_at=func.now())
                )
    if metrics is not None and settled:
        now = datetime.now(UTC)
        for event in events:
            if event.id not in held:
                metrics.relay_lag.record((now - event.created_at).total_seconds())
        metrics.events_published.add(len(settled))
    return len(settled)


async def _publish(redis: Redis, groups: Sequence[Sequence[Row[Any]]]) -> set[int]:
    """Count and XADD each tenant's events, one script call per tenant, all in one round trip;
    returns the ids held back: each tenant's first failure and its events after it."""
    if not groups:
        return set()
    calls = [_tenant_call(events) for events in groups]
    # Each call is idempotent, so one that ran before a failed round trip is skipped the
    # next time the relay tries.
    replies = await evalsha_each(redis, PUBLISH_TENANT, calls)
    held: set[int] = set()
    for events, reply in zip(groups, replies, strict=True):
        if isinstance(reply, Exception):
            log.warning(
                "relay could not publish events from %s: %s; will retry", events[0].id, reply
            )
            held.update(e.id for e in events)
            continue
        published, error = int(reply[0]), reply[1]
        if published == len(events):
            continue
        held.update(e.id for e in events[published:])
        failed = events[published]
        if error == b"FENCED":
            log.info("relay waits for `chimera reconcile` to finish tenant %s", failed.tenant_id)
        else:
            log.warning("relay could not publish event %s: %s; will retry", failed.id, error)
    return held


def _tenant_call(events: Sequence[Row[Any]]) -> tuple[list[str], list[str | int]]:
    """KEYS and ARGV of one PUBLISH_TENANT call for one tenant's events, in outbox order."""
    tenant_id = events[0].tenant_id
    call_keys = [keys.event_stream(tenant_id), keys.engagement_fence(tenant_id)]
    args: list[str | int] = [MARKER_TTL_SECONDS, STREAM_MAXLEN, APPLIED_TTL_SECONDS]
    for event in events:
        call_keys.append(keys.published_marker(tenant_id, event.id))
        increment = increment_of(event)
        if increment is not None:
            call_keys += [
                keys.engagement_applied(tenant_id, event.id),
                keys.campaign_engagement(tenant_id, event.aggregate_id),
            ]
        field, amount = increment or ("", 0)
        args += [event.id, event.event_type, str(event.aggregate_id), _iso(event.created_at)]
        args += [field, amount, event.traceparent or ""]
    return call_keys, args


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
    metrics: Metrics | None = None,
    tracer: Tracer | None = None,
    partition_count: int = 1,
) -> None:
    """Relay every partition until cancelled: one loop each, concurrently (see
    ``relay_partition``)."""
    if partition_count == 1:
        await relay_partition(
            engine,
            redis,
            Partition(),
            idle_seconds=idle_seconds,
            listening_idle_seconds=listening_idle_seconds,
            metrics=metrics,
            tracer=tracer,
        )
        return
    async with asyncio.TaskGroup() as group:
        for partition in partitions(partition_count):
            group.create_task(
                relay_partition(
                    engine,
                    redis,
                    partition,
                    idle_seconds=idle_seconds,
                    listening_idle_seconds=listening_idle_seconds,
                    metrics=metrics,
                    tracer=tracer,
                ),
                name=f"relay-{partition.index}-of-{partition.count}",
            )


async def relay_partition(
    engine: AsyncEngine,
    redis: Redis,
    partition: Partition,
    *,
    idle_seconds: float = 0.05,
    listening_idle_seconds: float = 1.0,
    metrics: Metrics | None = None,
    tracer: Tracer | None = None,
) -> None:
    """Relay one partition until cancelled. Idle, it waits for a commit notification
    (app/events/wakeup.py) and looks anyway every ``listening_idle_seconds``; without
    notifications it polls every ``idle_seconds``, so commit-to-stream stays in the tens
    of milliseconds either way. Another process holding the partition's lock makes each
    pass a no-op until it lets go (or dies: the lock goes with its transaction)."""
    wakeup = OutboxWakeup(engine)
    try:
        while True:
            listening = await wakeup.ensure()
            wakeup.event.clear()  # a commit during this pass wakes the next wait at once
            try:
                settled = await publish_once(
                    engine, redis, metrics=metrics, tracer=tracer, partition=partition
                )
            except Exception:
                log.exception("relay pass failed")
                settled = 0
            if not settled:
                await wakeup.wait(listening_idle_seconds if listening else idle_seconds)
    finally:
        await wakeup.close()
