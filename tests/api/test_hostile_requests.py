"""Requests an attacker or a confused client sends, and the clear refusals they get: never a
500, never Python's own words, never a map of the schema for anyone without a token."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from app.auth import Role, mint_token
from app.main import create_app
from app.settings import Environment, Settings
from app.stores.postgres.tables import agent, campaign
from tests.support import SECRET, TenantClient, error_codes

CREATE = """mutation($name: String!) { createCampaign(input: {name: $name}) { campaign { id } } }"""


async def _campaigns(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(campaign)) or 0)


async def test_a_body_nested_deeper_than_any_parser_goes_is_a_400_not_a_500(
    http: AsyncClient, tenant: TenantClient
) -> None:
    depth = 20_000
    for body in ("[" * depth + "]" * depth, '{"query": ' + "[" * depth + "]" * depth + "}"):
        response = await http.post(
            "/graphql",
            content=body,
            headers={**_auth(tenant), "content-type": "application/json"},
        )
        assert response.status_code == 400, response.text
        assert error_codes(response.json()) == ["BAD_USER_INPUT"]
        assert "nested too deeply" in response.json()["errors"][0]["message"]


LONE = "\\ud800"  # as it travels in JSON: an escape of half a surrogate pair


@pytest.mark.parametrize(
    "body",
    [
        '{"query": "{ campaigns(filter: {search: \\"a' + LONE + '\\"}) { totalCount } }"}',
        '{"query": "query($s: String) { agents(filter: {search: $s}) { totalCount } }", '
        '"variables": {"s": "x' + LONE + 'y"}}',
        '{"query": "' + CREATE.replace('"', '\\"') + '", "variables": {"name": "' + LONE + '"}}',
        '{"query": "query($a: String) { campaigns(after: $a) { totalCount } }", '
        '"variables": {"a": "' + LONE + '"}}',
        '{"query": "query($q: String) { semanticSearch(query: $q) { score } }", '
        '"variables": {"q": "' + LONE + '"}}',
        '{"query": "{ viewer { role } }", "operationName": "' + LONE + '"}',
    ],
)
async def test_a_lone_surrogate_anywhere_in_a_request_is_bad_user_input_and_writes_nothing(
    http: AsyncClient, tenant: TenantClient, engine: AsyncEngine, body: str
) -> None:
    before = await _campaigns(engine)
    response = await http.post(
        "/graphql", content=body, headers={**_auth(tenant), "content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]
    assert "lone surrogate" in response.json()["errors"][0]["message"]
    assert await _campaigns(engine) == before


async def test_a_pair_of_surrogates_is_one_character_and_welcome(tenant: TenantClient) -> None:
    body = await tenant.gql(
        CREATE, {"name": "emoji \ud83d\ude00".encode("utf-16", "surrogatepass").decode("utf-16")}
    )
    assert not body.get("errors"), body


@pytest.mark.parametrize("value", [1e308, -1e39, 1e-46])
async def test_a_vector_outside_what_the_index_stores_is_bad_user_input(
    tenant: TenantClient, value: float
) -> None:
    vector = [0.0] * 384
    vector[0] = value
    body = await tenant.gql(
        "query($v: [Float!]) { semanticSearch(vector: $v) { score } }", {"v": vector}
    )
    assert error_codes(body) == ["BAD_USER_INPUT"], body


async def test_a_bad_date_is_explained_without_python_in_the_message(
    tenant: TenantClient,
) -> None:
    body = await tenant.gql(
        'mutation($s: DateTime) { createCampaign(input: {name: "x", startsAt: $s}) '
        "{ campaign { id } } }",
        {"s": "yesterday"},
    )
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    message = body["errors"][0]["message"]
    assert "ISO 8601" in message and "2026-01-31T09:00:00Z" in message
    assert "invalid literal" not in message and "int()" not in message


async def test_a_token_whose_tenant_does_not_exist_is_unauthenticated_for_reads_and_writes(
    http: AsyncClient, engine: AsyncEngine
) -> None:
    token = mint_token(
        SECRET,
        tenant_id=uuid.uuid4(),
        tenant_slug="ghost",
        role=Role.ADMIN,
        subject="ghost",
        ttl_seconds=600,
    )
    headers = {"Authorization": f"Bearer {token}"}
    before = await _campaigns(engine)
    for query in ("{ campaigns { totalCount } agents { totalCount } }", CREATE):
        response = await http.post(
            "/graphql", json={"query": query, "variables": {"name": "x"}}, headers=headers
        )
        body = response.json()
        assert error_codes(body) == ["UNAUTHENTICATED"], body
        assert body["data"] is None
    assert await _campaigns(engine) == before


@pytest.mark.parametrize(
    "query",
    [
        "{ campaigns { edjes { node { id } } } }",  # a near miss of a field
        "{ campaigns(firts: 1) { totalCount } }",  # of an argument
        "{ agents(filter: {status: [ACTIV]}) { totalCount } }",  # of an enum value
        "{ __schema { types { name } } }",
        "{ nope",  # not even a document
    ],
)
async def test_without_a_token_the_document_is_not_looked_at(http: AsyncClient, query: str) -> None:
    response = await http.post("/graphql", json={"query": query})
    body = response.json()
    assert error_codes(body) == ["UNAUTHENTICATED"], body
    assert "Did you mean" not in json.dumps(body)


@pytest_asyncio.fixture
async def production(app: Starlette, settings: Settings) -> AsyncIterator[AsyncClient]:
    """The app as production runs it, over the session's stores."""
    prod = create_app(settings.model_copy(update={"env": Environment.PRODUCTION}))
    prod.state.stores = app.state.stores
    prod.state.hub = app.state.hub
    async with AsyncClient(transport=ASGITransport(app=prod), base_url="http://prod") as client:
        yield client


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("{ campaigns { edjes { node { id } } } }", {}),
        ("{ campaigns(firts: 1) { totalCount } }", {}),
        ("{ agents(filter: {status: [ACTIV]}) { totalCount } }", {}),
        (
            "query($s: [AgentStatus!]) { agents(filter: {status: $s}) { totalCount } }",
            {"s": ["ACTIV"]},
        ),
        ("{ campaigns { edges { node { agent { id } } } } }", {}),
    ],
)
async def test_production_suggests_no_names(
    production: AsyncClient, tenant: TenantClient, query: str, variables: dict[str, object]
) -> None:
    response = await production.post(
        "/graphql", json={"query": query, "variables": variables}, headers=_auth(tenant)
    )
    body = response.json()
    assert body.get("errors"), body
    assert "Did you mean" not in json.dumps(body), body


async def test_development_still_suggests(tenant: TenantClient) -> None:
    body = await tenant.gql("{ campaigns(firts: 1) { totalCount } }")
    assert "Did you mean" in json.dumps(body)


def _auth(tenant: TenantClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.token()}"}


assert agent is not None  # the agent table is part of what a write must not touch
