"""Agents: create, update, list with filters, ordering and keyset pages."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.stores.postgres.tables import audit_log, outbox
from tests.support import TenantClient, error_codes

CREATE = """
mutation($input: CreateAgentInput!) {
  createAgent(input: $input) { agent { id name persona status createdAt updatedAt } }
}
"""
UPDATE = """
mutation($input: UpdateAgentInput!) { updateAgent(input: $input) { agent { id name persona status } } }
"""
LIST = """
query($first: Int, $after: String, $filter: AgentFilter, $orderBy: AgentOrder) {
  agents(first: $first, after: $after, filter: $filter, orderBy: $orderBy) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { name status } }
  }
}
"""


async def create(tenant: TenantClient, name: str, **fields: Any) -> dict[str, Any]:
    data = await tenant.data(CREATE, {"input": {"name": name, **fields}})
    agent: dict[str, Any] = data["createAgent"]["agent"]
    return agent


async def test_create_agent_returns_it_and_node_finds_it(tenant: TenantClient) -> None:
    agent = await create(tenant, "  Nova  ", persona="Writes haiku captions.")
    assert agent["name"] == "Nova"
    assert agent["status"] == "ACTIVE"
    found = await tenant.data(
        "query($id: ID!) { node(id: $id) { id ... on Agent { name persona } } }",
        {"id": agent["id"]},
    )
    assert found["node"] == {"id": agent["id"], "name": "Nova", "persona": "Writes haiku captions."}


async def test_update_agent_changes_only_given_fields_and_writes_audit_and_outbox(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    agent = await create(tenant, "Orion", persona="Original persona")
    data = await tenant.data(UPDATE, {"input": {"id": agent["id"], "status": "PAUSED"}})
    assert data["updateAgent"]["agent"] == {
        "id": agent["id"],
        "name": "Orion",
        "persona": "Original persona",
        "status": "PAUSED",
    }
    async with engine.connect() as conn:
        actions = [
            r.action
            for r in await conn.execute(
                select(audit_log.c.action)
                .where(audit_log.c.tenant_id == tenant.id)
                .order_by(audit_log.c.id)
            )
        ]
        events = [
            r.event_type
            for r in await conn.execute(
                select(outbox.c.event_type)
                .where(outbox.c.tenant_id == tenant.id)
                .order_by(outbox.c.id)
            )
        ]
        after = (
            await conn.execute(
                select(audit_log.c.before, audit_log.c.after).where(
                    audit_log.c.tenant_id == tenant.id, audit_log.c.action == "agent.update"
                )
            )
        ).one()
    assert actions == ["agent.create", "agent.update"]
    assert events == ["AGENT_CREATED", "AGENT_STATUS_CHANGED"]
    assert after.before["status"] == "ACTIVE" and after.after["status"] == "PAUSED"


async def test_update_of_unknown_agent_is_not_found(tenant: TenantClient) -> None:
    agent = await create(tenant, "Temp")
    other_id = agent["id"][:-4] + ("AAAA" if not agent["id"].endswith("AAAA") else "BBBB")
    body = await tenant.gql(UPDATE, {"input": {"id": other_id, "name": "x"}})
    assert error_codes(body) in (["NOT_FOUND"], ["BAD_USER_INPUT"])


async def test_pages_walk_every_agent_once_in_name_order(tenant: TenantClient) -> None:
    names = [f"agent-{i:02d}" for i in range(7)]
    for name in reversed(names):
        await create(tenant, name)
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        data = await tenant.data(LIST, {"first": 3, "after": after, "orderBy": {"field": "NAME"}})
        conn = data["agents"]
        assert conn["totalCount"] == 7
        seen += [e["node"]["name"] for e in conn["edges"]]
        assert conn["pageInfo"]["hasPreviousPage"] == (after is not None)
        pages += 1
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
        assert after == conn["edges"][-1]["cursor"]
    assert seen == names
    assert pages == 3


async def test_descending_order_and_cursor_continue_in_reverse(tenant: TenantClient) -> None:
    for name in ("a", "b", "c", "d"):
        await create(tenant, name)
    order = {"field": "NAME", "direction": "DESC"}
    first = await tenant.data(LIST, {"first": 2, "orderBy": order})
    cursor = first["agents"]["pageInfo"]["endCursor"]
    second = await tenant.data(LIST, {"first": 2, "after": cursor, "orderBy": order})
    assert [e["node"]["name"] for e in first["agents"]["edges"]] == ["d", "c"]
    assert [e["node"]["name"] for e in second["agents"]["edges"]] == ["b", "a"]
    assert second["agents"]["pageInfo"]["hasNextPage"] is False


async def test_filter_by_status_and_name_search(tenant: TenantClient) -> None:
    await create(tenant, "Sales Scout")
    await create(tenant, "Support Bot", status="PAUSED")
    await create(tenant, "100% Bot", status="RETIRED")
    by_status = await tenant.data(
        LIST, {"filter": {"status": ["PAUSED", "RETIRED"]}, "orderBy": {"field": "NAME"}}
    )
    assert [e["node"]["name"] for e in by_status["agents"]["edges"]] == ["100% Bot", "Support Bot"]
    assert by_status["agents"]["totalCount"] == 2
    by_name = await tenant.data(LIST, {"filter": {"search": "BOT"}, "orderBy": {"field": "NAME"}})
    assert by_name["agents"]["totalCount"] == 2
    wildcard = await tenant.data(LIST, {"filter": {"search": "%"}})
    assert [e["node"]["name"] for e in wildcard["agents"]["edges"]] == ["100% Bot"]


async def test_first_zero_returns_no_edges_but_counts(tenant: TenantClient) -> None:
    await create(tenant, "Solo")
    data = await tenant.data(LIST, {"first": 0})
    assert data["agents"]["edges"] == []
    assert data["agents"]["pageInfo"]["hasNextPage"] is True
    assert data["agents"]["totalCount"] == 1
