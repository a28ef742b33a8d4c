"""Drift between the engagement counters in Redis and the committed ENGAGEMENT events.

Each campaign's counters must equal the sum of its committed ENGAGEMENT events (ADR 0019).
They can drift when Redis loses data (a restart without its append-only file, a flush), and
counters kept before ADR 0019 may hold increments whose event never committed. This module
recounts every campaign of a tenant from its events, compares, and repairs by HINCRBY of
the difference.

The comparison is exact even while increments keep coming. For the moment it measures a
tenant, it holds the tenant's fence in Redis: the request and the relay then count no new
increment (the relay counts them once the fence is lifted; the request answers with its own
increment added). So every increment Redis has counted was committed before the fence, and
is in the PostgreSQL snapshot read under it; of the events in that snapshot, those still
unpublished say, by their applied marker, whether Redis has counted them yet. The repair
runs under the same fence, so no increment is lost to it.

What it cannot know: events the outbox no longer holds. Pruning removes the oldest events
first, so a campaign whose CREATED event is still there has all its events; for one whose
CREATED event is gone (or that was written without one), Redis may rightly hold more than
the events left add up to. Such a campaign is reported as unverifiable when Redis holds more,
and left as it is; when Redis holds less than its remaining events, it is raised to them.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from sqlalchemy import BigInteger, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.commands.engagement import APPLY_AFTER_COMMIT
from app.events.wakeup import CHANNEL
from app.stores.postgres.tables import campaign, outbox, tenant
from app.stores.redis import keys
from app.stores.redis.scripts import (
    MEASURE_ENGAGEMENT,
    RELEASE_FENCE,
    REPAIR_ENGAGEMENT,
)

# Longer than measuring one tenant takes; if the reconcile dies, increments are counted by
# the relay alone until then. A measure that outlasts it fails (FENCE_LOST), never guesses.
FENCE_TTL_SECONDS = 60
CAMPAIGNS_PER_CALL = 500  # bounds how long one measuring script blocks Redis
MARKERS_PER_CALL = 2000


class ReconcileError(Exception):
    """The tenant could not be measured: another reconcile holds it, or the fence expired."""


@dataclass(frozen=True)
class CounterDrift:
    campaign_id: uuid.UUID
    field: str
    redis: int  # what Redis holds
    events: int  # what the committed events Redis has been asked to count add up to
    verifiable: bool  # False: the campaign's oldest events may have been pruned

    @property
    def delta(self) -> int:
        return self.redis - self.events

    @property
    def repairable(self) -> bool:
        """Redis below the events is always wrong; above them only provably so."""
        return self.delta < 0 or self.verifiable


@dataclass
class TenantCounters:
    """One tenant's comparison, and what a repair changed."""

    tenant_id: uuid.UUID
    campaigns: int = 0
    events: int = 0  # ENGAGEMENT events found in the outbox
    pending: int = 0  # committed but not counted yet: the relay counts them, not drift
    unverifiable: int = 0  # campaigns without their CREATED event in the outbox
    drifts: list[CounterDrift] = field(default_factory=list)
    repaired: bool = False


@dataclass
class _Committed:
    """What PostgreSQL says about one tenant, in one snapshot."""

    campaigns: list[uuid.UUID]
    complete: set[uuid.UUID]  # campaigns whose CREATED event is still in the outbox
    totals: dict[tuple[uuid.UUID, str], int]
    events: int
    # Unpublished events the relay is to count: (event id, campaign, field, amount)
    unpublished: list[tuple[int, uuid.UUID, str, int]]


async def reconcile(
    engine: AsyncEngine,
    redis: Redis,
    *,
    repair: bool,
    tenant_ids: Sequence[uuid.UUID] | None = None,
) -> list[TenantCounters]:
    """Compare (and with ``repair``, fix) every tenant's counters, or those of ``tenant_ids``."""
    if tenant_ids is None:
        async with engine.connect() as conn:
            tenant_ids = list(await conn.scalars(select(tenant.c.id).order_by(tenant.c.id)))
    return [await reconcile_tenant(engine, redis, t, repair=repair) for t in tenant_ids]


async def reconcile_tenant(
    engine: AsyncEngine, redis: Redis, tenant_id: uuid.UUID, *, repair: bool
) -> TenantCounters:
    fence, token = keys.engagement_fence(tenant_id), uuid.uuid4().hex
    if not await redis.set(fence, token, nx=True, ex=FENCE_TTL_SECONDS):
        raise ReconcileError(f"tenant {tenant_id}: another reconcile is measuring it; retry")
    try:
        committed = await _read_committed(engine, tenant_id)
        report = await _compare(redis, tenant_id, token, committed)
        fixes = [d for d in report.drifts if d.repairable]
        if repair and fixes:
            await REPAIR_ENGAGEMENT(
                redis,
                [fence, *(keys.campaign_engagement(tenant_id, d.campaign_id) for d in fixes)],
                [token, *(v for d in fixes for v in (d.field, -d.delta))],
            )
            report.repaired = True
    except ResponseError as exc:
        if "FENCE_LOST" not in str(exc):
            raise
        raise ReconcileError(
            f"tenant {tenant_id}: measuring took longer than its {FENCE_TTL_SECONDS} s fence;"
            " nothing was repaired"
        ) from exc
    finally:
        await RELEASE_FENCE(redis, [fence], [token])
        async with engine.begin() as conn:  # wake the relay: it may have increments to count
            await conn.execute(select(func.pg_notify(CHANNEL, "")))
    return report


