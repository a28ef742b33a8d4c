"""Tenant isolation: holding another tenant's ids gets a caller nothing, and changes nothing.

Tenant A's rows are made through the public mutations; tenant B then tries every read and
every write with A's global ids. Reads answer null or leave A's rows out; writes answer
NOT_FOUND and leave A's rows, audit trail and outbox exactly as they were (compared as whole
rows straight from PostgreSQL). Tokens are checked too: forged, expired or missing ones get
nothing at all, and the viewer role cannot write.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from httpx import Response
from sqlalchemy import Table, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import ALGORITHM, Role, mint_token
from app.ids import encode_id
from app.stores.postgres.tables import agent, audit_log, campaign, campaign_agent, outbox
from app.stores.redis import keys
from tests.support import SECRET, TenantClient, error_codes

CREATE_AGENT = """
mutation ($name: String!) { createAgent(input: {name: $name, persona: "p"}) { agent { id } } }
"""
CREATE_CAMPAIGN = """
mutation ($name: String!) {
  createCampaign(input: {name: $name, goal: "g", budget: "100.50"}) { campaign { id } }
}
"""
ASSIGN = """
mutation ($campaignId: ID!, $agentIds: [ID!]!) {
  assignAgents(input: {campaignId: $campaignId, agentIds: $agentIds}) { campaign { id } }
}
"""
UPDATE_AGENT = """
mutation ($id: ID!) { updateAgent(input: {id: $id, name: "taken", status: RETIRED}) { agent { id name } } }
"""
UPDATE_CAMPAIGN = """
mutation ($id: ID!) {
  updateCampaign(input: {id: $id, name: "taken", budget: "1.00", endsAt: null}) {
    campaign { id name }
  }
}
"""
SET_STATUS = """
mutation ($id: ID!) { setCampaignStatus(input: {id: $id, status: ACTIVE}) { campaign { id status } } }
"""
UNASSIGN = """
mutation ($campaignId: ID!, $agentId: ID!) {
  unassignAgent(input: {campaignId: $campaignId, agentId: $agentId}) { campaign { id } }
}
"""

AGENT_FIELDS = "id name persona agentStatus: status createdAt updatedAt"
CAMPAIGN_FIELDS = "id name goal campaignStatus: status budget startsAt endsAt createdAt updatedAt"


@dataclass(frozen=True)
class World:
    """Global ids of what each tenant made; campaigns[0] has both agents, campaigns[1] one."""

    agents: list[str]
    campaigns: list[str]


async def _create(client: TenantClient, label: str) -> World:
    agents = [
        (await client.data(CREATE_AGENT, {"name": f"{label} agent {i}"}))["createAgent"]["agent"][
            "id"
        ]
        for i in range(2)
    ]
    campaigns = [
        (await client.data(CREATE_CAMPAIGN, {"name": f"{label} campaign {i}"}))["createCampaign"][
            "campaign"
        ]["id"]
        for i in range(2)
    ]
    await client.data(ASSIGN, {"campaignId": campaigns[0], "agentIds": agents})
    await client.data(ASSIGN, {"campaignId": campaigns[1], "agentIds": agents[:1]})
    return World(agents=agents, campaigns=campaigns)


Rows = list[dict[str, Any]]

# The relay and the indexer mark outbox rows as they consume them, in the background; that
# bookkeeping is theirs, not a change to the tenant's data.
CONSUMER_COLUMNS = {"published_at", "indexed_at", "index_attempts", "index_next_at", "index_error"}


async def _rows(engine: AsyncEngine, table: Table, tenant_id: uuid.UUID) -> Rows:
    order = [table.c[name] for name in ("id", "campaign_id", "agent_id") if name in table.c]
    columns = [c for c in table.c if c.name not in CONSUMER_COLUMNS]
    async with engine.connect() as conn:
        result = await conn.execute(
            select(*columns).where(table.c.tenant_id == tenant_id).order_by(*order)
        )
        return [dict(row._mapping) for row in result]


async def snapshot(engine: AsyncEngine, tenant_id: uuid.UUID) -> dict[str, Rows]:
    """Every row the tenant owns in the tables a write could touch, in a stable order."""
    return {
        table.name: await _rows(engine, table, tenant_id)
        for table in (agent, campaign, campaign_agent, audit_log, outbox)
    }


async def trail_mentioning(engine: AsyncEngine, pks: list[uuid.UUID]) -> int:
    """Audit and outbox rows, of any tenant, about any of ``pks``."""
    async with engine.connect() as conn:
        audits = (
            await conn.execute(
                select(func.count()).select_from(audit_log).where(audit_log.c.entity_id.in_(pks))
            )
        ).scalar_one()
        events = (
            await conn.execute(
                select(func.count())
                .select_from(outbox)
                .where(
                    or_(
                        outbox.c.aggregate_id.in_(pks),
                        outbox.c.payload["campaignId"].astext.in_([str(p) for p in pks]),
                        outbox.c.payload["agentId"].astext.in_([str(p) for p in pks]),
                    )
                )
            )
        ).scalar_one()
    return int(audits) + int(events)


def pk_of(global_id: str) -> uuid.UUID:
    padded = global_id + "=" * (-len(global_id) % 4)
    return uuid.UUID(base64.urlsafe_b64decode(padded).decode().partition(":")[2])


def assert_clean(response: Response) -> dict[str, Any]:
    assert response.status_code != 500, response.text
    assert "Traceback" not in response.text
    body: dict[str, Any] = response.json()
    return body


# --- reads -----------------------------------------------------------------------------------


async def test_node_and_nodes_with_another_tenants_ids_return_null(
    tenant: TenantClient, other_tenant: TenantClient
) -> None:
    a = await _create(tenant, "Alpha")
    foreign = [*a.agents, *a.campaigns, encode_id("Tenant", tenant.id)]

    for global_id in foreign:
        data = await other_tenant.data(
            "query ($id: ID!) { node(id: $id) { id __typename } }", {"id": global_id}
        )
        assert data["node"] is None, global_id

    data = await other_tenant.data(
        "query ($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": foreign}
    )
    assert data["nodes"] == [None] * len(foreign)

    # Mixed with B's own ids, only B's resolve, in the order asked.
    b = await _create(other_tenant, "Bravo2")
    mixed = [b.agents[0], a.agents[0], b.campaigns[0], a.campaigns[0]]
    data = await other_tenant.data(
        "query ($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": mixed}
    )
    assert data["nodes"] == [{"id": b.agents[0]}, None, {"id": b.campaigns[0]}, None]

    # The same ids still resolve for their owner, so the nulls above are isolation, not typos.
    data = await tenant.data("query ($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": foreign})
    assert [n["id"] for n in data["nodes"]] == foreign


async def test_agent_and_campaign_by_another_tenants_id_return_null(
    tenant: TenantClient, other_tenant: TenantClient
) -> None:
    a = await _create(tenant, "Alpha")
    for agent_id in a.agents:
        data = await other_tenant.data(
            f"query ($id: ID!) {{ agent(id: $id) {{ {AGENT_FIELDS} }} }}", {"id": agent_id}
        )
        assert data["agent"] is None
    for campaign_id in a.campaigns:
        data = await other_tenant.data(
            f"query ($id: ID!) {{ campaign(id: $id) {{ {CAMPAIGN_FIELDS} }} }}",
            {"id": campaign_id},
        )
        assert data["campaign"] is None


async def test_lists_and_total_counts_contain_only_the_callers_own_rows(
    tenant: TenantClient, other_tenant: TenantClient
) -> None:
    a = await _create(tenant, "Alpha")
    b = await _create(other_tenant, "Bravo")
    query = """
    query ($search: String) {
      agents(first: 100, filter: {search: $search}) { totalCount edges { node { id name } } }
      campaigns(first: 100, filter: {search: $search}) { totalCount edges { node { id name } } }
    }
    """
    data = await other_tenant.data(query)
    assert {e["node"]["id"] for e in data["agents"]["edges"]} == set(b.agents)
    assert {e["node"]["id"] for e in data["campaigns"]["edges"]} == set(b.campaigns)
    assert data["agents"]["totalCount"] == len(b.agents)
    assert data["campaigns"]["totalCount"] == len(b.campaigns)

    # Searching for A's names finds nothing and counts nothing.
    data = await other_tenant.data(query, {"search": "Alpha"})
    assert data["agents"] == {"totalCount": 0, "edges": []}
    assert data["campaigns"] == {"totalCount": 0, "edges": []}
    data = await tenant.data(query, {"search": "Alpha"})
    assert data["agents"]["totalCount"] == len(a.agents)
    assert data["campaigns"]["totalCount"] == len(a.campaigns)

    # Every ordering and status filter, too.
    for order in ("CREATED_AT", "UPDATED_AT", "NAME"):
        for direction in ("ASC", "DESC"):
            data = await other_tenant.data(
                f"""{{
                  agents(first: 100, orderBy: {{field: {order}, direction: {direction}}},
                         filter: {{status: [ACTIVE, PAUSED, RETIRED]}}) {{
                    totalCount edges {{ node {{ id }} }}
                  }}
                  campaigns(first: 100, orderBy: {{field: {order}, direction: {direction}}},
                            filter: {{status: [DRAFT, ACTIVE, PAUSED, COMPLETED, ARCHIVED]}}) {{
                    totalCount edges {{ node {{ id }} }}
                  }}
                }}"""
            )
            seen = {e["node"]["id"] for e in data["agents"]["edges"]}
            seen |= {e["node"]["id"] for e in data["campaigns"]["edges"]}
            assert seen.isdisjoint(a.agents + a.campaigns)
            assert data["agents"]["totalCount"] == len(b.agents)
            assert data["campaigns"]["totalCount"] == len(b.campaigns)


async def test_nested_connections_never_reach_another_tenants_rows(
    tenant: TenantClient, other_tenant: TenantClient
) -> None:
    a = await _create(tenant, "Alpha")
    b = await _create(other_tenant, "Bravo")
    data = await other_tenant.data(
        # Pages larger than the few rows each tenant has; no larger, or the price of
        # three nested levels would pass what one operation may cost.
        """{
          campaigns(first: 10) { edges { node { id
            agents(first: 10) { totalCount edges { node { id
              campaigns(first: 10) { totalCount edges { node { id } } } } } } } } }
          agents(first: 10) { edges { node { id
            campaigns(first: 10) { totalCount edges { node { id } } } } } }
        }"""
    )
    reached: set[str] = set()
    for c in data["campaigns"]["edges"]:
        reached.add(c["node"]["id"])
        for ag in c["node"]["agents"]["edges"]:
            reached.add(ag["node"]["id"])
            reached |= {x["node"]["id"] for x in ag["node"]["campaigns"]["edges"]}
    for ag in data["agents"]["edges"]:
        reached.add(ag["node"]["id"])
        reached |= {x["node"]["id"] for x in ag["node"]["campaigns"]["edges"]}
    assert reached == set(b.agents + b.campaigns)
    first_campaign = data["campaigns"]["edges"][0]["node"]
    assert first_campaign["agents"]["totalCount"] == len(b.agents)

    # A's ids give B no entry point into A's graph either.
    data = await other_tenant.data(
        """query ($c: ID!, $a: ID!) {
          campaign(id: $c) { agents { totalCount edges { node { id } } } }
          agent(id: $a) { campaigns { totalCount edges { node { id } } } }
          node(id: $c) { ... on Campaign { agents { edges { node { id } } } } }
        }""",
        {"c": a.campaigns[0], "a": a.agents[0]},
    )
    assert data == {"campaign": None, "agent": None, "node": None}


async def test_a_cursor_from_another_tenants_page_only_pages_the_callers_own_rows(
    tenant: TenantClient, other_tenant: TenantClient
) -> None:
    a = await _create(tenant, "Alpha")
    b = await _create(other_tenant, "Bravo")
    data = await tenant.data("{ agents(first: 1) { pageInfo { endCursor } } }")
    cursor = data["agents"]["pageInfo"]["endCursor"]
    body = await other_tenant.gql(
        "query ($after: String) { agents(after: $after) { edges { node { id } } } }",
        {"after": cursor},
    )
    ids = {e["node"]["id"] for e in (body.get("data") or {}).get("agents", {}).get("edges", [])}
    assert ids <= set(b.agents)
    assert ids.isdisjoint(a.agents)


# --- writes ----------------------------------------------------------------------------------

# (name, query, variables built from (A's world, B's world)) -> each must be NOT_FOUND for B.
Case = tuple[str, str, Callable[[World, World], dict[str, Any]]]

FOREIGN_WRITES: list[Case] = [
    ("updateAgent", UPDATE_AGENT, lambda a, b: {"id": a.agents[0]}),
    ("updateCampaign", UPDATE_CAMPAIGN, lambda a, b: {"id": a.campaigns[0]}),
    ("setCampaignStatus", SET_STATUS, lambda a, b: {"id": a.campaigns[0]}),
    (
        "assignAgents",
        ASSIGN,
        lambda a, b: {"campaignId": a.campaigns[1], "agentIds": [b.agents[0]]},
    ),
    (
        "assignAgents",
        ASSIGN,
        lambda a, b: {"campaignId": b.campaigns[1], "agentIds": [a.agents[1]]},
    ),
    (
        "assignAgents",
        ASSIGN,
        lambda a, b: {"campaignId": b.campaigns[1], "agentIds": [b.agents[1], a.agents[1]]},
    ),
    (
        "unassignAgent",
        UNASSIGN,
        lambda a, b: {"campaignId": a.campaigns[0], "agentId": a.agents[0]},
    ),
    (
        "unassignAgent",
        UNASSIGN,
        lambda a, b: {"campaignId": b.campaigns[0], "agentId": a.agents[0]},
    ),
    (
        "unassignAgent",
        UNASSIGN,
        lambda a, b: {"campaignId": a.campaigns[0], "agentId": b.agents[0]},
    ),
]


@pytest.mark.parametrize(
    ("field", "query", "variables"),
    FOREIGN_WRITES,
    ids=[
        "updateAgent",
        "updateCampaign",
        "setCampaignStatus",
        "assignAgents-A-campaign-B-agent",
        "assignAgents-B-campaign-A-agent",
        "assignAgents-B-campaign-B-and-A-agents",
        "unassignAgent-A-campaign-A-agent",
        "unassignAgent-B-campaign-A-agent",
        "unassignAgent-A-campaign-B-agent",
    ],
)
async def test_writes_with_another_tenants_ids_are_not_found_and_change_nothing(
    tenant: TenantClient,
    other_tenant: TenantClient,
    engine: AsyncEngine,
    field: str,
    query: str,
    variables: Callable[[World, World], dict[str, Any]],
) -> None:
    a = await _create(tenant, "Alpha")
    b = await _create(other_tenant, "Bravo")
    a_pks = [pk_of(i) for i in a.agents + a.campaigns]
    before_a = await snapshot(engine, tenant.id)
    before_b = await snapshot(engine, other_tenant.id)
    trail_before = await trail_mentioning(engine, a_pks)

    response = await other_tenant.post(query, variables(a, b), role=Role.ADMIN)
    body = assert_clean(response)

    assert error_codes(body) == ["NOT_FOUND"], body
    assert body["data"] == {field: None}
    assert await snapshot(engine, tenant.id) == before_a
    assert await snapshot(engine, other_tenant.id) == before_b
    assert await trail_mentioning(engine, a_pks) == trail_before


async def test_a_refused_foreign_write_leaves_the_owner_able_to_read_its_rows_unchanged(
    tenant: TenantClient, other_tenant: TenantClient
) -> None:
    a = await _create(tenant, "Alpha")
    query = f"""query ($ids: [ID!]!) {{ nodes(ids: $ids) {{
      ... on Agent {{ {AGENT_FIELDS} campaigns {{ totalCount }} }}
      ... on Campaign {{ {CAMPAIGN_FIELDS} agents {{ totalCount }} }} }} }}"""
    before = await tenant.data(query, {"ids": a.agents + a.campaigns})
    for field, mutation, variables in FOREIGN_WRITES[:3]:
        body = await other_tenant.gql(mutation, variables(a, a))
        assert error_codes(body) == ["NOT_FOUND"], (field, body)
    assert await tenant.data(query, {"ids": a.agents + a.campaigns}) == before


# --- tokens and roles ------------------------------------------------------------------------

PROBES = [
    ("{ viewer { role } agents { totalCount } }", {}),
    (CREATE_AGENT, {"name": "should not exist"}),
]


def _claims(client: TenantClient, **overrides: Any) -> dict[str, Any]:
    token = client.token(Role.ADMIN)
    claims: dict[str, Any] = jwt.decode(token, SECRET, algorithms=[ALGORITHM])
    return {**claims, **overrides}


def _forged_tenant_token(victim: TenantClient, attacker: TenantClient) -> str:
    """The attacker's genuine token with its payload swapped for the victim's tenant."""
    header, _, signature = attacker.token(Role.ADMIN).split(".")
    payload = _claims(attacker, tid=str(victim.id), tenant=victim.slug)
    raw = json.dumps(payload, separators=(",", ":")).encode()
    forged = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


BAD_TOKENS: dict[str, Callable[[TenantClient, TenantClient], str | None]] = {
    "missing": lambda victim, attacker: None,
    "wrong-secret": lambda victim, attacker: mint_token(
        "some-other-secret-that-is-long-enough-too",
        tenant_id=victim.id,
        tenant_slug=victim.slug,
        role=Role.ADMIN,
        subject="attacker",
        ttl_seconds=600,
    ),
    "expired": lambda victim, attacker: mint_token(
        SECRET,
        tenant_id=victim.id,
        tenant_slug=victim.slug,
        role=Role.ADMIN,
        subject="late",
        ttl_seconds=-60,
    ),
    "payload-swapped-to-another-tenant": _forged_tenant_token,
    # Signed, but its two tenant claims disagree (an identity provider's mapping gone wrong).
    "claims-naming-two-tenants": lambda victim, attacker: mint_token(
        SECRET,
        tenant_id=attacker.id,
        tenant_slug=victim.slug,
        role=Role.ADMIN,
        subject="confused",
        ttl_seconds=600,
    ),
    "alg-none": lambda victim, attacker: jwt.encode(_claims(victim), key="", algorithm="none"),
    "garbage": lambda victim, attacker: "not.a.jwt",
    "unknown-role": lambda victim, attacker: jwt.encode(
        _claims(victim, role="root"), SECRET, algorithm=ALGORITHM
    ),
    "missing-tenant-claim": lambda victim, attacker: jwt.encode(
        {k: v for k, v in _claims(victim).items() if k != "tid"}, SECRET, algorithm=ALGORITHM
    ),
    "wrong-issuer": lambda victim, attacker: jwt.encode(
        _claims(victim, iss="someone-else"), SECRET, algorithm=ALGORITHM
    ),
}


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
@pytest.mark.parametrize(("query", "variables"), PROBES, ids=["query", "mutation"])
async def test_requests_without_a_valid_token_are_unauthenticated_and_change_nothing(
    tenant: TenantClient,
    other_tenant: TenantClient,
    engine: AsyncEngine,
    kind: str,
    query: str,
    variables: dict[str, Any],
) -> None:
    await _create(tenant, "Alpha")
    before = await snapshot(engine, tenant.id)
    token = BAD_TOKENS[kind](tenant, other_tenant)
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}

    response = await tenant.http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    body = assert_clean(response)

    assert error_codes(body) == ["UNAUTHENTICATED"], body
    assert body.get("data") is None
    assert await snapshot(engine, tenant.id) == before


@pytest.mark.parametrize(
    "authorization", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "token abc", ""]
)
async def test_a_malformed_authorization_header_is_unauthenticated(
    tenant: TenantClient, authorization: str
) -> None:
    response = await tenant.http.post(
        "/graphql",
        json={"query": "{ agents { totalCount } }"},
        headers={"Authorization": authorization},
    )
    body = assert_clean(response)
    assert error_codes(body) == ["UNAUTHENTICATED"], body
    assert body.get("data") is None


def _own_writes(world: World) -> list[tuple[str, str, dict[str, Any]]]:
    """One call of every mutation against the tenant's own rows, each valid for an editor, in
    an order where each still applies: campaign 1 gains agent 1 before campaign 0 loses it, and
    agent 1 is retired (by updateAgent) only after that."""
    return [
        ("createAgent", CREATE_AGENT, {"name": "new agent"}),
        ("createCampaign", CREATE_CAMPAIGN, {"name": "new campaign"}),
        ("assignAgents", ASSIGN, {"campaignId": world.campaigns[1], "agentIds": world.agents[1:]}),
        ("unassignAgent", UNASSIGN, {"campaignId": world.campaigns[0], "agentId": world.agents[1]}),
        ("updateAgent", UPDATE_AGENT, {"id": world.agents[1]}),
        ("updateCampaign", UPDATE_CAMPAIGN, {"id": world.campaigns[1]}),
        ("setCampaignStatus", SET_STATUS, {"id": world.campaigns[0]}),
    ]


async def test_a_viewer_cannot_run_any_mutation_and_nothing_changes(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    world = await _create(tenant, "Alpha")
    before = await snapshot(engine, tenant.id)
    for field, query, variables in _own_writes(world):
        body = assert_clean(await tenant.post(query, variables, role=Role.VIEWER))
        assert error_codes(body) == ["FORBIDDEN"], (field, body)
        assert body["data"] == {field: None}, field
    assert await snapshot(engine, tenant.id) == before

    # Reading is what a viewer is for.
    data = await tenant.data(
        "{ viewer { role } agents { totalCount } campaigns { totalCount } }", role=Role.VIEWER
    )
    assert data == {
        "viewer": {"role": "VIEWER"},
        "agents": {"totalCount": 2},
        "campaigns": {"totalCount": 2},
    }


@pytest.mark.parametrize("role", [Role.EDITOR, Role.ADMIN])
async def test_an_editor_or_admin_can_run_every_mutation(
    tenant: TenantClient, engine: AsyncEngine, role: Role
) -> None:
    world = await _create(tenant, "Alpha")
    for field, query, variables in _own_writes(world):
        data = await tenant.data(query, variables, role=role)
        assert data[field] is not None, field

    after = await snapshot(engine, tenant.id)
    assert len(after["agent"]) == 3
    assert len(after["campaign"]) == 3
    # campaign 0 lost agent 1, campaign 1 gained it: still three memberships.
    assert len(after["campaign_agent"]) == 3
    # every write left its audit row and its outbox event
    actors = {row["actor"] for row in after["audit_log"]}
    assert f"test-{role.value}" in actors
    assert len(after["audit_log"]) == len(after["outbox"])


async def _redis_state(redis: Any, tenant_id: uuid.UUID) -> dict[bytes, Any]:
    """Every Redis key of a tenant with its value, for before/after comparison. Not its
    rate-limit buckets: they refill and expire by themselves as time passes (that no other
    tenant can spend them is tests/api/test_demand_control.py's)."""
    state: dict[bytes, Any] = {}
    async for key in redis.scan_iter(match=f"{keys.tenant_prefix(tenant_id)}*", count=1000):
        if b":ratelimit:" in key:
            continue
        kind = await redis.type(key)
        if kind == b"hash":
            state[key] = await redis.hgetall(key)
        elif kind == b"zset":
            state[key] = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == b"stream":
            state[key] = await redis.xlen(key)
        else:
            state[key] = await redis.get(key)
    return state


async def test_another_tenants_tasks_and_sessions_are_out_of_reach(
    tenant: TenantClient, other_tenant: TenantClient, app: Any
) -> None:
    """Tasks and sessions live in Redis under the tenant's prefix: B holding A's ids reads
    nothing and changes nothing there, with a person's token or a runtime's."""
    a, b = await _create(tenant, "Alpha"), await _create(other_tenant, "Bravo")
    enqueue = """mutation($a: ID!, $k: String!) { enqueueTask(input: {agentId: $a, kind: "x",
      idempotencyKey: $k}) { task { id } } }"""
    task = (await tenant.data(enqueue, {"a": a.agents[0], "k": "same-key"}))["enqueueTask"]
    session = """mutation($a: ID!) { setAgentSessionState(input: {agentId: $a, state: {s: 1},
      expectedVersion: 0}) { session { version } } }"""
    await tenant.data(session, {"a": a.agents[0]})
    redis = app.state.stores.redis
    before = await _redis_state(redis, tenant.id)
    assert any(b":task:" in key for key in before) and any(b":session" in key for key in before)
    task_id = task["task"]["id"]
    # Reads: null, never A's data.
    found = await other_tenant.data(
        """query($t: ID!, $a: ID!) { task(id: $t) { id } node(id: $t) { id }
          agent(id: $a) { id tasks { totalCount } session { version } } }""",
        {"t": task_id, "a": a.agents[0]},
        role=Role.ADMIN,
    )
    assert found == {"task": None, "node": None, "agent": None}
    dead = await other_tenant.data("{ deadTasks { totalCount } }", role=Role.ADMIN)
    assert dead == {"deadTasks": {"totalCount": 0}}
    # Writes with A's ids: NOT_FOUND. The same idempotency key is B's own.
    for query, variables in (
        ("mutation($t: ID!) { cancelTask(input: {id: $t}) { task { id } } }", {"t": task_id}),
        ("mutation($t: ID!) { retryTask(input: {id: $t}) { task { id } } }", {"t": task_id}),
        (enqueue, {"a": a.agents[0], "k": "other"}),
        (session, {"a": a.agents[0]}),
        (
            "mutation($a: ID!) { clearAgentSession(input: {agentId: $a}) { agentId } }",
            {"a": a.agents[0]},
        ),
    ):
        body = assert_clean(await other_tenant.post(query, variables, role=Role.ADMIN))
        assert error_codes(body) == ["NOT_FOUND"], (query, body)
    own = await other_tenant.data(enqueue, {"a": b.agents[0], "k": "same-key"})
    assert own["enqueueTask"]["task"]["id"] != task_id
    # B's runtime: its claims hold only B's task; A's task is not found for its reports.
    runtime = other_tenant.agent_token(pk_of(b.agents[0]))
    claimed = await other_tenant.data(
        "mutation { claimTasks(input: {max: 10}) { leases { leaseToken task { id } } } }",
        token=runtime,
    )
    leases = claimed["claimTasks"]["leases"]
    assert [lease["task"]["id"] for lease in leases] == [own["enqueueTask"]["task"]["id"]]
    report = await other_tenant.gql(
        "mutation($t: ID!, $l: String!) { completeTask(input: {id: $t, leaseToken: $l}) "
        "{ task { id } } }",
        {"t": task_id, "l": leases[0]["leaseToken"]},
        token=runtime,
    )
    assert error_codes(report) == ["NOT_FOUND"]
    assert await _redis_state(redis, tenant.id) == before
