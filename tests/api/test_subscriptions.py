"""Live campaign events over graphql-transport-ws, driven by an independent client (gql)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import Any

import pytest
import websockets
from gql.transport.exceptions import (
    TransportConnectionFailed,
    TransportQueryError,
    TransportServerError,
)
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from app.auth import Role
from app.stores.postgres.tables import outbox
from tests.api.subscriptions_client import events, ws_session
from tests.support import TenantClient

CREATE = "mutation($n: String!) { createCampaign(input: {name: $n}) { campaign { id } } }"
STATUS = """mutation($id: ID!, $s: CampaignStatus!) {
  setCampaignStatus(input: {id: $id, status: $s}) { campaign { id } } }"""


async def new_campaign(tenant: TenantClient, name: str = "Live") -> str:
    data = await tenant.data(CREATE, {"n": name})
    campaign_id: str = data["createCampaign"]["campaign"]["id"]
    return campaign_id


async def relayed(engine: AsyncEngine, tenant: TenantClient) -> None:
    """Wait until the relay has published everything this tenant committed so far."""
    async with asyncio.timeout(15):
        while True:
            async with engine.connect() as conn:
                waiting = await conn.scalar(
                    select(func.count())
                    .select_from(outbox)
                    .where(outbox.c.tenant_id == tenant.id, outbox.c.published_at.is_(None))
                )
            if not waiting:
                return
            await asyncio.sleep(0.02)


async def take(
    stream: AsyncGenerator[dict[str, Any], None], n: int, timeout: float = 15
) -> list[dict[str, Any]]:
    got = []
    async with asyncio.timeout(timeout):
        async for item in stream:
            got.append(item["campaignEvents"])
            if len(got) == n:
                break
    return got


async def test_a_committed_change_reaches_the_subscriber_with_the_campaign_loaded(
    tenant: TenantClient, live_url: str, engine: AsyncEngine
) -> None:
    campaign_id = await new_campaign(tenant)
    await relayed(engine, tenant)
    async with ws_session(live_url, tenant.token(Role.VIEWER)) as session:
        stream = session.subscribe(events(campaignId=campaign_id))
        receiving = asyncio.create_task(take(stream, 2))
        await asyncio.sleep(0.3)  # let the subscription register before committing
        await tenant.data(STATUS, {"id": campaign_id, "s": "ACTIVE"})
        await tenant.data(STATUS, {"id": campaign_id, "s": "PAUSED"})
        received = await receiving
    assert [e["type"] for e in received] == ["STATUS_CHANGED", "STATUS_CHANGED"]
    assert received[0]["campaign"]["id"] == campaign_id
    assert received[1]["campaign"]["status"] == "PAUSED"


async def test_resuming_after_an_id_replays_then_continues_live_without_gap_or_repeat(
    tenant: TenantClient, live_url: str
) -> None:
    campaign_id = await new_campaign(tenant)
    async with ws_session(live_url, tenant.token()) as session:
        first = await take(
            session.subscribe(events(campaignId=campaign_id, after="0-0")),
            1,
        )
    assert first[0]["type"] == "CREATED"
    # While nobody listens, three more events commit.
    for status in ("ACTIVE", "PAUSED", "ACTIVE"):
        await tenant.data(STATUS, {"id": campaign_id, "s": status})
    async with ws_session(live_url, tenant.token()) as session:
        stream = session.subscribe(events(campaignId=campaign_id, after=first[0]["id"]))
        receiving = asyncio.create_task(take(stream, 5))
        await asyncio.sleep(0.3)
        await tenant.data(STATUS, {"id": campaign_id, "s": "COMPLETED"})
        await tenant.data(STATUS, {"id": campaign_id, "s": "ARCHIVED"})
        received = await receiving
    ids = [e["id"] for e in received]
    assert len(set(ids)) == 5
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    assert first[0]["id"] not in ids
    assert [e["type"] for e in received] == ["STATUS_CHANGED"] * 5


async def test_a_subscriber_sees_only_its_tenant_and_its_campaign(
    tenant: TenantClient, other_tenant: TenantClient, live_url: str, engine: AsyncEngine
) -> None:
    mine = await new_campaign(tenant, "mine")
    other_of_mine = await new_campaign(tenant, "other")
    theirs = await new_campaign(other_tenant, "theirs")
    await relayed(engine, other_tenant)
    async with ws_session(live_url, other_tenant.token()) as session:
        with pytest.raises(TransportQueryError) as refused:
            await take(session.subscribe(events(campaignId=mine)), 1, 10)
        assert refused.value.errors is not None
        assert refused.value.errors[0]["extensions"]["code"] == "NOT_FOUND"
        stream = session.subscribe(events())
        receiving = asyncio.create_task(take(stream, 1))
        await asyncio.sleep(0.3)
        await tenant.data(STATUS, {"id": mine, "s": "ACTIVE"})
        await tenant.data(STATUS, {"id": other_of_mine, "s": "ACTIVE"})
        await other_tenant.data(STATUS, {"id": theirs, "s": "ACTIVE"})
        received = await receiving
    assert [e["campaign"]["id"] for e in received] == [theirs]


async def test_after_the_zero_id_replays_everything_the_stream_holds(
    tenant: TenantClient, live_url: str, engine: AsyncEngine
) -> None:
    campaign_id = await new_campaign(tenant)
    for status in ("ACTIVE", "PAUSED"):
        await tenant.data(STATUS, {"id": campaign_id, "s": status})
    await relayed(engine, tenant)  # all three are in the stream before anyone subscribes
    async with ws_session(live_url, tenant.token()) as session:
        replayed = await take(session.subscribe(events(after="0-0")), 3)
    assert [e["type"] for e in replayed] == ["CREATED", "STATUS_CHANGED", "STATUS_CHANGED"]


@pytest.mark.parametrize(
    ("after", "has_events"),
    [
        ("1-0", True),  # older than anything the stream keeps
        ("99999999999999-0", True),  # newer than anything it issued: would skip live events
        ("1795997975679-0", False),  # the stream is gone (Redis lost it)
    ],
)
async def test_a_cursor_the_stream_cannot_honour_is_a_clear_error(
    tenant: TenantClient, live_url: str, engine: AsyncEngine, after: str, has_events: bool
) -> None:
    if has_events:
        await new_campaign(tenant)
        await relayed(engine, tenant)
    async with ws_session(live_url, tenant.token()) as session:
        with pytest.raises(TransportQueryError) as expired:
            await take(session.subscribe(events(after=after)), 1, 10)
    assert expired.value.errors is not None
    extensions = expired.value.errors[0]["extensions"]
    assert (extensions["code"], extensions["reason"]) == ("BAD_USER_INPUT", "CURSOR_EXPIRED")


@pytest.mark.parametrize("token", [None, "not-a-jwt"])
async def test_connection_init_without_a_valid_token_is_refused(
    live_url: str, token: str | None
) -> None:
    with pytest.raises((TransportServerError, TransportConnectionFailed)) as refused:
        async with ws_session(live_url, token) as session:
            await take(session.subscribe(events()), 1, 5)
    cause = refused.value.__cause__ or refused.value.__context__
    assert "4403" in f"{refused.value} {cause}"


async def test_connection_init_with_a_null_payload_is_a_missing_credential(live_url: str) -> None:
    """graphql-transport-ws allows ``"payload": null``: no credential (4403), not a
    malformed message (4400)."""
    async with websockets.connect(
        f"ws://{live_url}/graphql", subprotocols=[Subprotocol("graphql-transport-ws")]
    ) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": None}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_dropped_subscriptions_release_their_reader(
    tenant: TenantClient, live_url: str, app: Starlette
) -> None:
    hub = app.state.hub
    async with ws_session(live_url, tenant.token()) as session:
        stream = session.subscribe(events())
        receiving = asyncio.create_task(take(stream, 1, 5))
        await asyncio.sleep(0.3)
        assert tenant.id in hub.tenants()
        receiving.cancel()
    for _ in range(100):
        if tenant.id not in hub.tenants():
            break
        await asyncio.sleep(0.05)
    assert tenant.id not in hub.tenants()
    redis: Redis = app.state.stores.redis
    assert await redis.ping()
