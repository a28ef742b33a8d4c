"""Campaigns: lifecycle, membership in both directions, and the events each change emits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.stores.postgres.tables import outbox
from tests.support import TenantClient, error_codes

CREATE_CAMPAIGN = """
mutation($input: CreateCampaignInput!) {
  createCampaign(input: $input) { campaign { id name goal status budget startsAt endsAt } }
}
"""
CREATE_AGENT = "mutation($name: String!) { createAgent(input: {name: $name}) { agent { id } } }"
SET_STATUS = """
mutation($id: ID!, $status: CampaignStatus!) {
  setCampaignStatus(input: {id: $id, status: $status}) { campaign { status } }
}
"""
ASSIGN = """
mutation($c: ID!, $a: [ID!]!) {
  assignAgents(input: {campaignId: $c, agentIds: $a}) {
    campaign { agents { totalCount edges { node { id } } } }
  }
}
"""
UNASSIGN = """
mutation($c: ID!, $a: ID!) {
  unassignAgent(input: {campaignId: $c, agentId: $a}) { campaign { agents { totalCount } } }
}
"""


async def new_campaign(tenant: TenantClient, **fields: Any) -> dict[str, Any]:
    data = await tenant.data(CREATE_CAMPAIGN, {"input": {"name": "Launch", **fields}})
    campaign: dict[str, Any] = data["createCampaign"]["campaign"]
    return campaign


async def new_agent(tenant: TenantClient, name: str = "Agent") -> str:
    data = await tenant.data(CREATE_AGENT, {"name": name})
    agent_id: str = data["createAgent"]["agent"]["id"]
    return agent_id


async def events(engine: AsyncEngine, tenant: TenantClient) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(outbox.c.event_type).where(outbox.c.tenant_id == tenant.id).order_by(outbox.c.id)
        )
        return [r.event_type for r in rows]


async def test_create_campaign_keeps_money_exact_and_dates_with_zone(tenant: TenantClient) -> None:
    campaign = await new_campaign(
        tenant,
        goal="Sell boots",
        budget="1234567.89",
        startsAt="2027-01-01T09:00:00+01:00",
        endsAt="2027-02-01T00:00:00Z",
    )
    assert campaign["budget"] == "1234567.89"
    assert campaign["status"] == "DRAFT"
    assert campaign["startsAt"].startswith("2027-01-01T08:00:00")
    assert campaign["goal"] == "Sell boots"


async def test_update_campaign_can_clear_dates_and_leaves_others(tenant: TenantClient) -> None:
    campaign = await new_campaign(
        tenant, startsAt="2027-01-01T00:00:00Z", endsAt="2027-02-01T00:00:00Z", budget="10"
    )
    data = await tenant.data(
        'mutation($id: ID!) { updateCampaign(input: {id: $id, endsAt: null, goal: "New"}) '
        "{ campaign { goal budget startsAt endsAt } } }",
        {"id": campaign["id"]},
    )
    updated = data["updateCampaign"]["campaign"]
    assert updated["goal"] == "New"
    assert updated["budget"] == "10.00"
    assert updated["endsAt"] is None
    assert updated["startsAt"] is not None


async def test_status_follows_the_lifecycle_and_rejects_invalid_moves(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    campaign = await new_campaign(tenant)
    for status in ("ACTIVE", "PAUSED", "ACTIVE", "COMPLETED", "ARCHIVED"):
        data = await tenant.data(SET_STATUS, {"id": campaign["id"], "status": status})
        assert data["setCampaignStatus"]["campaign"]["status"] == status
    body = await tenant.gql(SET_STATUS, {"id": campaign["id"], "status": "ACTIVE"})
    assert error_codes(body) == ["CONFLICT"]
    body = await tenant.gql(
        'mutation($id: ID!) { updateCampaign(input: {id: $id, name: "x"}) { campaign { id } } }',
        {"id": campaign["id"]},
    )
    assert error_codes(body) == ["CONFLICT"]
    assert (await events(engine, tenant)).count("STATUS_CHANGED") == 5


async def test_setting_the_same_status_twice_emits_one_event(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    campaign = await new_campaign(tenant)
    for _ in range(2):
        await tenant.data(SET_STATUS, {"id": campaign["id"], "status": "ACTIVE"})
    assert await events(engine, tenant) == ["CREATED", "STATUS_CHANGED"]


async def test_assign_and_unassign_agents_seen_from_both_sides(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    campaign = await new_campaign(tenant)
    a1, a2 = await new_agent(tenant, "one"), await new_agent(tenant, "two")
    data = await tenant.data(ASSIGN, {"c": campaign["id"], "a": [a1, a2, a1]})
    agents = data["assignAgents"]["campaign"]["agents"]
    assert agents["totalCount"] == 2
    assert [e["node"]["id"] for e in agents["edges"]] == [a1, a2]
    # Assigning again is idempotent: no new membership, no new event.
    await tenant.data(ASSIGN, {"c": campaign["id"], "a": [a1]})
    seen = await tenant.data(
        "query($id: ID!) { agent(id: $id) { campaigns { totalCount edges { node { id } } } } }",
        {"id": a1},
    )
    assert seen["agent"]["campaigns"]["edges"] == [{"node": {"id": campaign["id"]}}]
    data = await tenant.data(UNASSIGN, {"c": campaign["id"], "a": a1})
    assert data["unassignAgent"]["campaign"]["agents"]["totalCount"] == 1
    body = await tenant.gql(UNASSIGN, {"c": campaign["id"], "a": a1})
    assert error_codes(body) == ["NOT_FOUND"]
    assert (await events(engine, tenant))[-3:] == [
        "AGENT_ASSIGNED",
        "AGENT_ASSIGNED",
        "AGENT_UNASSIGNED",
    ]


async def test_retired_agents_cannot_be_assigned(tenant: TenantClient) -> None:
    campaign = await new_campaign(tenant)
    data = await tenant.data(
        'mutation { createAgent(input: {name: "Old", status: RETIRED}) { agent { id } } }'
    )
    body = await tenant.gql(
        ASSIGN, {"c": campaign["id"], "a": [data["createAgent"]["agent"]["id"]]}
    )
    assert error_codes(body) == ["CONFLICT"]


async def test_nested_agents_connection_pages_with_its_own_cursor(tenant: TenantClient) -> None:
    campaign = await new_campaign(tenant)
    ids = [await new_agent(tenant, f"n{i}") for i in range(5)]
    for agent_id in ids:  # one by one, so assignment order is the creation order
        await tenant.data(ASSIGN, {"c": campaign["id"], "a": [agent_id]})
    query = """query($id: ID!, $after: String) { campaign(id: $id) {
        agents(first: 2, after: $after) {
          pageInfo { hasNextPage endCursor } edges { node { id } } } } }"""
    seen: list[str] = []
    after = None
    while True:
        page = (await tenant.data(query, {"id": campaign["id"], "after": after}))["campaign"][
            "agents"
        ]
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == ids


async def test_campaign_list_filters_by_status(tenant: TenantClient) -> None:
    draft = await new_campaign(tenant, name="Draft one")
    active = await new_campaign(tenant, name="Active one")
    await tenant.data(SET_STATUS, {"id": active["id"], "status": "ACTIVE"})
    data = await tenant.data(
        "{ campaigns(filter: {status: [ACTIVE]}) { totalCount edges { node { id } } } }"
    )
    assert data["campaigns"]["edges"] == [{"node": {"id": active["id"]}}]
    data = await tenant.data('{ campaigns(filter: {search: "draft"}) { edges { node { id } } } }')
    assert data["campaigns"]["edges"] == [{"node": {"id": draft["id"]}}]
