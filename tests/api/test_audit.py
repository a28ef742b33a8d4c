"""The audit trail, readable: the tenant's log for admins, and each campaign's and agent's
history for anyone of the tenant, newest first, showing what changed."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import Role
from tests.support import TenantClient, count_statements, error_codes, new_tenant

CREATE = """mutation($n: String!) { createCampaign(input: {name: $n, budget: "100"}) {
  campaign { id } } }"""
UPDATE = """mutation($id: ID!, $n: String!) { updateCampaign(input: {id: $id, name: $n}) {
  campaign { id } } }"""
STATUS = """mutation($id: ID!) { setCampaignStatus(input: {id: $id, status: ACTIVE}) {
  campaign { id } } }"""
CREATE_AGENT = 'mutation { createAgent(input: {name: "Audited"}) { agent { id } } }'
ASSIGN = """mutation($c: ID!, $a: ID!) { assignAgents(input: {campaignId: $c, agentIds: [$a]}) {
  campaign { id } } }"""
SPEND = """mutation($c: ID!, $k: String!) { recordTransaction(input: {campaignId: $c,
  kind: SPEND, amount: "5", idempotencyKey: $k}) { transaction { id } } }"""
HISTORY = """query($id: ID!, $first: Int, $after: String) { campaign(id: $id) {
  history(first: $first, after: $after) {
    totalCount
    edges { cursor node { id actor action entityType entityId occurredAt
      changes { field before after } } }
    pageInfo { hasNextPage endCursor }
  } } }"""
LOG = """query($first: Int, $after: String, $filter: AuditLogFilter) {
  auditLog(first: $first, after: $after, filter: $filter) {
    totalCount edges { node { action entityType entityId actor } }
    pageInfo { hasNextPage endCursor } } }"""


async def busy_campaign(tenant: TenantClient) -> tuple[str, str]:
    campaign_id = (await tenant.data(CREATE, {"n": "Before"}))["createCampaign"]["campaign"]["id"]
    await tenant.data(UPDATE, {"id": campaign_id, "n": "After"})
    await tenant.data(STATUS, {"id": campaign_id})
    agent_id = (await tenant.data(CREATE_AGENT))["createAgent"]["agent"]["id"]
    await tenant.data(ASSIGN, {"c": campaign_id, "a": agent_id})
    await tenant.data(SPEND, {"c": campaign_id, "k": uuid.uuid4().hex})
    return campaign_id, agent_id


async def test_a_campaigns_history_shows_every_change_to_it_newest_first(
    tenant: TenantClient,
) -> None:
    campaign_id, agent_id = await busy_campaign(tenant)
    data = await tenant.data(HISTORY, {"id": campaign_id}, role=Role.VIEWER)
    history = data["campaign"]["history"]
    actions = [e["node"]["action"] for e in history["edges"]]
    assert actions == [
        "ledger.spend",
        "campaign.assign_agent",
        "campaign.set_status",
        "campaign.update",
        "campaign.create",
    ]
    assert history["totalCount"] == 5
    entries = {e["node"]["action"]: e["node"] for e in history["edges"]}
    assert entries["campaign.update"]["changes"] == [
        {"field": "name", "before": "Before", "after": "After"}
    ]
    assert entries["campaign.set_status"]["changes"] == [
        {"field": "status", "before": "DRAFT", "after": "ACTIVE"}
    ]
    assert entries["campaign.assign_agent"]["entityId"] == agent_id
    assert entries["campaign.update"]["entityId"] == campaign_id
    created = {c["field"]: c for c in entries["campaign.create"]["changes"]}
    assert created["name"] == {"field": "name", "before": None, "after": "Before"}
    assert created["budget"]["after"] == "100.00"
    assert "tenantId" not in created and "updatedAt" not in created
    spend = {c["field"]: c["after"] for c in entries["ledger.spend"]["changes"]}
    assert spend["kind"] == "SPEND" and "fingerprint" not in spend
    assert all(e["node"]["actor"] == "test-editor" for e in history["edges"])


async def test_history_pages_with_cursors_and_refuses_garbage(tenant: TenantClient) -> None:
    campaign_id, _ = await busy_campaign(tenant)
    first = (await tenant.data(HISTORY, {"id": campaign_id, "first": 2}))["campaign"]["history"]
    assert first["pageInfo"]["hasNextPage"] is True
    rest = await tenant.data(
        HISTORY, {"id": campaign_id, "first": 10, "after": first["pageInfo"]["endCursor"]}
    )
    page = rest["campaign"]["history"]
    assert [e["node"]["action"] for e in page["edges"]] == [
        "campaign.set_status",
        "campaign.update",
        "campaign.create",
    ]
    assert page["pageInfo"]["hasNextPage"] is False
    for garbage in ("nope", "YXVkaXQ6LTE", "YXVkaXQ6eA", "Y2FtcGFpZ246MQ"):
        body = await tenant.gql(HISTORY, {"id": campaign_id, "after": garbage})
        assert error_codes(body) == ["BAD_USER_INPUT"], (garbage, body)


async def test_an_agents_history_shows_its_own_changes(tenant: TenantClient) -> None:
    agent_id = (await tenant.data(CREATE_AGENT))["createAgent"]["agent"]["id"]
    rename = """mutation($id: ID!) { updateAgent(input: {id: $id, name: "Renamed"}) {
      agent { id } } }"""
    await tenant.data(rename, {"id": agent_id})
    query = "query($id: ID!) { agent(id: $id) { history { edges { node { action changes { field after } } } } } }"
    data = await tenant.data(query, {"id": agent_id}, role=Role.VIEWER)
    edges = data["agent"]["history"]["edges"]
    assert [e["node"]["action"] for e in edges] == ["agent.update", "agent.create"]
    assert edges[0]["node"]["changes"] == [{"field": "name", "after": "Renamed"}]


async def test_the_audit_log_is_for_admins_and_filters(
    engine: AsyncEngine, http: AsyncClient
) -> None:
    tenant = await new_tenant(engine, http)
    campaign_id, agent_id = await busy_campaign(tenant)
    for role in (Role.VIEWER, Role.EDITOR):
        body = await tenant.gql(LOG, role=role)
        assert error_codes(body) == ["FORBIDDEN"], body
    everything = (await tenant.data(LOG, {"first": 100}, role=Role.ADMIN))["auditLog"]
    # busy_campaign: create, update, status, agent create, assign, spend
    assert everything["totalCount"] == 6
    spends = await tenant.data(LOG, {"filter": {"actions": ["ledger.spend"]}}, role=Role.ADMIN)
    assert [e["node"]["entityType"] for e in spends["auditLog"]["edges"]] == ["ledger_transaction"]
    about_campaign = await tenant.data(
        LOG, {"filter": {"entityId": campaign_id, "entityType": "campaign"}}, role=Role.ADMIN
    )
    assert about_campaign["auditLog"]["totalCount"] == 3
    about_agent = await tenant.data(LOG, {"filter": {"entityId": agent_id}}, role=Role.ADMIN)
    assert {e["node"]["action"] for e in about_agent["auditLog"]["edges"]} == {
        "agent.create",
        "campaign.assign_agent",
    }
    nobody = await tenant.data(LOG, {"filter": {"actor": "someone-else"}}, role=Role.ADMIN)
    assert nobody["auditLog"]["totalCount"] == 0
    later = await tenant.data(LOG, {"filter": {"from": "2999-01-01T00:00:00Z"}}, role=Role.ADMIN)
    assert later["auditLog"]["edges"] == []
    two = (await tenant.data(LOG, {"first": 2}, role=Role.ADMIN))["auditLog"]
    more = await tenant.data(
        LOG, {"first": 10, "after": two["pageInfo"]["endCursor"]}, role=Role.ADMIN
    )
    assert len(more["auditLog"]["edges"]) == 4


@pytest.mark.parametrize(
    "bad",
    [
        {"entityType": "secrets"},
        {"entityId": "not-an-id"},
        {"from": "2030-01-01T00:00:00Z", "to": "2020-01-01T00:00:00Z"},
        {"actions": [f"a{i}" for i in range(21)]},
    ],
)
async def test_a_bad_audit_filter_is_bad_user_input(
    tenant: TenantClient, bad: dict[str, Any]
) -> None:
    body = await tenant.gql(LOG, {"filter": bad}, role=Role.ADMIN)
    assert error_codes(body) == ["BAD_USER_INPUT"], body


@pytest.mark.parametrize(
    ("moment", "says"),
    [
        ("2030-01-01T00:00:00", "'from' must carry a time zone offset"),
        ("0001-01-01T00:00:00+14:00", "'from' is out of range"),  # year 0 in UTC
        ("9999-12-31T23:59:59-14:00", "'from' is out of range"),  # year 10000 in UTC
    ],
)
async def test_a_filter_time_without_a_zone_or_beyond_utcs_years_says_which(
    tenant: TenantClient, moment: str, says: str
) -> None:
    body = await tenant.gql(LOG, {"filter": {"from": moment}}, role=Role.ADMIN)
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert body["errors"][0]["message"].startswith(says), body


async def test_another_tenants_changes_never_appear(
    tenant: TenantClient, other_tenant: TenantClient
) -> None:
    theirs, _ = await busy_campaign(other_tenant)
    mine = await tenant.data(LOG, {"first": 100, "filter": {"entityId": theirs}}, role=Role.ADMIN)
    assert mine["auditLog"]["totalCount"] == 0
    assert (await tenant.data(HISTORY, {"id": theirs}))["campaign"] is None


async def test_the_log_stays_append_only(tenant: TenantClient, engine: AsyncEngine) -> None:
    await busy_campaign(tenant)
    for statement in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(text(f"{statement} WHERE tenant_id = :t"), {"t": tenant.id})


async def test_histories_of_5_and_50_campaigns_cost_the_same_statements(
    engine: AsyncEngine, http: AsyncClient
) -> None:
    tenant = await new_tenant(engine, http)
    for i in range(50):
        campaign_id = (await tenant.data(CREATE, {"n": f"C{i}"}))["createCampaign"]["campaign"][
            "id"
        ]
        if i % 3 == 0:
            await tenant.data(UPDATE, {"id": campaign_id, "n": f"C{i}!"})
    query = """query($first: Int!) { campaigns(first: $first) { edges { node {
      history(first: 5) { totalCount edges { node { action changes { field } } } } } } } }"""
    counts = []
    for first in (5, 50):
        with count_statements(engine) as sql:
            data = await tenant.data(query, {"first": first})
        assert len(data["campaigns"]["edges"]) == first
        counts.append(sql.count)
    assert counts == [3, 3], counts  # the page, the histories, their counts
