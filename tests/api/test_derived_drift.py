"""Drift of the values PostgreSQL derives from its own rows: campaign.spent from the ledger,
and the per-minute metrics from the events the consumer applied. Clean data shows none;
edits by hand are found and repaired; pruned minutes are not drift."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.ids import decode_id
from app.metrics.consumer import prune_metrics
from app.metrics.reconcile import find_drift
from tests.support import TenantClient, new_tenant, settle_metrics

CREATE = 'mutation { createCampaign(input: {name: "Checked", budget: "100"}) { campaign { id } } }'
ENGAGE = """mutation($id: ID!) { recordEngagement(input: {campaignId: $id, kind: CLICK, count: 3}) {
  engagement { clicks } } }"""
SPEND = """mutation($id: ID!, $key: String!) { recordTransaction(input: {campaignId: $id,
  kind: SPEND, amount: "10", idempotencyKey: $key}) { transaction { id } } }"""


async def busy_tenant(engine: AsyncEngine, http: AsyncClient) -> tuple[TenantClient, uuid.UUID]:
    tenant = await new_tenant(engine, http)
    campaign_id = (await tenant.data(CREATE))["createCampaign"]["campaign"]["id"]
    await tenant.data(ENGAGE, {"id": campaign_id})
    await tenant.data(SPEND, {"id": campaign_id, "key": uuid.uuid4().hex})
    await settle_metrics(engine)
    return tenant, decode_id(campaign_id, "Campaign")


async def test_hand_edits_are_found_repaired_and_then_gone(
    engine: AsyncEngine, http: AsyncClient
) -> None:
    tenant, campaign = await busy_tenant(engine, http)
    assert await find_drift(engine, tenant_id=tenant.id) == []
    async with engine.begin() as conn:
        params = {"t": tenant.id, "c": campaign}
        await conn.execute(
            text("UPDATE campaign SET spent = spent + 1 WHERE tenant_id = :t AND id = :c"), params
        )
        await conn.execute(
            text(
                "UPDATE campaign_metric SET clicks = clicks + 5 "
                "WHERE tenant_id = :t AND campaign_id = :c"
            ),
            params,
        )
    found = await find_drift(engine, tenant_id=tenant.id)
    assert {(d.what, d.repairable) for d in found} == {("spent", True), ("metrics", True)}
    assert any("clicks 8 stored, 3 in events" in d.detail for d in found), found
    assert await find_drift(engine, tenant_id=tenant.id, repair=True)
    await settle_metrics(engine)
    assert await find_drift(engine, tenant_id=tenant.id) == []
    async with engine.connect() as conn:
        spent = await conn.scalar(text("SELECT spent FROM campaign WHERE id = :c"), {"c": campaign})
        clicks = await conn.scalar(
            text("SELECT sum(clicks) FROM campaign_metric WHERE campaign_id = :c"),
            {"c": campaign},
        )
    assert (str(spent), clicks) == ("10.00", 3)


async def test_a_missing_spend_event_is_reported_not_invented(
    engine: AsyncEngine, http: AsyncClient
) -> None:
    tenant, campaign = await busy_tenant(engine, http)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "DELETE FROM outbox WHERE tenant_id = :t AND aggregate_id = :c "
                "AND event_type = 'SPEND'"
            ),
            {"t": tenant.id, "c": campaign},
        )
    found = await find_drift(engine, tenant_id=tenant.id, repair=True)
    spend_events = [d for d in found if d.what == "spend events"]
    assert len(spend_events) == 1 and not spend_events[0].repairable
    assert "1 transactions, 0 SPEND events" in spend_events[0].detail


async def test_minutes_pruned_on_purpose_are_not_drift(
    tenant: TenantClient, engine: AsyncEngine, http: AsyncClient
) -> None:
    tenant, campaign = await busy_tenant(engine, http)
    # As if these events and their minute were years old.
    old = datetime(2001, 6, 1, 12, 0, tzinfo=UTC)
    async with engine.begin() as conn:
        params = {"t": tenant.id, "c": campaign, "old": old}
        await conn.execute(
            text(
                "UPDATE campaign_metric SET minute = :old WHERE tenant_id = :t AND campaign_id = :c"
            ),
            params,
        )
        await conn.execute(
            text("UPDATE outbox SET created_at = :old WHERE tenant_id = :t AND aggregate_id = :c"),
            params,
        )
    assert await prune_metrics(engine, datetime(2002, 1, 1, tzinfo=UTC)) >= 1
    campaign_id = (await tenant.data(CREATE))["createCampaign"]["campaign"]["id"]
    await tenant.data(ENGAGE, {"id": campaign_id})
    await settle_metrics(engine)
    assert await find_drift(engine, tenant_id=tenant.id) == []
