"""The metrics consumer: committed ENGAGEMENT and SPEND events added to per-minute rows.

A pass takes the oldest events not yet applied (``FOR UPDATE SKIP LOCKED``, so consumers in
several processes share the work instead of repeating it), adds them up per campaign and
minute of their commit, upserts those sums into ``campaign_metric`` and stamps the events'
``metrics_applied_at``, all in one transaction: an event is counted exactly once, whatever
crashes or replays. Events committed before this consumer existed are applied on its first
passes, so the history starts with the outbox.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app.stores.postgres.tables import campaign, campaign_metric, outbox
from app.stores.redis.keys import ENGAGEMENT_FIELDS

log = logging.getLogger(__name__)

BATCH_SIZE = 500
IDLE_SECONDS = 1.0
MEASURES = (*ENGAGEMENT_FIELDS, "spend")

Minute = tuple[UUID, UUID, datetime]


def minute_of(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def contribution(event: Any) -> tuple[str, int | Decimal] | None:
    """What one event adds to its minute: (measure, amount), or None if nothing."""
    payload = event.payload
    if event.event_type == "ENGAGEMENT":
        field = payload.get("field")
        return (field, int(payload["count"])) if field in ENGAGEMENT_FIELDS else None
    if event.event_type == "SPEND":
        amount = Decimal(str(payload["amount"]))
        return "spend", -amount if payload.get("kind") == "REFUND" else amount
    return None


async def apply_once(engine: AsyncEngine, batch_size: int = BATCH_SIZE) -> int:
    """Apply one batch; the number of events it settled (0: none were waiting)."""
    async with engine.begin() as conn:
        events = (
            await conn.execute(
                select(
                    outbox.c.id,
                    outbox.c.tenant_id,
                    outbox.c.aggregate_id,
                    outbox.c.event_type,
                    outbox.c.payload,
                    outbox.c.created_at,
                )
                .where(
                    outbox.c.metrics_applied_at.is_(None),
                    outbox.c.event_type.in_(("ENGAGEMENT", "SPEND")),
                )
                .order_by(outbox.c.id)
                .limit(batch_size)
                .with_for_update(skip_locked=True)
            )
        ).all()
        if not events:
            return 0
        sums: dict[Minute, dict[str, int | Decimal]] = defaultdict(dict)
        for event in events:
            added = contribution(event)
            if added is None:
                continue
            measure, amount = added
            into = sums[(event.tenant_id, event.aggregate_id, minute_of(event.created_at))]
            into[measure] = into.get(measure, 0) + amount
        # An event of a campaign removed since (by SQL: the API deletes none) is stamped and
        # skipped, instead of failing its whole batch on the foreign key forever.
        present = {
            (row.tenant_id, row.id)
            for row in await conn.execute(
                select(campaign.c.tenant_id, campaign.c.id).where(
                    campaign.c.id.in_({campaign_id for _, campaign_id, _ in sums})
                )
            )
        }
        # In key order: consumers in several processes then lock the rows they share in the
        # same order, and two batches over the same minutes wait for each other instead of
        # deadlocking (seen with three instances under load: tests/api/test_many_instances.py).
        for (tenant_id, campaign_id, minute), deltas in sorted(sums.items()):
            if (tenant_id, campaign_id) not in present:
                continue
            statement = pg_insert(campaign_metric).values(
                tenant_id=tenant_id, campaign_id=campaign_id, minute=minute, **deltas
            )
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["tenant_id", "campaign_id", "minute"],
                    set_={
                        name: campaign_metric.c[name] + statement.excluded[name] for name in deltas
                    },
                )
            )
        await conn.execute(
            update(outbox)
            .where(outbox.c.id.in_([event.id for event in events]))
            .values(metrics_applied_at=func.now())
        )
    return len(events)


async def run_forever(engine: AsyncEngine, *, idle_seconds: float = IDLE_SECONDS) -> None:
    """Apply until cancelled; idle, look again every ``idle_seconds``. Metrics may trail
    their events by that much; counters and the ledger are exact at once."""
    while True:
        try:
            applied = await apply_once(engine)
        except Exception:  # a failed pass is retried; the events stay pending
            log.exception("metrics pass failed")
            applied = 0
        if not applied:
            await asyncio.sleep(idle_seconds)


async def prune_metrics(engine: AsyncEngine, before: datetime) -> int:
    """Delete the minutes before ``before``, for every tenant: the retention job."""
    async with engine.begin() as conn:
        gone = await conn.execute(delete(campaign_metric).where(campaign_metric.c.minute < before))
    return int(gone.rowcount or 0)
