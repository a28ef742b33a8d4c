"""Engagement counters: counted in Redis from committed ENGAGEMENT events (ADR 0019), each
once, and read back through a batched loader."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from redis.asyncio import Redis
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from app.ids import encode_id
from app.stores.postgres.tables import agent, campaign, outbox
from app.stores.redis import keys
from tests.support import CHARGE, TenantClient, count_redis_round_trips, error_codes, start_tasks

RECORD = """
mutation($id: ID!, $kind: EngagementKind!, $count: Int!) {
  recordEngagement(input: {campaignId: $id, kind: $kind, count: $count}) {
    engagement { impressions clicks likes shares comments }
  }
}
"""
CREATE = 'mutation { createCampaign(input: {name: "Counted"}) { campaign { id } } }'
SHARES = "query($id: ID!) { campaign(id: $id) { engagement { shares } } }"


async def new_campaign(tenant: TenantClient) -> str:
    data = await tenant.data(CREATE)
    campaign_id: str = data["createCampaign"]["campaign"]["id"]
    return campaign_id


def redis_of(app: Starlette) -> Redis:
    client: Redis = app.state.stores.redis
    return client


async def test_record_engagement_increments_and_the_campaign_shows_it(tenant: TenantClient) -> None:
    campaign_id = await new_campaign(tenant)
    await tenant.data(RECORD, {"id": campaign_id, "kind": "CLICK", "count": 3})
    data = await tenant.data(RECORD, {"id": campaign_id, "kind": "LIKE", "count": 2})
    assert data["recordEngagement"]["engagement"] == {
        "impressions": 0,
        "clicks": 3,
        "likes": 2,
        "shares": 0,
        "comments": 0,
    }
    seen = await tenant.data(
        "query($id: ID!) { campaign(id: $id) { engagement { clicks likes } } }", {"id": campaign_id}
    )
    assert seen["campaign"]["engagement"] == {"clicks": 3, "likes": 2}


async def test_concurrent_increments_lose_nothing(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    campaign_id = await new_campaign(tenant)
    writers = 60
    results = await asyncio.gather(
        *(
            tenant.gql(RECORD, {"id": campaign_id, "kind": "IMPRESSION", "count": i % 5 + 1})
            for i in range(writers)
        )
    )
    assert all(not r.get("errors") for r in results)
    expected = sum(i % 5 + 1 for i in range(writers))
    seen = await tenant.data(
        "query($id: ID!) { campaign(id: $id) { engagement { impressions } } }", {"id": campaign_id}
    )
    assert seen["campaign"]["engagement"]["impressions"] == expected
    async with engine.connect() as conn:
        events = (
            await conn.execute(
                select(func.count())
                .select_from(outbox)
                .where(outbox.c.tenant_id == tenant.id, outbox.c.event_type == "ENGAGEMENT")
            )
        ).scalar_one()
    assert events == writers


async def test_non_positive_or_absurd_counts_are_rejected_and_change_nothing(
    tenant: TenantClient,
) -> None:
    campaign_id = await new_campaign(tenant)
    for count in (0, -5, 1_000_001, 2**31 - 1):
        body = await tenant.gql(RECORD, {"id": campaign_id, "kind": "SHARE", "count": count})
        assert error_codes(body) == ["BAD_USER_INPUT"], body
    seen = await tenant.data(
        "query($id: ID!) { campaign(id: $id) { engagement { shares } } }", {"id": campaign_id}
    )
    assert seen["campaign"]["engagement"]["shares"] == 0


async def test_counters_live_under_the_tenant_prefix_and_other_tenants_cannot_touch_them(
    tenant: TenantClient, other_tenant: TenantClient, app: Starlette
) -> None:
    campaign_id = await new_campaign(tenant)
    await tenant.data(RECORD, {"id": campaign_id, "kind": "COMMENT", "count": 4})
    body = await other_tenant.gql(RECORD, {"id": campaign_id, "kind": "COMMENT", "count": 100})
    assert error_codes(body) == ["NOT_FOUND"]
    matches = [
        k async for k in redis_of(app).scan_iter(match=f"{keys.tenant_prefix(tenant.id)}campaign:*")
    ]
    assert len(matches) == 1
    assert await redis_of(app).hget(matches[0], "comments") == b"4"
    foreign = [
        k
        async for k in redis_of(app).scan_iter(
            match=f"{keys.tenant_prefix(other_tenant.id)}campaign:*"
        )
    ]
    assert foreign == []


async def test_counters_for_a_page_cost_one_redis_round_trip_for_5_or_50_campaigns(
    tenant: TenantClient, engine: AsyncEngine, app: Starlette
) -> None:
    ids = [uuid.uuid4() for _ in range(50)]
    agent_ids = [uuid.uuid4() for _ in range(50)]
    async with engine.begin() as conn:
        await conn.execute(
            insert(campaign),
            [{"id": c, "tenant_id": tenant.id, "name": f"c{i}"} for i, c in enumerate(ids)],
        )
        await conn.execute(
            insert(agent),
            [{"id": a, "tenant_id": tenant.id, "name": f"a{i}"} for i, a in enumerate(agent_ids)],
        )
    await redis_of(app).hset(keys.campaign_engagement(tenant.id, ids[0]), "clicks", 9)
    await start_tasks(redis_of(app), tenant.id, agent_ids[0], 2)
    query = """query($n: Int!) {
      campaigns(first: $n) { edges { node { id engagement { clicks } } } }
      agents(first: $n) { edges { node { id activeTasks } } } }"""
    trips = {}
    for n in (5, 50):
        with count_redis_round_trips() as log:
            data = await tenant.data(query, {"n": n})
        trips[n] = log.count
        assert len(data["campaigns"]["edges"]) == n
    clicks = {
        e["node"]["id"]: e["node"]["engagement"]["clicks"] for e in data["campaigns"]["edges"]
    }
    tasks = {e["node"]["id"]: e["node"]["activeTasks"] for e in data["agents"]["edges"]}
    assert clicks[encode_id("Campaign", ids[0])] == 9
    assert sum(clicks.values()) == 9
    assert tasks[encode_id("Agent", agent_ids[0])] == 2
    assert sum(tasks.values()) == 2
    assert trips[5] == trips[50] == 2 + CHARGE  # one pipeline per loader


async def test_while_a_reconcile_measures_the_tenant_the_answer_counts_the_increment_and_the_relay_counts_it_after(
    tenant: TenantClient, app: Starlette
) -> None:
    campaign_id = await new_campaign(tenant)
    await tenant.data(RECORD, {"id": campaign_id, "kind": "SHARE", "count": 2})
    fence = keys.engagement_fence(tenant.id)
    await redis_of(app).set(fence, "a reconcile's token", ex=60)
    try:
        data = await tenant.data(RECORD, {"id": campaign_id, "kind": "SHARE", "count": 3})
        assert data["recordEngagement"]["engagement"]["shares"] == 5
        seen = await tenant.data(SHARES, {"id": campaign_id})
        assert seen["campaign"]["engagement"]["shares"] == 2, "counted under the fence"
    finally:
        await redis_of(app).delete(fence)
    # The app's relay counts it once the fence is gone, at its next wake-up: a commit (this
    # one), or its idle poll.
    await tenant.data(CREATE)

    async def shares() -> int:
        seen = await tenant.data(SHARES, {"id": campaign_id})
        count: int = seen["campaign"]["engagement"]["shares"]
        return count

    async with asyncio.timeout(10):
        while await shares() != 5:  # noqa: ASYNC110 - polls the app's relay
            await asyncio.sleep(0.02)


KEYED = """
mutation($id: ID!, $kind: EngagementKind!, $count: Int!, $key: String) {
  recordEngagement(input: {campaignId: $id, kind: $kind, count: $count, idempotencyKey: $key}) {
    engagement { clicks likes }
  }
}
"""


async def engagement_events(engine: AsyncEngine, tenant_id: uuid.UUID, campaign_id: str) -> int:
    from app.ids import decode_id

    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    select(func.count())
                    .select_from(outbox)
                    .where(
                        outbox.c.tenant_id == tenant_id,
                        outbox.c.event_type == "ENGAGEMENT",
                        outbox.c.aggregate_id == decode_id(campaign_id, "Campaign"),
                    )
                )
            ).scalar_one()
        )


async def test_a_retried_increment_with_its_key_counts_once(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    campaign_id = await new_campaign(tenant)
    variables = {"id": campaign_id, "kind": "CLICK", "count": 4, "key": "tap-1"}
    first = await tenant.data(KEYED, variables)
    again = await tenant.data(KEYED, variables)
    assert first["recordEngagement"]["engagement"]["clicks"] == 4
    assert again["recordEngagement"]["engagement"]["clicks"] == 4
    assert await engagement_events(engine, tenant.id, campaign_id) == 1
    # Another key, or none, is another increment.
    await tenant.data(KEYED, {**variables, "key": "tap-2"})
    await tenant.data(KEYED, {**variables, "key": None})
    seen = await tenant.data(SHARES.replace("shares", "clicks"), {"id": campaign_id})
    assert seen["campaign"]["engagement"]["clicks"] == 12


async def test_concurrent_retries_of_one_increment_count_it_once(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    campaign_id = await new_campaign(tenant)
    variables = {"id": campaign_id, "kind": "LIKE", "count": 3, "key": "burst"}
    bodies = await asyncio.gather(*(tenant.gql(KEYED, variables) for _ in range(15)))
    assert all(not b.get("errors") for b in bodies), [b.get("errors") for b in bodies]
    assert await engagement_events(engine, tenant.id, campaign_id) == 1
    seen = await tenant.data(SHARES.replace("shares", "likes"), {"id": campaign_id})
    assert seen["campaign"]["engagement"]["likes"] == 3


async def test_a_key_reused_for_another_increment_is_refused_and_keys_are_per_tenant(
    tenant: TenantClient, other_tenant: TenantClient, engine: AsyncEngine
) -> None:
    campaign_id = await new_campaign(tenant)
    await tenant.data(KEYED, {"id": campaign_id, "kind": "CLICK", "count": 1, "key": "k"})
    for changed in ({"count": 2}, {"kind": "LIKE"}):
        body = await tenant.gql(
            KEYED, {"id": campaign_id, "kind": "CLICK", "count": 1, "key": "k", **changed}
        )
        assert error_codes(body) == ["IDEMPOTENCY_KEY_REUSED"], body
    assert await engagement_events(engine, tenant.id, campaign_id) == 1
    theirs = await new_campaign(other_tenant)
    body = await other_tenant.gql(KEYED, {"id": theirs, "kind": "LIKE", "count": 9, "key": "k"})
    assert not body.get("errors"), body


async def test_a_key_is_free_again_after_its_window_and_then_pruned(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    from sqlalchemy import text

    from app.commands.engagement import KEY_WINDOW, prune_engagement_keys

    campaign_id = await new_campaign(tenant)
    variables = {"id": campaign_id, "kind": "CLICK", "count": 1, "key": "daily"}
    await tenant.data(KEYED, variables)
    async with engine.begin() as conn:  # as if written a window and a minute ago
        await conn.execute(
            text(
                "UPDATE engagement_key SET created_at = now() - CAST(:age AS interval) "
                "WHERE tenant_id = :t AND key = 'daily'"
            ),
            {"age": KEY_WINDOW + timedelta(minutes=1), "t": tenant.id},
        )
    await tenant.data(KEYED, {**variables, "count": 5})  # a new increment, even with new input
    assert await engagement_events(engine, tenant.id, campaign_id) == 2
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE engagement_key SET created_at = now() - CAST(:age AS interval) WHERE tenant_id = :t"
            ),
            {"age": KEY_WINDOW + timedelta(minutes=1), "t": tenant.id},
        )
    assert await prune_engagement_keys(engine) >= 1
    async with engine.connect() as conn:
        left = await conn.scalar(
            text("SELECT count(*) FROM engagement_key WHERE tenant_id = :t"), {"t": tenant.id}
        )
    assert left == 0
