"""A revoked API key stops what it opened before the revocation: a WebSocket authenticated
by it runs no further operation, and its live subscriptions, over WebSocket or SSE, end with
UNAUTHENTICATED at their next event (at once on the instance that revoked it, within the key
cache's few seconds on the others), as a revoked JWT's do."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from app import api_keys as api_keys_module
from app.api_keys import ApiKeys, NewKey, create_api_key, revoke_api_key
from app.auth import Principal, Role
from app.errors import Unauthenticated
from app.stores.postgres.tables import campaign
from tests.api import raw_ws
from tests.api.hub_state import subscribers_of, until, until_subscribed
from tests.api.test_sse import EVENTS, STREAM, clicks, sse_events
from tests.api.test_subscriptions import new_campaign
from tests.support import TenantClient

KEYS = "{ apiKeys { edges { node { id prefix } } } }"
REVOKE = "mutation($id: ID!) { revokeApiKey(input: {id: $id}) { apiKey { id revokedAt } } }"
CREATE = 'mutation { createCampaign(input: {name: "after revocation"}) { campaign { id } } }'


async def new_key(engine: AsyncEngine, tenant: TenantClient, role: Role) -> NewKey:
    return await create_api_key(engine, tenant.id, name="live", role=role, created_by="test")


async def revoke(tenant: TenantClient, key: NewKey) -> None:
    """revokeApiKey, by an admin of the key's tenant, on the app the sockets are open to."""
    edges = (await tenant.data(KEYS, role=Role.ADMIN))["apiKeys"]["edges"]
    (key_id,) = [e["node"]["id"] for e in edges if e["node"]["prefix"] == key.prefix]
    revoked = await tenant.data(REVOKE, {"id": key_id}, role=Role.ADMIN)
    assert revoked["revokeApiKey"]["apiKey"]["revokedAt"] is not None


async def campaigns_named(engine: AsyncEngine, tenant: TenantClient, name: str) -> int:
    async with engine.connect() as conn:
        count = await conn.scalar(
            select(func.count())
            .select_from(campaign)
            .where(campaign.c.tenant_id == tenant.id, campaign.c.name == name)
        )
    return int(count or 0)


def unauthenticated(message: dict[str, Any]) -> bool:
    if message["type"] != "error":
        return False
    return [e["extensions"]["code"] for e in message["payload"]] == ["UNAUTHENTICATED"]


async def test_an_open_websocket_of_a_revoked_key_runs_no_further_operation(
    engine: AsyncEngine, tenant: TenantClient, live_url: str
) -> None:
    key = await new_key(engine, tenant, Role.EDITOR)
    ws = await raw_ws.open_socket(live_url, key.key)
    try:
        await raw_ws.subscribe(ws, "before", "{ viewer { role } }")
        answered = await asyncio.wait_for(raw_ws.receive(ws), 20)
        assert answered["type"] == "next", answered
        assert answered["payload"]["data"] == {"viewer": {"role": "EDITOR"}}
        assert (await asyncio.wait_for(raw_ws.receive(ws), 20))["type"] == "complete"

        await revoke(tenant, key)

        await raw_ws.subscribe(ws, "write", CREATE)
        refused = await asyncio.wait_for(raw_ws.receive(ws), 20)
        assert unauthenticated(refused), refused
        assert refused["id"] == "write"
        assert refused["payload"][0]["message"] == "The API key has been revoked"
        assert await campaigns_named(engine, tenant, "after revocation") == 0
        await raw_ws.subscribe(ws, "read", "{ viewer { role } }")
        refused = await asyncio.wait_for(raw_ws.receive(ws), 20)
        assert unauthenticated(refused), refused
    finally:
        await ws.close()


