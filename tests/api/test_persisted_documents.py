"""Persisted documents: Apollo's automatic persisted queries (APQ) in Redis, shared by every
instance and kept apart per tenant, and trusted documents, the only ones run in `only` mode."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from httpx import ASGITransport, AsyncClient
from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app.commands.documents import add_documents
from app.documents.manifest import Document
from app.settings import Settings
from app.stores.postgres.tables import tenant as tenant_table
from app.stores.postgres.tables import trusted_document
from tests.api import raw_ws
from tests.serving import served
from tests.support import SECRET, TenantClient, another_app, error_codes, new_tenant

QUERY = "query Names { campaigns(first: 3) { edges { node { name } } } }"
HASH = hashlib.sha256(QUERY.encode()).hexdigest()


def persisted(digest: str = HASH) -> dict[str, object]:
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


async def send(tenant: TenantClient, body: dict[str, object]) -> dict[str, object]:
    response = await tenant.http.post(
        "/graphql", json=body, headers={"Authorization": f"Bearer {tenant.token()}"}
    )
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


async def test_an_unknown_hash_asks_for_the_document_which_then_runs_by_hash(
    tenant: TenantClient,
) -> None:
    missing = await send(tenant, {"extensions": persisted()})
    assert error_codes(missing) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert missing["errors"][0]["message"] == "PersistedQueryNotFound"  # type: ignore[index]
    registered = await send(tenant, {"query": QUERY, "extensions": persisted()})
    assert registered["data"] == {"campaigns": {"edges": []}}
    by_hash = await send(tenant, {"extensions": persisted()})
    assert by_hash["data"] == {"campaigns": {"edges": []}}
    assert "errors" not in by_hash


async def test_a_hash_that_is_not_the_documents_is_refused_and_registers_nothing(
    tenant: TenantClient,
) -> None:
    wrong = hashlib.sha256(b"something else").hexdigest()
    refused = await send(tenant, {"query": QUERY, "extensions": persisted(wrong)})
    assert error_codes(refused) == ["BAD_USER_INPUT"]
    assert "does not match" in refused["errors"][0]["message"]  # type: ignore[index]
    still_missing = await send(tenant, {"extensions": persisted(wrong)})
    assert error_codes(still_missing) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_a_malformed_persisted_query_extension_is_bad_input(tenant: TenantClient) -> None:
    for extension in (
        {"persistedQuery": {"version": 2, "sha256Hash": HASH}},
        {"persistedQuery": {"version": 1, "sha256Hash": "abc"}},
        {"persistedQuery": "yes"},
    ):
        body = await send(tenant, {"extensions": extension})
        assert error_codes(body) == ["BAD_USER_INPUT"], body


async def test_one_tenants_registered_documents_are_not_anothers(
    tenant: TenantClient, other_tenant: TenantClient
) -> None:
    query = "query Mine { agents(first: 2) { totalCount } }"
    digest = hashlib.sha256(query.encode()).hexdigest()
    await send(tenant, {"query": query, "extensions": persisted(digest)})
    assert "errors" not in await send(tenant, {"extensions": persisted(digest)})
    # The other tenant cannot tell from its answer that the first one ran this document.
    elsewhere = await send(other_tenant, {"extensions": persisted(digest)})
    assert error_codes(elsewhere) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_a_persisted_query_may_come_by_get_but_a_mutation_may_not(
    tenant: TenantClient,
) -> None:
    await send(tenant, {"query": QUERY, "extensions": persisted()})
    headers = {"Authorization": f"Bearer {tenant.token()}", "Accept": "application/json"}
    response = await tenant.http.get(
        "/graphql", params={"extensions": json.dumps(persisted())}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"campaigns": {"edges": []}}
    mutation = 'mutation Make { createCampaign(input: {name: "by get"}) { campaign { id } } }'
    digest = hashlib.sha256(mutation.encode()).hexdigest()
    refused = await tenant.http.get(
        "/graphql",
        params={"query": mutation, "extensions": json.dumps(persisted(digest))},
        headers=headers,
    )
    assert refused.status_code == 405, refused.text
    assert (await tenant.data("{ campaigns { totalCount } }"))["campaigns"]["totalCount"] == 0


async def test_a_query_by_get_is_served_only_with_a_header_no_cross_site_form_can_send(
    tenant: TenantClient,
) -> None:
    accept = {"Accept": "application/json"}
    forged = await tenant.http.get("/graphql", params={"query": QUERY}, headers=accept)
    assert forged.status_code == 400, forged.text
    assert error_codes(forged.json()) == ["BAD_USER_INPUT"]
    assert "CSRF" in forged.json()["errors"][0]["message"]
    # The preflight header lets it through to authentication, which it then fails.
    anonymous = await tenant.http.get(
        "/graphql", params={"query": QUERY}, headers={**accept, "GraphQL-Require-Preflight": "1"}
    )
    assert error_codes(anonymous.json()) == ["UNAUTHENTICATED"]
    response = await tenant.http.get(
        "/graphql",
        params={"query": QUERY},
        headers={**accept, "Authorization": f"Bearer {tenant.token()}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"campaigns": {"edges": []}}


@pytest_asyncio.fixture
async def trusted_only(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> AsyncIterator[tuple[AsyncClient, TenantClient]]:
    """An app that runs registered documents only, with QUERY registered."""
    await add_documents(engine, [Document(HASH, QUERY, "Names")])
    try:
        async with another_app(settings, tmp_path, trusted_documents="only") as application:
            transport = ASGITransport(app=application)
            async with AsyncClient(transport=transport, base_url="http://test") as http:
                # Created without new_tenant's first query: that is not a registered one.
                pk = uuid.uuid4()
                async with engine.begin() as conn:
                    await conn.execute(
                        insert(tenant_table).values(id=pk, slug=f"t-{pk.hex[:12]}", name="only")
                    )
                yield http, TenantClient(http=http, id=pk, slug=f"t-{pk.hex[:12]}")
    finally:
        async with engine.begin() as conn:
            await conn.execute(delete(trusted_document).where(trusted_document.c.id == HASH))


async def test_in_trusted_mode_only_registered_documents_run(
    trusted_only: tuple[AsyncClient, TenantClient],
) -> None:
    _, tenant = trusted_only
    by_hash = await send(tenant, {"extensions": persisted()})
    assert by_hash["data"] == {"campaigns": {"edges": []}}
    as_text = await send(tenant, {"query": QUERY})  # the registered text, sent in full
    assert as_text["data"] == {"campaigns": {"edges": []}}
    other = "{ campaigns { totalCount } }"
    refused = await send(tenant, {"query": other})
    assert error_codes(refused) == ["FORBIDDEN"]
    assert refused["data"] is None
    # Nor can a client register a document of its own, the automatic way.
    digest = hashlib.sha256(other.encode()).hexdigest()
    again = await send(tenant, {"query": other, "extensions": persisted(digest)})
    assert error_codes(again) == ["FORBIDDEN"]
    assert error_codes(await send(tenant, {"extensions": persisted(digest)})) == [
        "PERSISTED_QUERY_NOT_FOUND"
    ]


async def test_with_automatic_persisted_queries_off_a_bare_hash_is_not_supported(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with another_app(settings, tmp_path, automatic_persisted_queries=False) as application:
        transport = ASGITransport(app=application)
        async with AsyncClient(transport=transport, base_url="http://test") as http:
            tenant = await new_tenant(engine, http)
            body = await send(tenant, {"extensions": persisted()})
    assert error_codes(body) == ["PERSISTED_QUERY_NOT_SUPPORTED"]
    assert SECRET  # the app's tokens are the suite's


async def test_in_trusted_mode_a_websocket_cannot_run_an_unregistered_subscription(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with (
        another_app(settings, tmp_path, trusted_documents="only") as application,
        served(application) as host,
    ):
        http = AsyncClient(base_url=f"http://{host}")
        async with http:
            pk = uuid.uuid4()
            async with engine.begin() as conn:
                await conn.execute(
                    insert(tenant_table).values(id=pk, slug=f"t-{pk.hex[:12]}", name="x")
                )
            tenant = TenantClient(http=http, id=pk, slug=f"t-{pk.hex[:12]}")
            ws = await raw_ws.open_socket(host, tenant.token())
            try:
                await raw_ws.subscribe(ws, "s1")
                async with asyncio.timeout(10):
                    refused = await raw_ws.receive(ws)
            finally:
                await ws.close()
    assert refused["type"] == "error" and refused["id"] == "s1", refused
    assert refused["payload"][0]["extensions"]["code"] == "FORBIDDEN"
