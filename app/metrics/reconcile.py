"""Drift of what is derived in PostgreSQL: the ledger's running totals and the metrics.

Two derived values live beside their sources, each written in the source's transaction, so
they can only drift by hand (SQL typed at a console, a restore of one table but not another):

- ``campaign.spent`` must equal the signed sum of the campaign's ledger transactions, and the
  campaign must have exactly one SPEND event per transaction (ADR 0021);
- a campaign's ``campaign_metric`` rows must add up to the ENGAGEMENT and SPEND events the
  metrics consumer has applied (ADR 0022). Minutes before the tenant's oldest remaining row
  are left out of the comparison, since ``chimera metrics prune`` removes them on purpose;
  events still waiting for the consumer are lag, not drift.

Repairs: a campaign's ``spent`` is set to its ledger's sum (refused, and reported, if that
is over its budget); a campaign's metrics are rebuilt by deleting its rows from the horizon on
and handing its events back to the consumer. A missing or extra SPEND event is reported only:
events are history, and are not invented or removed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.stores.redis.keys import ENGAGEMENT_FIELDS

MEASURES = (*ENGAGEMENT_FIELDS, "spend")


@dataclass(frozen=True)
class Drift:
    tenant_id: uuid.UUID
    campaign_id: uuid.UUID
    what: str  # "spent", "spend events" or "metrics"
    detail: str
    repairable: bool


_SIGNED = "CASE WHEN kind = 'REFUND' THEN -amount ELSE amount END"  # ledger_transaction columns

SPENT = f"""
SELECT c.tenant_id, c.id, c.spent, c.budget, coalesce(l.total, 0) AS ledger,
       coalesce(l.n, 0) AS transactions, coalesce(e.n, 0) AS events
FROM campaign c
LEFT JOIN (SELECT tenant_id, campaign_id, sum({_SIGNED}) AS total, count(*) AS n
           FROM ledger_transaction GROUP BY tenant_id, campaign_id) l
       ON l.tenant_id = c.tenant_id AND l.campaign_id = c.id
LEFT JOIN (SELECT tenant_id, aggregate_id, count(*) AS n FROM outbox
           WHERE event_type = 'SPEND' GROUP BY tenant_id, aggregate_id) e
       ON e.tenant_id = c.tenant_id AND e.aggregate_id = c.id
WHERE (CAST(:tenant AS uuid) IS NULL OR c.tenant_id = :tenant)
  AND (c.spent <> coalesce(l.total, 0) OR coalesce(l.n, 0) <> coalesce(e.n, 0))
"""

_EVENT_SUMS = ", ".join(
    f"sum(CASE WHEN event_type = 'ENGAGEMENT' AND payload->>'field' = '{f}' "
    f"THEN (payload->>'count')::bigint ELSE 0 END) AS {f}"
    for f in ENGAGEMENT_FIELDS
)
METRICS = f"""
WITH horizon AS (
    SELECT tenant_id, min(minute) AS since FROM campaign_metric GROUP BY tenant_id
), applied AS (
    SELECT o.tenant_id, o.aggregate_id AS campaign_id, {_EVENT_SUMS},
           sum(CASE WHEN o.event_type <> 'SPEND' THEN 0
                    WHEN o.payload->>'kind' = 'REFUND' THEN -(o.payload->>'amount')::numeric
                    ELSE (o.payload->>'amount')::numeric END) AS spend
    FROM outbox o LEFT JOIN horizon h ON h.tenant_id = o.tenant_id
    WHERE o.event_type IN ('ENGAGEMENT', 'SPEND') AND o.metrics_applied_at IS NOT NULL
      AND (h.since IS NULL OR o.created_at >= h.since)
      AND (CAST(:tenant AS uuid) IS NULL OR o.tenant_id = :tenant)
    GROUP BY o.tenant_id, o.aggregate_id
), stored AS (
    SELECT tenant_id, campaign_id, {", ".join(f"sum({m}) AS {m}" for m in MEASURES)}
    FROM campaign_metric WHERE CAST(:tenant AS uuid) IS NULL OR tenant_id = :tenant
    GROUP BY tenant_id, campaign_id
)
SELECT coalesce(a.tenant_id, s.tenant_id) AS tenant_id,
       coalesce(a.campaign_id, s.campaign_id) AS campaign_id,
       {", ".join(f"coalesce(a.{m}, 0) AS applied_{m}, coalesce(s.{m}, 0) AS stored_{m}" for m in MEASURES)}
