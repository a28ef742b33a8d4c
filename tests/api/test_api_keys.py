"""Tenant API keys: a server-to-server credential that acts with its role in its tenant only,
is stored as a hash, listed and revoked by admins, and costs no statement per request."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from websockets.exceptions import ConnectionClosed

from app.api_keys import NewKey, create_api_key
from app.auth import Role, mint_token
from app.revocations import revoke_token
from app.stores.postgres.tables import api_key, audit_log
from tests.api import raw_ws
from tests.support import SECRET, TenantClient, count_statements, error_codes

KEYS = """{ apiKeys { totalCount edges { cursor node { id name role prefix createdBy createdAt
  lastUsedAt revokedAt } } } }"""
REVOKE = "mutation($id: ID!) { revokeApiKey(input: {id: $id}) { apiKey { id revokedAt } } }"
CREATE = 'mutation { createCampaign(input: {name: "by key"}) { campaign { id } } }'


async def new_key(
    engine: AsyncEngine, tenant: TenantClient, role: Role, name: str = "ci"
) -> NewKey:
    return await create_api_key(engine, tenant.id, name=name, role=role, created_by="test")


async def as_key(tenant: TenantClient, key: str, query: str, **variables: Any) -> dict[str, Any]:
    return await tenant.gql(query, variables, token=key)


async def test_a_key_acts_in_its_tenant_with_its_role(
    engine: AsyncEngine, tenant: TenantClient
) -> None:
    editor = await new_key(engine, tenant, Role.EDITOR)
    viewer = await new_key(engine, tenant, Role.VIEWER)
    made = await as_key(tenant, editor.key, CREATE)
    assert "errors" not in made, made
    me = await as_key(tenant, viewer.key, "{ viewer { role subject tenant { slug } } }")
    assert me["data"]["viewer"] == {
        "role": "VIEWER",
        "subject": "apikey:ci",
        "tenant": {"slug": tenant.slug},
    }
    assert error_codes(await as_key(tenant, viewer.key, CREATE)) == ["FORBIDDEN"]
    # Its own rate-limit bucket: the key, not whoever else uses the tenant.
    limit = await as_key(tenant, viewer.key, "{ rateLimit { buckets { scope remaining } } }")
    assert "errors" not in limit


async def test_a_wrong_or_malformed_key_is_unauthenticated(
    engine: AsyncEngine, tenant: TenantClient
) -> None:
    real = await new_key(engine, tenant, Role.ADMIN)
    forged = real.key[:-4] + ("AAAA" if not real.key.endswith("AAAA") else "BBBB")
    for key in (forged, "chk_short", "chk_" + "x" * 12 + "_" + "y" * 40):
        body = await as_key(tenant, key, "{ viewer { role } }")
        assert error_codes(body) == ["UNAUTHENTICATED"], (key, body)
        assert body["data"] is None


async def test_only_a_hash_and_a_prefix_are_stored(
    engine: AsyncEngine, tenant: TenantClient
) -> None:
    created = await new_key(engine, tenant, Role.VIEWER)
    async with engine.connect() as conn:
        row = (await conn.execute(select(api_key).where(api_key.c.id == created.id))).one()
    assert created.key.startswith(created.prefix + "_")
    assert row.prefix == created.prefix.removeprefix("chk_")
    assert created.key not in {str(value) for value in row}


async def test_admins_list_their_tenants_keys_and_nobody_else_does(
    engine: AsyncEngine, tenant: TenantClient, other_tenant: TenantClient
) -> None:
    mine = await new_key(engine, tenant, Role.VIEWER, "reporting")
    await new_key(engine, other_tenant, Role.ADMIN, "theirs")
    listed = (await tenant.data(KEYS, role=Role.ADMIN))["apiKeys"]
    assert listed["totalCount"] == 1
    node = listed["edges"][0]["node"]
    assert (node["name"], node["role"], node["prefix"]) == ("reporting", "VIEWER", mine.prefix)
    assert node["revokedAt"] is None
    assert mine.key not in str(listed)
    assert error_codes(await tenant.gql(KEYS, role=Role.EDITOR)) == ["FORBIDDEN"]


async def test_a_revoked_key_stops_working_at_once_and_the_revocation_is_audited(
    engine: AsyncEngine, tenant: TenantClient, other_tenant: TenantClient
) -> None:
    created = await new_key(engine, tenant, Role.EDITOR)
    assert "errors" not in await as_key(tenant, created.key, "{ viewer { role } }")
    listed = (await tenant.data(KEYS, role=Role.ADMIN))["apiKeys"]["edges"][0]["node"]
    # Not by another tenant's admin, nor by an editor.
    foreign = await other_tenant.gql(REVOKE, {"id": listed["id"]}, role=Role.ADMIN)
    assert error_codes(foreign) == ["NOT_FOUND"]
    assert error_codes(await tenant.gql(REVOKE, {"id": listed["id"]})) == ["FORBIDDEN"]
    revoked = await tenant.data(REVOKE, {"id": listed["id"]}, role=Role.ADMIN)
    assert revoked["revokeApiKey"]["apiKey"]["revokedAt"] is not None
    body = await as_key(tenant, created.key, "{ viewer { role } }")
    assert error_codes(body) == ["UNAUTHENTICATED"]
    async with engine.connect() as conn:
        actions = (
            await conn.execute(
                select(audit_log.c.action, audit_log.c.actor)
                .where(audit_log.c.entity_id == created.id)
                .order_by(audit_log.c.id)
            )
        ).all()
    assert [(a.action, a.actor) for a in actions] == [
        ("api_key.create", "test"),
        ("api_key.revoke", "test-admin"),
    ]
    again = await tenant.data(REVOKE, {"id": listed["id"]}, role=Role.ADMIN)
    assert again == revoked  # once revoked, stays as it was


async def test_a_key_in_use_costs_no_statement_per_request_and_its_last_use_is_recorded(
    app: Starlette, engine: AsyncEngine, tenant: TenantClient
) -> None:
    created = await new_key(engine, tenant, Role.VIEWER)
    await as_key(tenant, created.key, "{ viewer { role } }")
    with count_statements(engine) as sql:
        for _ in range(5):
            assert "errors" not in await as_key(tenant, created.key, "{ viewer { role } }")
    assert not [s for s in sql.statements if "api_key" in s], sql.statements
    await app.state.stores.api_keys.record_use()
    listed = (await tenant.data(KEYS, role=Role.ADMIN))["apiKeys"]["edges"][0]["node"]
    assert listed["lastUsedAt"] is not None


async def test_a_revoked_token_is_refused_and_the_tenants_other_tokens_are_not(
    app: Starlette, tenant: TenantClient, live_url: str
) -> None:
    leaked, kept = (
        mint_token(
            SECRET,
            tenant_id=tenant.id,
            tenant_slug=tenant.slug,
            role=Role.ADMIN,
            subject=subject,
            ttl_seconds=600,
        )
        for subject in ("leaked", "kept")
    )
    assert "errors" not in await tenant.gql("{ viewer { role } }", token=leaked)
    claims = jwt.decode(leaked, options={"verify_signature": False})
    assert await revoke_token(app.state.stores.redis, tenant.id, claims["jti"], claims["exp"])
    refused = await tenant.gql("{ viewer { role } }", token=leaked)
    assert error_codes(refused) == ["UNAUTHENTICATED"]
    assert refused["errors"][0]["message"] == "The bearer token has been revoked"
    assert "errors" not in await tenant.gql("{ viewer { role } }", token=kept)
    # Nor can it open a WebSocket.
    with pytest.raises(ConnectionClosed) as closed:
        await raw_ws.open_socket(live_url, leaked)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_a_token_already_expired_needs_no_revocation(
    app: Starlette, tenant: TenantClient
) -> None:
    assert not await revoke_token(app.state.stores.redis, tenant.id, "gone", time.time() - 1)
