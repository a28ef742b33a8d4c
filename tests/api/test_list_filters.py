"""List filters of agents, campaigns, campaignStats, the audit log and a ledger: an empty list is the empty IN-list
and matches nothing (as Hasura's ``_in: []`` and PostGraphile's ``in: []`` do), answered
without a statement; null or no list is no filter; a list of values still filters."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import Role
from loaders.postgres.pages import ListFilter, filter_where
from tests.support import TenantClient, count_statements

EMPTY_PAGE = {
    "totalCount": 0,
    "pageInfo": {"hasNextPage": False, "startCursor": None, "endCursor": None},
    "edges": [],
}


def listing(field: str, filter_type: str) -> str:
    return f"""query($filter: {filter_type}, $after: String) {{
  {field}(filter: $filter, after: $after, orderBy: {{field: NAME}}) {{
    totalCount
    pageInfo {{ hasNextPage startCursor endCursor }}
    edges {{ node {{ name }} }} }} }}"""


AGENTS = listing("agents", "AgentFilter")
CAMPAIGNS = listing("campaigns", "CampaignFilter")
STATS = """query($filter: CampaignFilter) { campaignStats(filter: $filter) {
  total byStatus { status count } totalBudget { amount currency } engagement { clicks } } }"""


def names(page: dict[str, Any]) -> list[str]:
    return [edge["node"]["name"] for edge in page["edges"]]


async def agents_of_each_status(tenant: TenantClient) -> None:
    for name, status in (("a-active", "ACTIVE"), ("b-paused", "PAUSED"), ("c-retired", "RETIRED")):
        await tenant.data(
            "mutation($n: String!, $s: AgentStatus!) { createAgent(input: "
            "{name: $n, status: $s}) { agent { id } } }",
            {"n": name, "s": status},
        )


async def draft_and_active_campaigns(tenant: TenantClient) -> None:
    for name in ("a-draft", "b-active"):
        data = await tenant.data(
            'mutation($n: String!) { createCampaign(input: {name: $n, budget: "10"}) '
            "{ campaign { id } } }",
            {"n": name},
        )
        if name == "b-active":
            await tenant.data(
                "mutation($id: ID!) { setCampaignStatus(input: {id: $id, status: ACTIVE}) "
                "{ campaign { id } } }",
                {"id": data["createCampaign"]["campaign"]["id"]},
            )


async def test_agents_status_empty_matches_none_null_all_and_a_list_those(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    await agents_of_each_status(tenant)
    with count_statements(engine) as sql:
        empty = await tenant.data(AGENTS, {"filter": {"status": []}})
    assert empty["agents"] == EMPTY_PAGE
    assert sql.count == 0
    everyone = ["a-active", "b-paused", "c-retired"]
    for absent in (None, {}, {"status": None}):
        assert names((await tenant.data(AGENTS, {"filter": absent}))["agents"]) == everyone
    some = (await tenant.data(AGENTS, {"filter": {"status": ["PAUSED", "RETIRED"]}}))["agents"]
    assert (names(some), some["totalCount"]) == (["b-paused", "c-retired"], 2)


async def test_agents_status_empty_past_a_cursor_is_an_empty_last_page(
    tenant: TenantClient,
) -> None:
    await agents_of_each_status(tenant)
    first = (await tenant.data(AGENTS, {}))["agents"]
    after = first["pageInfo"]["startCursor"]
    later = await tenant.data(AGENTS, {"filter": {"status": []}, "after": after})
    assert later["agents"] == EMPTY_PAGE


async def test_campaigns_status_empty_matches_none_null_all_and_a_list_those(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    await draft_and_active_campaigns(tenant)
    with count_statements(engine) as sql:
        empty = await tenant.data(CAMPAIGNS, {"filter": {"status": []}})
    assert empty["campaigns"] == EMPTY_PAGE
    assert sql.count == 0
    for absent in (None, {}, {"status": None}):
        page = (await tenant.data(CAMPAIGNS, {"filter": absent}))["campaigns"]
        assert names(page) == ["a-draft", "b-active"]
    active = (await tenant.data(CAMPAIGNS, {"filter": {"status": ["ACTIVE"]}}))["campaigns"]
    assert (names(active), active["totalCount"]) == (["b-active"], 1)


async def test_campaign_stats_status_empty_count_none_null_all_and_a_list_those(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    await draft_and_active_campaigns(tenant)
    with count_statements(engine) as sql:
        empty = (await tenant.data(STATS, {"filter": {"status": []}}))["campaignStats"]
    assert sql.count == 0
    assert empty["total"] == 0
    assert all(s["count"] == 0 for s in empty["byStatus"])
    assert empty["totalBudget"] == []
    assert empty["engagement"] == {"clicks": 0}
    for absent in (None, {}, {"status": None}):
        assert (await tenant.data(STATS, {"filter": absent}))["campaignStats"]["total"] == 2
    active = (await tenant.data(STATS, {"filter": {"status": ["ACTIVE"]}}))["campaignStats"]
    assert active["total"] == 1
    assert {s["status"]: s["count"] for s in active["byStatus"]}["ACTIVE"] == 1


def test_an_empty_status_tuple_reaching_sql_is_a_condition_not_no_filter() -> None:
    """Loaders that skip the short cut (campaignStats' reads filter_where directly) still
    match nothing: ``status = ANY('{}')`` is false for every row."""
    args: list[Any] = ["tenant"]
    where = filter_where(ListFilter(statuses=()), args)
    assert (where, args) == ("tenant_id = $1 AND status = ANY($2::text[])", ["tenant", []])
    assert filter_where(ListFilter(), ["tenant"]) == "tenant_id = $1"


AUDIT = """query($filter: AuditLogFilter) { auditLog(filter: $filter) {
  totalCount edges { node { action } } } }"""
TRANSACTIONS = """query($id: ID!, $filter: TransactionFilter) { campaign(id: $id) {
  transactions(filter: $filter) { totalCount edges { node { kind } } } } }"""


async def test_audit_actions_empty_matches_none_null_all_and_a_list_those(
    tenant: TenantClient,
) -> None:
    await draft_and_active_campaigns(tenant)  # two creations, one status change

    async def actions(given: dict[str, Any]) -> list[str]:
        found = await tenant.data(AUDIT, {"filter": given}, role=Role.ADMIN)
        return sorted(edge["node"]["action"] for edge in found["auditLog"]["edges"])

    assert await actions({"actions": []}) == []
    assert len(await actions({"actions": None})) == 3
    assert await actions({"actions": ["campaign.create"]}) == ["campaign.create"] * 2


async def test_transaction_kinds_empty_matches_none_null_all_and_a_list_those(
    tenant: TenantClient,
) -> None:
    data = await tenant.data(
        'mutation { createCampaign(input: {name: "ledger", budget: "100"}) { campaign { id } } }'
    )
    campaign_id = data["createCampaign"]["campaign"]["id"]
    for kind, amount in (("SPEND", "5"), ("ADJUSTMENT", "1")):
        await tenant.data(
            "mutation($c: ID!, $k: TransactionKind!, $a: Decimal!, $key: String!) { "
            "recordTransaction(input: {campaignId: $c, kind: $k, amount: $a, "
            "idempotencyKey: $key}) { transaction { id } } }",
            {"c": campaign_id, "k": kind, "a": amount, "key": kind},
            role=Role.ADMIN,
        )

    async def kinds(given: dict[str, Any]) -> list[str]:
        found = await tenant.data(TRANSACTIONS, {"id": campaign_id, "filter": given})
        return sorted(e["node"]["kind"] for e in found["campaign"]["transactions"]["edges"])

    assert await kinds({"kinds": []}) == []
    assert await kinds({"kinds": None}) == ["ADJUSTMENT", "SPEND"]
    assert await kinds({"kinds": ["SPEND"]}) == ["SPEND"]