async def test_a_live_websocket_subscription_of_a_revoked_key_ends_at_its_next_event(
    app: Starlette, engine: AsyncEngine, tenant: TenantClient, live_url: str
) -> None:
    campaign_id = await new_campaign(tenant)
    key = await new_key(engine, tenant, Role.VIEWER)
    ws = await raw_ws.open_socket(live_url, key.key)
    try:
        await raw_ws.subscribe(ws, "live", campaignId=campaign_id)
        await until_subscribed(app.state.hub, tenant.id, 1)
        await clicks(tenant, campaign_id, 1)
        delivered = await asyncio.wait_for(raw_ws.receive(ws), 20)
        assert delivered["type"] == "next", delivered
        assert delivered["payload"]["data"]["campaignEvents"]["type"] == "ENGAGEMENT"

        await revoke(tenant, key)
        await clicks(tenant, campaign_id, 1)
        ended = await asyncio.wait_for(raw_ws.receive(ws), 20)
        assert unauthenticated(ended), ended
        assert ended["id"] == "live"
        assert ended["payload"][0]["message"] == "The API key has been revoked"
        await until(lambda: subscribers_of(app.state.hub, tenant.id) == 0)
    finally:
        await ws.close()


async def test_a_live_sse_subscription_of_a_revoked_key_ends_at_its_next_event(
    app: Starlette, engine: AsyncEngine, tenant: TenantClient, live_url: str
) -> None:
    campaign_id = await new_campaign(tenant)
    key = await new_key(engine, tenant, Role.VIEWER)
    body = {"query": EVENTS, "variables": {"c": campaign_id}}
    headers = {**STREAM, "Authorization": f"Bearer {key.key}"}
    async with (
        httpx.AsyncClient(base_url=f"http://{live_url}", timeout=20) as client,
        client.stream("POST", "/graphql", json=body, headers=headers) as response,
    ):
        assert response.status_code == 200
        stream = aiter_events(response)
        await until_subscribed(app.state.hub, tenant.id, 1)
        await clicks(tenant, campaign_id, 1)
        first = await asyncio.wait_for(anext(stream), 20)
        assert first["event"] == "next", first
        assert first["data"]["data"]["campaignEvents"]["type"] == "ENGAGEMENT"

        await revoke(tenant, key)
        await clicks(tenant, campaign_id, 1)
        ended = await asyncio.wait_for(anext(stream), 20)
        assert ended["event"] == "next", ended
        assert "id" not in ended  # withheld, not delivered
        assert ended["data"].get("data") is None, ended
        errors = ended["data"]["errors"]
        assert [e["extensions"]["code"] for e in errors] == ["UNAUTHENTICATED"], errors
        assert errors[0]["message"] == "The API key has been revoked"
        last = await asyncio.wait_for(anext(stream), 20)
        assert last["event"] == "complete", last
    await until(lambda: subscribers_of(app.state.hub, tenant.id) == 0)


async def aiter_events(response: httpx.Response) -> Any:
    """The stream's events one at a time, as they arrive."""
    buffer = ""
    async for text in response.aiter_text():
        buffer += text
        *blocks, buffer = buffer.replace("\r\n", "\n").split("\n\n")
        for block in blocks:
            for event in sse_events(block + "\n\n"):
                yield event


async def test_another_instance_stops_a_revoked_keys_connections_within_the_key_cache(
    engine: AsyncEngine, tenant: TenantClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The instance that did not revoke the key goes on its remembered answer for at most
    REMEMBERED_SECONDS, then refuses; other principals are never looked up."""
    key = await new_key(engine, tenant, Role.VIEWER)
    elsewhere = ApiKeys(engine, timeout=5.0)
    principal = await elsewhere.principal(key.key)
    assert await elsewhere.ensure_valid(principal) is principal
    admin = Principal(tenant.id, tenant.slug, Role.ADMIN, "test-admin", client_id="t:admin")
    assert await elsewhere.ensure_valid(admin) is admin
    await revoke_api_key(engine, admin, key.id)
    assert await elsewhere.ensure_valid(principal) is principal  # remembered, not re-read
    # Its remembered answer as old as the cache keeps one:
    monkeypatch.setattr(api_keys_module, "REMEMBERED_SECONDS", 0.0)
    with pytest.raises(Unauthenticated, match="has been revoked"):
        await elsewhere.ensure_valid(principal)
    with pytest.raises(Unauthenticated):
        await elsewhere.principal(key.key)
