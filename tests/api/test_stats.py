"""Dashboard aggregates: campaignStats over a tenant's campaigns and Agent.stats per agent,
each a constant number of store calls however many campaigns or agents there are."""

from __future__ import annotations

import uuid
from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import Role
from tests.support import (
    CHARGE,
    TenantClient,
    count_redis_round_trips,
    count_statements,
    error_codes,
    new_tenant,
)

CREATE = """mutation($n: String!, $b: Decimal!, $c: String!) {
  createCampaign(input: {name: $n, budget: $b, currency: $c}) { campaign { id } } }"""
STATUS = """mutation($id: ID!, $s: CampaignStatus!) {
  setCampaignStatus(input: {id: $id, status: $s}) { campaign { id } } }"""
SPEND = """mutation($c: ID!, $amount: Decimal!, $agent: ID) { recordTransaction(input: {
  campaignId: $c, kind: SPEND, amount: $amount, idempotencyKey: "%s", agentId: $agent}) {
  transaction { id } } }"""
ENGAGE = """mutation($id: ID!, $n: Int!) { recordEngagement(input: {campaignId: $id, kind: CLICK,
  count: $n}) { engagement { clicks } } }"""
STATS = """query($filter: CampaignFilter) { campaignStats(filter: $filter) {
  total byStatus { status count } totalBudget { amount currency }
  totalSpent { amount currency } remainingBudget { amount currency }
  engagement { clicks likes } } }"""


async def campaign(tenant: TenantClient, name: str, budget: str, currency: str = "USD") -> str:
    data = await tenant.data(CREATE, {"n": name, "b": budget, "c": currency})
    campaign_id: str = data["createCampaign"]["campaign"]["id"]
    return campaign_id


async def spend(
    tenant: TenantClient, campaign_id: str, amount: str, agent: str | None = None
) -> None:
    await tenant.data(
        SPEND % uuid.uuid4().hex, {"c": campaign_id, "amount": amount, "agent": agent}
    )


def by_status(stats: dict[str, Any]) -> dict[str, int]:
    return {s["status"]: s["count"] for s in stats["byStatus"] if s["count"]}


async def test_campaign_stats_count_sum_per_currency_and_follow_the_filter(
    engine: AsyncEngine, http: AsyncClient
) -> None:
    tenant = await new_tenant(engine, http)
    spring = await campaign(tenant, "Spring shoes", "1000")
    summer = await campaign(tenant, "Summer shoes", "500")
    tokyo = await campaign(tenant, "Tokyo launch", "200000", "JPY")
    await tenant.data(STATUS, {"id": spring, "s": "ACTIVE"})
    await spend(tenant, spring, "250.50")
    await spend(tenant, tokyo, "1500")
    await tenant.data(ENGAGE, {"id": spring, "n": 7})
    await tenant.data(ENGAGE, {"id": summer, "n": 3})

    stats = (await tenant.data(STATS, role=Role.VIEWER))["campaignStats"]
    assert stats["total"] == 3
    assert by_status(stats) == {"ACTIVE": 1, "DRAFT": 2}
    assert len(stats["byStatus"]) == 5  # every status, zeros included
    assert stats["totalBudget"] == [
        {"amount": "200000.00", "currency": "JPY"},
        {"amount": "1500.00", "currency": "USD"},
    ]
    assert stats["totalSpent"] == [
        {"amount": "1500.00", "currency": "JPY"},
        {"amount": "250.50", "currency": "USD"},
    ]
    assert stats["remainingBudget"] == [
        {"amount": "198500.00", "currency": "JPY"},
        {"amount": "1249.50", "currency": "USD"},
    ]
    assert stats["engagement"] == {"clicks": 10, "likes": 0}

    shoes = (await tenant.data(STATS, {"filter": {"search": "shoes"}}))["campaignStats"]
    assert shoes["total"] == 2 and shoes["engagement"]["clicks"] == 10
    active = (await tenant.data(STATS, {"filter": {"status": ["ACTIVE"]}}))["campaignStats"]
    assert active["total"] == 1 and active["totalSpent"] == [
        {"amount": "250.50", "currency": "USD"}
    ]
    nothing = (await tenant.data(STATS, {"filter": {"search": "zzz"}}))["campaignStats"]
    assert nothing["total"] == 0 and nothing["totalBudget"] == []
    assert nothing["engagement"] == {"clicks": 0, "likes": 0}


async def test_campaign_stats_cost_one_statement_and_one_redis_command_at_any_size(
    engine: AsyncEngine, http: AsyncClient
) -> None:
    tenant = await new_tenant(engine, http)
    calls = []
    for size in (5, 50):
        while (await tenant.data(STATS))["campaignStats"]["total"] < size:
            await campaign(tenant, "C", "10")
        with count_statements(engine) as sql, count_redis_round_trips() as redis:
            assert (await tenant.data(STATS))["campaignStats"]["total"] == size
        calls.append((sql.count, redis.count))
    assert calls == [(1, 1 + CHARGE), (1, 1 + CHARGE)], calls


AGENT_STATS = """query($first: Int!) { agents(first: $first) { edges { node {
  stats { campaignsByStatus { status count } spent { amount currency } memories } } } } }"""


async def test_agent_stats_batch_across_agents(engine: AsyncEngine, http: AsyncClient) -> None:
    tenant = await new_tenant(engine, http)
    agents = []
    for i in range(50):
        data = await tenant.data(
            f'mutation {{ createAgent(input: {{name: "A{i}"}}) {{ agent {{ id }} }} }}'
        )
        agents.append(data["createAgent"]["agent"]["id"])
    busy = await campaign(tenant, "Busy", "100")
    assign = """mutation($c: ID!, $a: [ID!]!) { assignAgents(input: {campaignId: $c, agentIds: $a}) {
      campaign { id } } }"""
    await tenant.data(assign, {"c": busy, "a": agents[:2]})
    await tenant.data(STATUS, {"id": busy, "s": "ACTIVE"})
    await spend(tenant, busy, "12.34", agents[0])
    memory = """mutation($a: ID!) { addAgentMemory(input: {agentId: $a, text: "Prefers short copy"}) {
      memory { id } } }"""
    body = await tenant.gql(memory, {"a": agents[0]})
    assert not body.get("errors") or error_codes(body) == ["STORE_UNAVAILABLE"], body

    first = (await tenant.data(AGENT_STATS, {"first": 1}))["agents"]["edges"][0]["node"]["stats"]
    assert {s["status"]: s["count"] for s in first["campaignsByStatus"] if s["count"]} == {
        "ACTIVE": 1
    }
    assert first["spent"] == [{"amount": "12.34", "currency": "USD"}]
    assert first["memories"] == (0 if body.get("errors") else 1)
    counts = []
    for size in (5, 50):
        with count_statements(engine) as sql:
            data = await tenant.data(AGENT_STATS, {"first": size})
        assert len(data["agents"]["edges"]) == size
        counts.append(sql.count)
    assert counts == [4, 4], counts  # the page, then one per part of the stats