FROM applied a FULL JOIN stored s
  ON s.tenant_id = a.tenant_id AND s.campaign_id = a.campaign_id
WHERE {" OR ".join(f"coalesce(a.{m}, 0) <> coalesce(s.{m}, 0)" for m in MEASURES)}
"""


async def find_drift(
    engine: AsyncEngine, *, repair: bool = False, tenant_id: uuid.UUID | None = None
) -> list[Drift]:
    """Every drifted campaign (of one tenant, or of all); with ``repair``, repaired where
    possible, in one transaction with the reading so that nothing moves in between."""
    async with engine.begin() as conn:
        if repair:  # spends and the consumer wait while the totals are rewritten
            await conn.execute(
                text("LOCK TABLE ledger_transaction, campaign_metric IN EXCLUSIVE MODE")
            )
        drifts = await _spent_drift(conn, repair, tenant_id)
        drifts += await _metrics_drift(conn, repair, tenant_id)
    return drifts


async def _spent_drift(
    conn: AsyncConnection, repair: bool, tenant_id: uuid.UUID | None
) -> list[Drift]:
    drifts = []
    for row in await conn.execute(text(SPENT), {"tenant": tenant_id}):
        if row.spent != row.ledger:
            fits = Decimal(0) <= row.ledger <= row.budget
            drifts.append(
                Drift(
                    row.tenant_id,
                    row.id,
                    "spent",
                    f"spent {row.spent}, ledger {row.ledger}"
                    + ("" if fits else f" (over the budget {row.budget}: not repaired)"),
                    fits,
                )
            )
            if repair and fits:
                await conn.execute(
                    text("UPDATE campaign SET spent = :s WHERE tenant_id = :t AND id = :c"),
                    {"s": row.ledger, "t": row.tenant_id, "c": row.id},
                )
        if row.transactions != row.events:
            drifts.append(
                Drift(
                    row.tenant_id,
                    row.id,
                    "spend events",
                    f"{row.transactions} transactions, {row.events} SPEND events",
                    False,
                )
            )
    return drifts


async def _metrics_drift(
    conn: AsyncConnection, repair: bool, tenant_id: uuid.UUID | None
) -> list[Drift]:
    drifts = []
    for row in await conn.execute(text(METRICS), {"tenant": tenant_id}):
        differing = [
            f"{m} {getattr(row, f'stored_{m}')} stored, {getattr(row, f'applied_{m}')} in events"
            for m in MEASURES
            if getattr(row, f"stored_{m}") != getattr(row, f"applied_{m}")
        ]
        drifts.append(Drift(row.tenant_id, row.campaign_id, "metrics", "; ".join(differing), True))
        if repair:
            await _rebuild_metrics(conn, row.tenant_id, row.campaign_id)
    return drifts


async def _rebuild_metrics(
    conn: AsyncConnection, tenant_id: uuid.UUID, campaign_id: uuid.UUID
) -> None:
    """Drop the campaign's rows from the horizon on and give its events back to the consumer,
    which rebuilds them exactly once."""
    horizon = await conn.scalar(
        text("SELECT min(minute) FROM campaign_metric WHERE tenant_id = :t"), {"t": tenant_id}
    )
    await conn.execute(
        text(
            "DELETE FROM campaign_metric WHERE tenant_id = :t AND campaign_id = :c "
            "AND (CAST(:h AS timestamptz) IS NULL OR minute >= :h)"
        ),
        {"t": tenant_id, "c": campaign_id, "h": horizon},
    )
    await conn.execute(
        text(
            "UPDATE outbox SET metrics_applied_at = NULL WHERE tenant_id = :t "
            "AND aggregate_id = :c AND event_type IN ('ENGAGEMENT', 'SPEND') "
            "AND (CAST(:h AS timestamptz) IS NULL OR created_at >= :h)"
        ),
        {"t": tenant_id, "c": campaign_id, "h": horizon},
    )


def describe(drifts: list[Drift], repaired: bool) -> list[str]:
    if not drifts:
        return ["ledger totals and metrics match their sources"]
    verb = "repaired" if repaired else "drift"
    return [
        f"{verb if d.repairable else 'drift'}: tenant {d.tenant_id} campaign {d.campaign_id} "
        f"{d.what}: {d.detail}"
        for d in drifts
    ]
