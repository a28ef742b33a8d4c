"""The schema as a federation subgraph (CHIMERA_FEDERATION=true): its SDL, and `_entities`
resolved through the tenant-bound loaders, one batch per type, whatever the count."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from httpx import ASGITransport, AsyncClient
from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app.ids import encode_id
from app.schema import schema_sdl
from app.settings import Settings
from app.stores.postgres.tables import agent, campaign
from tests.processes import ROOT
from tests.support import TenantClient, another_app, error_codes, new_tenant

ENTITIES = """query($representations: [_Any!]!) {
  _entities(representations: $representations) {
    __typename
    ... on Campaign { id name }
    ... on Agent { id name }
    ... on Tenant { id slug }
  }
}"""


@dataclass
class Subgraph:
    http: AsyncClient
    tenant: TenantClient
    other: TenantClient
    engine: AsyncEngine

    async def entities(self, representations: list[Any], *, plan: bool = False) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.tenant.token()}"}
        if plan:
            headers["X-Chimera-Plan"] = "1"
        response = await self.http.post(
            "/graphql",
            json={"query": ENTITIES, "variables": {"representations": representations}},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def campaigns(self, tenant: TenantClient, count: int) -> list[str]:
        return await insert_rows(self.engine, campaign, "Campaign", tenant.id, count)

    async def agents(self, tenant: TenantClient, count: int) -> list[str]:
        return await insert_rows(self.engine, agent, "Agent", tenant.id, count)


async def insert_rows(
    engine: AsyncEngine, table: Table, type_name: str, tenant_id: uuid.UUID, count: int
) -> list[str]:
    """``count`` campaigns or agents of a tenant, named by their index; their global ids."""
    ids = [uuid.uuid4() for _ in range(count)]
    prefix = type_name[0].lower()
    async with engine.begin() as conn:
        await conn.execute(
            insert(table),
            [
                {"id": pk, "tenant_id": tenant_id, "name": f"{prefix}{i}"}
                for i, pk in enumerate(ids)
            ],
        )
    return [encode_id(type_name, pk) for pk in ids]


@pytest_asyncio.fixture
async def subgraph(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> AsyncIterator[Subgraph]:
    async with another_app(settings, tmp_path, federation=True) as application:
        transport = ASGITransport(app=application)
        async with AsyncClient(transport=transport, base_url="http://test") as http:
            tenant, other = await new_tenant(engine, http), await new_tenant(engine, http)
            yield Subgraph(http, tenant, other, engine)


def refs(type_name: str, ids: list[str]) -> list[dict[str, str]]:
    return [{"__typename": type_name, "id": i} for i in ids]


def batches(body: dict[str, Any]) -> Counter[str]:
    return Counter(step["loader"] for step in body["extensions"]["plan"]["steps"])


def test_committed_federation_schema_file_matches_the_code() -> None:
    committed = (ROOT / "schema.federation.graphql").read_text()
    assert committed == schema_sdl(federation=True), (
        "schema.federation.graphql is stale: run `make schema` and commit it"
    )


def test_the_plain_schema_has_no_federation_in_it() -> None:
    plain = schema_sdl()
    for federation in ("@key", "@link", "_entities", "_service", "_Any", "_FieldSet"):
        assert federation not in plain, federation
    assert schema_sdl() == plain  # building the federated schema left the types untouched


async def test_service_sdl_is_the_federation_schema_with_a_key_on_each_entity(
    subgraph: Subgraph,
) -> None:
    data = await subgraph.tenant.data("{ _service { sdl } }")
    sdl = data["_service"]["sdl"]
    assert sdl == schema_sdl(federation=True)
    assert '@link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key"])' in sdl
    for entity in (
        "Agent",
        "AgentMemory",
        "Campaign",
        "MediaAsset",
        "Task",
        "Tenant",
        "Transaction",
    ):
        [line] = [line for line in sdl.splitlines() if line.startswith(f"type {entity} ")]
        assert '@key(fields: "id"' in line, line


@pytest.mark.parametrize("count", [5, 500])
async def test_representations_resolve_in_one_batch_per_type_whatever_their_number(
    subgraph: Subgraph, count: int
) -> None:
    campaigns = await subgraph.campaigns(subgraph.tenant, count)
    agents = await subgraph.agents(subgraph.tenant, count)
    # Interleaved, as a gateway may send them: the answer keeps their order.
    representations = [
        r
        for pair in zip(refs("Campaign", campaigns), refs("Agent", agents), strict=True)
        for r in pair
    ]
    body = await subgraph.entities(representations, plan=True)
    assert not body.get("errors"), body["errors"]
    entities = body["data"]["_entities"]
    assert [e["id"] for e in entities] == [r["id"] for r in representations]
    assert [e["__typename"] for e in entities[:2]] == ["Campaign", "Agent"]
    assert entities[0]["name"] == "c0" and entities[1]["name"] == "a0"
    assert batches(body) == Counter({"CampaignByIdLoader": 1, "AgentByIdLoader": 1}), body[
        "extensions"
    ]["plan"]


async def test_another_tenants_entities_and_unknown_ids_resolve_to_null(
    subgraph: Subgraph,
) -> None:
    [mine] = await subgraph.campaigns(subgraph.tenant, 1)
    [theirs] = await subgraph.campaigns(subgraph.other, 1)
    missing = encode_id("Campaign", uuid.uuid4())
    body = await subgraph.entities(
        [
            *refs("Campaign", [mine, theirs, missing]),
            *refs("Tenant", [encode_id("Tenant", subgraph.tenant.id)]),
            *refs("Tenant", [encode_id("Tenant", subgraph.other.id)]),
        ]
    )
    assert not body.get("errors"), body["errors"]
    entities = body["data"]["_entities"]
    assert entities[0]["id"] == mine
    assert entities[1:3] == [None, None]
    assert entities[3] == {
        "__typename": "Tenant",
        "id": encode_id("Tenant", subgraph.tenant.id),
        "slug": subgraph.tenant.slug,
    }
    assert entities[4] is None


@pytest.mark.parametrize(
    "representation",
    [
        "Campaign",
        {"id": "x"},
        {"__typename": "Secret", "id": "x"},
        {"__typename": "Campaign"},
        {"__typename": "Campaign", "id": 12},
        {"__typename": "Campaign", "id": "not an id"},
        {"__typename": "Agent", "id": encode_id("Campaign", uuid.uuid4())},
    ],
    ids=["not-object", "no-typename", "unknown-type", "no-id", "int-id", "bad-id", "wrong-type"],
)
async def test_a_malformed_representation_is_bad_user_input(
    subgraph: Subgraph, representation: Any
) -> None:
    [good] = await subgraph.campaigns(subgraph.tenant, 1)
    body = await subgraph.entities([*refs("Campaign", [good]), representation])
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert body["errors"][0]["extensions"]["argument"] == "representations"
    assert "representations[1]" in body["errors"][0]["message"]
    assert body.get("data") is None


async def test_more_representations_than_allowed_are_refused(subgraph: Subgraph) -> None:
    representation = {"__typename": "Campaign", "id": encode_id("Campaign", uuid.uuid4())}
    body = await subgraph.entities([representation] * 1001)
    assert error_codes(body) in (["BAD_USER_INPUT"], ["COST_LIMIT"]), body


async def test_the_plain_schema_answers_no_federation_field(tenant: TenantClient) -> None:
    body = await tenant.gql("{ _service { sdl } }")
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert "_service" in body["errors"][0]["message"]
