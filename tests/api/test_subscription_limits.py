"""What bounds a live connection: caps per connection and per tenant, keep-alive, and the
legacy protocol that stays off unless asked for (and then authenticates first)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from app.events.hub import StreamHub
from app.main import create_app
from app.settings import Settings
from tests.api import raw_ws
from tests.api.hub_state import subscribers_of, until
from tests.api.subscriptions_client import EVENTS_QUERY
from tests.api.test_subscriptions import STATUS, new_campaign, relayed
from tests.serving import served
from tests.support import TenantClient


async def test_the_server_pings_an_idle_connection(tenant: TenantClient, live_url: str) -> None:
    socket = await raw_ws.open_socket(live_url, tenant.token())
    try:
        async with asyncio.timeout(5):  # the test app's keep-alive interval is 1 s
            message = json.loads(await socket.recv())
        assert message == {"type": "ping"}
    finally:
        await socket.close()


async def test_a_peer_that_stops_answering_is_disconnected_and_releases_its_subscription(
    tenant: TenantClient, live_url: str, app: Starlette
) -> None:
    hub: StreamHub = app.state.hub
    socket = await raw_ws.open_socket(live_url, tenant.token())
    await raw_ws.subscribe(socket, "1")
    await until(lambda: subscribers_of(hub, tenant.id) == 1)
    # The network goes silent: nothing this side reads, so no ping is answered and no
    # close frame or reset ever reaches the server.
    socket.transport.pause_reading()
    try:
        await until(lambda: subscribers_of(hub, tenant.id) == 0, timeout=15)
        assert tenant.id not in hub.tenants()
    finally:
        socket.transport.abort()


async def test_a_connection_over_its_cap_is_refused_with_a_code_and_keeps_the_rest(
    tenant: TenantClient, live_url: str, app: Starlette
) -> None:
    cap = app.state.settings.max_subscriptions_per_connection
    hub: StreamHub = app.state.hub
    socket = await raw_ws.open_socket(live_url, tenant.token())
    try:
        for n in range(cap):
            await raw_ws.subscribe(socket, str(n))
        await until(lambda: subscribers_of(hub, tenant.id) == cap)
        await raw_ws.subscribe(socket, "one-too-many")
        async with asyncio.timeout(10):
            refused = await raw_ws.receive(socket)
        assert refused["id"] == "one-too-many"
        assert refused["type"] == "error"
        assert refused["payload"][0]["extensions"]["code"] == "RATE_LIMITED"
        # The others still deliver.
        campaign_id = await new_campaign(tenant)
        got: set[str] = set()
        async with asyncio.timeout(10):
            while len(got) < cap:
                message = await raw_ws.receive(socket)
                assert message["type"] == "next", message
                got.add(message["id"])
        assert got == {str(n) for n in range(cap)}
        assert campaign_id
    finally:
        await socket.close()


async def test_a_tenant_over_its_instance_cap_is_refused_with_a_code(
    tenant: TenantClient, other_tenant: TenantClient, live_url: str, app: Starlette
) -> None:
    hub: StreamHub = app.state.hub
    cap, hub.per_tenant_cap = hub.per_tenant_cap, 2
    sockets: list[ClientConnection] = []
    try:
        for _ in range(2):
            sockets.append(await raw_ws.open_socket(live_url, tenant.token()))
            await raw_ws.subscribe(sockets[-1], "1")
        await until(lambda: subscribers_of(hub, tenant.id) == 2)
        sockets.append(await raw_ws.open_socket(live_url, tenant.token()))
        await raw_ws.subscribe(sockets[-1], "1")
        async with asyncio.timeout(10):
            refused = await raw_ws.receive(sockets[-1])
        # The refusal ends the operation: an `error` message, final by the protocol.
        assert refused["type"] == "error", refused
        assert refused["payload"][0]["extensions"]["code"] == "RATE_LIMITED"
        # Another tenant is not affected by this one's cap.
        sockets.append(await raw_ws.open_socket(live_url, other_tenant.token()))
        await raw_ws.subscribe(sockets[-1], "1")
        await until(lambda: subscribers_of(hub, other_tenant.id) == 1)
    finally:
        hub.per_tenant_cap = cap
        await asyncio.gather(*(socket.close() for socket in sockets))


async def test_legacy_graphql_ws_is_not_spoken_unless_configured(live_url: str) -> None:
    async def speak_legacy() -> None:
        async with await legacy_socket(live_url) as socket:
            await socket.send(json.dumps({"type": "connection_init", "payload": {}}))
            await socket.recv()

    with pytest.raises((InvalidHandshake, ConnectionClosed)):
        await speak_legacy()


@pytest_asyncio.fixture
async def legacy_url(settings: Settings) -> AsyncIterator[str]:
    """A second instance on the same stores with the legacy protocol switched on."""
    legacy = create_app(settings.model_copy(update={"legacy_graphql_ws": True}))
    async with LifespanManager(legacy), served(legacy) as host:
        yield host


async def legacy_socket(host: str) -> ClientConnection:
    return await connect(f"ws://{host}/graphql", subprotocols=[Subprotocol("graphql-ws")])


def start(op_id: str) -> str:
    return json.dumps(
        {"id": op_id, "type": "start", "payload": {"query": EVENTS_QUERY, "variables": {}}}
    )


async def test_legacy_graphql_ws_refuses_a_subscription_before_authentication(
    legacy_url: str,
) -> None:
    async with await legacy_socket(legacy_url) as socket:
        await socket.send(start("1"))
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                await socket.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_legacy_graphql_ws_refuses_a_bad_token(legacy_url: str) -> None:
    socket = await legacy_socket(legacy_url)
    await socket.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer nope"}})
    )
    async with asyncio.timeout(10):
        reply = json.loads(await socket.recv())
    assert reply["type"] == "connection_error"

    async def try_to_subscribe() -> None:
        async with asyncio.timeout(10):
            await socket.send(start("1"))
            await socket.recv()

    with pytest.raises(ConnectionClosed):
        await try_to_subscribe()
    await socket.close()


async def test_legacy_graphql_ws_delivers_once_authenticated(
    tenant: TenantClient, legacy_url: str, engine: AsyncEngine
) -> None:
    campaign_id = await new_campaign(tenant)
    await relayed(engine, tenant)
    async with await legacy_socket(legacy_url) as socket:
        await socket.send(
            json.dumps(
                {
                    "type": "connection_init",
                    "payload": {"Authorization": f"Bearer {tenant.token()}"},
                }
            )
        )
        async with asyncio.timeout(10):
            assert json.loads(await socket.recv())["type"] == "connection_ack"
        await socket.send(start("1"))
        await asyncio.sleep(0.3)
        await tenant.data(STATUS, {"id": campaign_id, "s": "ACTIVE"})
        async with asyncio.timeout(15):
            while True:
                message = json.loads(await socket.recv())
                if message["type"] == "data":
                    break
    event = message["payload"]["data"]["campaignEvents"]
    assert (event["type"], event["campaign"]["id"]) == ("STATUS_CHANGED", campaign_id)