async def _read_committed(engine: AsyncEngine, tenant_id: uuid.UUID) -> _Committed:
    """The tenant's campaigns and ENGAGEMENT events, in one snapshot taken under the fence."""
    engagement = (
        (outbox.c.tenant_id == tenant_id)
        & (outbox.c.aggregate_type == "campaign")
        & (outbox.c.event_type == "ENGAGEMENT")
    )
    field_ = outbox.c.payload["field"].astext
    amount = outbox.c.payload["count"].astext.cast(BigInteger)
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            campaigns = list(
                await conn.scalars(select(campaign.c.id).where(campaign.c.tenant_id == tenant_id))
            )
            complete = set(
                await conn.scalars(
                    select(outbox.c.aggregate_id).where(
                        outbox.c.tenant_id == tenant_id,
                        outbox.c.aggregate_type == "campaign",
                        outbox.c.event_type == "CREATED",
                    )
                )
            )
            sums = await conn.execute(
                select(outbox.c.aggregate_id, field_, func.sum(amount), func.count())
                .where(engagement)
                .group_by(outbox.c.aggregate_id, field_)
            )
            totals, events = {}, 0
            for campaign_id, name, total, number in sums:
                totals[(campaign_id, name)] = int(total)
                events += int(number)
            unpublished = [
                (row.id, row.aggregate_id, row.field, int(row.amount))
                for row in await conn.execute(
                    select(outbox.c.id, outbox.c.aggregate_id, field_.label("field"))
                    .add_columns(amount.label("amount"))
                    .where(
                        engagement,
                        outbox.c.published_at.is_(None),
                        outbox.c.payload.contains({APPLY_AFTER_COMMIT: True}),
                    )
                )
            ]
    return _Committed(campaigns, complete, totals, events, unpublished)


async def _compare(
    redis: Redis, tenant_id: uuid.UUID, token: str, committed: _Committed
) -> TenantCounters:
    fence = keys.engagement_fence(tenant_id)
    fields = keys.ENGAGEMENT_FIELDS
    redis_counts: dict[uuid.UUID, list[int]] = {}
    campaigns = committed.campaigns
    for start in range(0, len(campaigns), CAMPAIGNS_PER_CALL):
        chunk = campaigns[start : start + CAMPAIGNS_PER_CALL]
        names = [keys.campaign_engagement(tenant_id, c) for c in chunk]
        counts, _ = await MEASURE_ENGAGEMENT(redis, [fence, *names], [token, len(names), *fields])
        for campaign_id, values in zip(chunk, counts, strict=True):
            redis_counts[campaign_id] = [int(v) if v is not None else 0 for v in values]
    # Committed increments Redis has not counted yet: no drift, the relay is about to count
    # them (it cannot while the fence holds, nor can the request).
    not_counted: dict[tuple[uuid.UUID, str], int] = defaultdict(int)
    report = TenantCounters(tenant_id, campaigns=len(campaigns), events=committed.events)
    events = committed.unpublished
    for start in range(0, len(events), MARKERS_PER_CALL):
        chunk_events = events[start : start + MARKERS_PER_CALL]
        markers = [keys.engagement_applied(tenant_id, e[0]) for e in chunk_events]
        _, applied = await MEASURE_ENGAGEMENT(redis, [fence, *markers], [token, 0, *fields])
        for (_, campaign_id, name, amount), counted in zip(chunk_events, applied, strict=True):
            if not int(counted):
                not_counted[(campaign_id, name)] += amount
                report.pending += 1
    for campaign_id in campaigns:
        verifiable = campaign_id in committed.complete
        report.unverifiable += not verifiable
        for name, in_redis in zip(fields, redis_counts[campaign_id], strict=True):
            key = (campaign_id, name)
            expected = committed.totals.get(key, 0) - not_counted.get(key, 0)
            if in_redis != expected:
                report.drifts.append(
                    CounterDrift(campaign_id, name, in_redis, expected, verifiable)
                )
    return report


def describe(reports: Sequence[TenantCounters]) -> list[str]:
    """What `chimera reconcile` prints: one line per drift, then what it could not check."""
    lines = []
    for r in reports:
        for d in r.drifts:
            verb = "repaired" if r.repaired and d.repairable else "drift"
            if not d.repairable:
                verb = "unverifiable"
            lines.append(
                f"{verb}: tenant {r.tenant_id} campaign {d.campaign_id} {d.field}: "
                f"redis {d.redis}, events {d.events} ({d.delta:+d})"
            )
        if r.pending:
            lines.append(
                f"pending: tenant {r.tenant_id}: {r.pending} committed increments not counted"
                " yet (the relay counts them)"
            )
        if r.unverifiable:
            lines.append(
                f"note: tenant {r.tenant_id}: {r.unverifiable} campaigns have no CREATED event"
                " left in the outbox (pruned, or written without one): counts above their"
                " remaining events cannot be checked and are kept"
            )
    if not any(d.repairable for r in reports for d in r.drifts):
        campaigns, events = sum(r.campaigns for r in reports), sum(r.events for r in reports)
        lines.append(f"counters match PostgreSQL ({campaigns} campaigns, {events} events)")
    return lines
