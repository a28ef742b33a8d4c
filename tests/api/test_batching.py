"""One request costs a bounded number of SQL statements, whatever the page size."""

from __future__ import annotations

import uuid

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app.stores.postgres.tables import agent, campaign, campaign_agent
from tests.support import TenantClient, count_statements

NESTED = """
query Dashboard($first: Int!) {
  campaigns(first: $first) {
    edges { node { name agents { edges { node { name campaigns { totalCount } } } } } }
  }
}
"""


async def _fill(engine: AsyncEngine, tenant: TenantClient, campaigns: int, agents: int) -> None:
    agent_ids = [uuid.uuid4() for _ in range(agents)]
    campaign_ids = [uuid.uuid4() for _ in range(campaigns)]
    async with engine.begin() as conn:
        await conn.execute(
            insert(agent),
            [
                {"id": a, "tenant_id": tenant.id, "name": f"agent {i}"}
                for i, a in enumerate(agent_ids)
            ],
        )
        await conn.execute(
            insert(campaign),
            [
                {"id": c, "tenant_id": tenant.id, "name": f"campaign {i}"}
                for i, c in enumerate(campaign_ids)
            ],
        )
        await conn.execute(
            insert(campaign_agent),
            [
                {"tenant_id": tenant.id, "campaign_id": c, "agent_id": agent_ids[(i + k) % agents]}
                for i, c in enumerate(campaign_ids)
                for k in range(3)
            ],
        )


async def test_nested_dashboard_costs_the_same_statements_for_5_and_50_campaigns(
    engine: AsyncEngine, tenant: TenantClient
) -> None:
    await _fill(engine, tenant, campaigns=50, agents=20)
    counts = {}
    for n in (5, 50):
        with count_statements(engine) as log:
            data = await tenant.data(NESTED, {"first": n})
        edges = data["campaigns"]["edges"]
        assert len(edges) == n
        assert all(len(e["node"]["agents"]["edges"]) == 3 for e in edges)
        counts[n] = log.count
    assert counts[5] == counts[50]
    # campaigns page, agents per campaign, campaign count per agent: one statement each.
    assert counts[50] == 3


async def test_totalcount_is_only_queried_when_asked_for(
    engine: AsyncEngine, tenant: TenantClient
) -> None:
    await _fill(engine, tenant, campaigns=3, agents=3)
    with count_statements(engine) as without:
        await tenant.data("{ campaigns { edges { node { id } } } }")
    with count_statements(engine) as with_count:
        await tenant.data("{ campaigns { totalCount edges { node { id } } } }")
    assert with_count.count == without.count + 1


async def test_same_list_asked_twice_by_aliases_is_fetched_once(
    engine: AsyncEngine, tenant: TenantClient
) -> None:
    await _fill(engine, tenant, campaigns=3, agents=3)
    with count_statements(engine) as log:
        data = await tenant.data(
            "{ a: campaigns(first: 2) { edges { node { id } } }"
            "  b: campaigns(first: 2) { edges { node { id } } } }"
        )
    assert data["a"] == data["b"]
    assert log.count == 1
