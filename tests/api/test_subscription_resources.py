"""A thousand subscriptions come and go; the server keeps nothing of them.

Sockets end in each way a real client ends them: the client completes the operation, closes
the socket, vanishes from the network without a close frame, or vanishes in the middle of a
replay. Afterwards the process's tasks, its Redis connections and its traced memory are back
to what they were before, and the fan-out holds no reader or subscriber for those tenants.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any
from uuid import UUID

import psutil
import pytest
from graphql import print_ast
from graphql.execution.collect_fields import CollectedFields
from httpx import AsyncClient
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from websockets.asyncio.client import ClientConnection

from app.auth import Role
from app.events.hub import StreamHub
from app.ids import decode_id
from app.stores.postgres import reads as loader_reads
from app.stores.redis import keys
from tests.api import raw_ws
from tests.api.hub_state import until, until_subscribed
from tests.api.subscriptions_client import EVENTS_QUERY
from tests.api.test_subscriptions import STATUS, new_campaign, relayed
from tests.support import TenantClient, new_tenant

LIVE_TENANTS = 3
LIVE_PER_TENANT = 300  # completed, closed and dropped: a third of each
REPLAYING = 100  # dropped mid-replay
REPLAY_EVENTS = 700  # more than one replay chunk
OPENING_AT_ONCE = 50


@dataclass(frozen=True)
class Usage:
    tasks: int
    redis_connections: int
    subscribers: int
    readers: int
    objects: int


def usage(hub: StreamHub, redis_port: int) -> Usage:
    connections = psutil.Process().net_connections(kind="tcp")
    return Usage(
        tasks=len(asyncio.all_tasks()),
        redis_connections=sum(
            1
            for c in connections
            if c.raddr and c.raddr.port == redis_port and c.status == "ESTABLISHED"
        ),
        subscribers=sum(len(reader.subscribers) for reader in hub.readers.values()),
        readers=len(hub.readers),
        objects=len(gc.get_objects()),
    )


async def in_batches(actions: list[Callable[[], Awaitable[None]]]) -> None:
    for start in range(0, len(actions), OPENING_AT_ONCE):
        await asyncio.gather(*(action() for action in actions[start : start + OPENING_AT_ONCE]))


async def next_event(socket: ClientConnection) -> str:
    async with asyncio.timeout(30):
        message = await raw_ws.receive(socket)
    assert message["type"] == "next", message
    assert not message["payload"].get("errors"), message
    event_id: str = message["payload"]["data"]["campaignEvents"]["id"]
    return event_id


async def tenant_with_a_campaign(
    engine: AsyncEngine, http: AsyncClient, *statuses: str
) -> tuple[TenantClient, UUID]:
    """A fresh tenant with one campaign (set through ``statuses``), every event of it already
    in the stream, so that only what a test pushes next is live."""
    tenant = await new_tenant(engine, http)
    campaign_id = await new_campaign(tenant)
    for status in statuses:
        await tenant.data(STATUS, {"id": campaign_id, "s": status})
    await relayed(engine, tenant)
    return tenant, decode_id(campaign_id, "Campaign")


async def push_event(app: Starlette, tenant_id: UUID, campaign: UUID, event_id: int = 1) -> None:
    """Put an event in the tenant's stream directly, as the relay would."""
    await app.state.stores.redis.xadd(
        keys.event_stream(tenant_id),
        {
            "event": event_id,
            "type": "UPDATED",
            "campaign": str(campaign),
            "at": datetime.now(UTC).isoformat(),
        },
    )


@contextmanager
def campaign_reads(engine: AsyncEngine, campaign: UUID) -> Iterator[list[str]]:
    """The SQL statements that read this campaign while the block runs, through SQLAlchemy
    or through the loaders' direct reads."""
    reads: list[str] = []

    def read(on: AsyncEngine, statement: str, parameters: Any) -> None:
        if "FROM campaign " in statement and str(campaign) in repr(parameters):
            reads.append(statement)

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *rest: Any) -> None:
        read(engine, statement, parameters)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        with loader_reads.watch(read):
            yield reads
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


@dataclass
class Fixture:
    live: list[tuple[TenantClient, str]]
    replaying: tuple[TenantClient, str]


async def a_round(hub: StreamHub, fixture: Fixture, host: str, status: str) -> Usage:
    """Open every subscription, prove each is live, end them all; returns usage at the peak."""
    live: list[tuple[ClientConnection, TenantClient, str]] = []

    async def open_live(tenant: TenantClient, campaign_id: str) -> None:
        socket = await raw_ws.open_socket(host, tenant.token())
        await raw_ws.subscribe(socket, "1")
        live.append((socket, tenant, campaign_id))

    async def replay_and_vanish() -> None:
        tenant, _campaign = fixture.replaying
        socket = await raw_ws.open_socket(host, tenant.token())
        await raw_ws.subscribe(socket, "1", after="0-0")
        await next_event(socket)  # the stream holds more: the server is mid-replay
        raw_ws.drop(socket)

    await in_batches(
        [
            (lambda t=tenant, c=campaign: open_live(t, c))
            for tenant, campaign in fixture.live
            for _ in range(LIVE_PER_TENANT)
        ]
        + [replay_and_vanish for _ in range(REPLAYING)]
    )
    await until(lambda: usage(hub, 0).subscribers >= len(live), timeout=30)
    peak = usage(hub, 0)
    # One commit per live tenant reaches every live socket: all of them were really subscribed.
    for tenant, campaign_id in fixture.live:
        await tenant.data(STATUS, {"id": campaign_id, "s": status})
    await asyncio.gather(*(next_event(socket) for socket, _t, _c in live))

    thirds = len(live) // 3
    for socket, _t, _c in live[:thirds]:
        await raw_ws.complete(socket, "1")
    await asyncio.gather(*(socket.close() for socket, _t, _c in live[:thirds]))
    await asyncio.gather(*(socket.close() for socket, _t, _c in live[thirds : 2 * thirds]))
    for socket, _t, _c in live[2 * thirds :]:
        raw_ws.drop(socket)
    return peak


async def settle(hub: StreamHub, tenants: set[UUID], redis_port: int, baseline: Usage) -> Usage:
    """Usage once the server has noticed every ending (a dropped peer takes a moment)."""
    async with asyncio.timeout(30):
        while True:
            gc.collect()
            now = usage(hub, redis_port)
            if (
                not tenants & hub.tenants()
                and now.tasks <= baseline.tasks
                and now.subscribers <= baseline.subscribers
                and now.redis_connections <= baseline.redis_connections
            ):
                return now
            await asyncio.sleep(0.1)


async def test_opening_and_dropping_1000_subscriptions_returns_tasks_redis_and_memory_to_baseline(
    engine: AsyncEngine, http: AsyncClient, live_url: str, app: Starlette, redis_url: str
) -> None:
    hub: StreamHub = app.state.hub
    redis = app.state.stores.redis
    redis_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    live = []
    for _ in range(LIVE_TENANTS):
        tenant = await new_tenant(engine, http)
        live.append((tenant, await new_campaign(tenant)))
    replay_tenant = await new_tenant(engine, http)
    replay_campaign = await new_campaign(replay_tenant)
    await relayed(engine, replay_tenant)
    at = datetime.now(UTC).isoformat()
    campaign_pk = decode_id(replay_campaign, "Campaign")
    async with redis.pipeline(transaction=False) as pipe:
        for n in range(REPLAY_EVENTS):
            pipe.xadd(
                keys.event_stream(replay_tenant.id),
                {"event": 10_000 + n, "type": "UPDATED", "campaign": str(campaign_pk), "at": at},
            )
        await pipe.execute()
    fixture = Fixture(live=live, replaying=(replay_tenant, replay_campaign))
    tenants: set[UUID] = {t.id for t, _c in live} | {replay_tenant.id}

    # A first round brings pools, caches and lazily built code paths to their steady size.
    await a_round(hub, fixture, live_url, "ACTIVE")
    await settle(hub, tenants, redis_port, Usage(10**6, 10**6, 10**6, 10**6, 10**9))
    gc.collect()
    baseline = usage(hub, redis_port)
    peak = await a_round(hub, fixture, live_url, "PAUSED")
    after = await settle(hub, tenants, redis_port, baseline)

    assert peak.subscribers >= baseline.subscribers + LIVE_TENANTS * LIVE_PER_TENANT
    assert after.tasks <= baseline.tasks
    assert after.redis_connections <= baseline.redis_connections
    # Memory: every Python object a thousand open subscriptions held (sockets, tasks,
    # contexts, loaders, queues) is given back, bar a few percent of noise.
    print("USAGE", baseline, peak, after)
    held, kept = peak.objects - baseline.objects, after.objects - baseline.objects
    assert held > 100 * LIVE_TENANTS * LIVE_PER_TENANT, "the peak was not measured while open"
    assert kept < held // 20, (held, kept)


async def test_subscribers_of_one_tenant_share_one_campaign_read_per_event(
    engine: AsyncEngine, http: AsyncClient, live_url: str, app: Starlette
) -> None:
    hub: StreamHub = app.state.hub
    tenant, pk = await tenant_with_a_campaign(engine, http)
    sockets = [await raw_ws.open_socket(live_url, tenant.token()) for _ in range(40)]
    try:
        with campaign_reads(engine, pk) as reads:
            for socket in sockets:
                await raw_ws.subscribe(socket, "1")
            await until_subscribed(hub, tenant.id, len(sockets))
            await push_event(app, tenant.id, pk)
            delivered = await asyncio.gather(*(next_event(socket) for socket in sockets))
    finally:
        await asyncio.gather(*(socket.close() for socket in sockets))
    assert len(set(delivered)) == 1
    assert len(reads) == 1, reads


async def test_a_long_lived_subscription_does_not_grow_with_each_event(
    engine: AsyncEngine, http: AsyncClient, live_url: str, app: Starlette
) -> None:
    tenant, pk = await tenant_with_a_campaign(engine, http)
    socket = await raw_ws.open_socket(live_url, tenant.token())

    async def deliver(count: int) -> int:
        """Push ``count`` events through the open subscription; the objects left behind."""
        for n in range(count):
            await push_event(app, tenant.id, pk, n)
        for _ in range(count):
            await next_event(socket)
        gc.collect()
        return sum(type(o) is CollectedFields for o in gc.get_objects())

    try:
        await raw_ws.subscribe(socket, "1")
        await until_subscribed(app.state.hub, tenant.id, 1)
        after_few = await deliver(20)
        after_many = await deliver(300)
    finally:
        await socket.close()
    # graphql-core's memo kept two entries per event for the subscription's whole life.
    assert after_many - after_few < 20, (after_few, after_many)


NAMES_ONLY = "subscription { campaignEvents { id campaign { name } } }"


async def test_subscribers_running_the_same_operation_share_one_execution_per_event(
    engine: AsyncEngine,
    http: AsyncClient,
    live_url: str,
    app: Starlette,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub: StreamHub = app.state.hub
    tenant, pk = await tenant_with_a_campaign(engine, http)
    executions: list[str] = []
    original = StrawberryGraphQLCoreExecutionContext.execute_operation

    def counted(self: Any, serially: bool | None = None) -> Any:
        if getattr(self.root_value, "shared_results", None) is not None:
            executions.append(print_ast(self.operation))
        return original(self, serially)

    monkeypatch.setattr(StrawberryGraphQLCoreExecutionContext, "execute_operation", counted)
    # 20 dashboards alike; 5 asking for other fields; 5 alike but as viewers.
    groups = [
        ([await raw_ws.open_socket(live_url, tenant.token()) for _ in range(20)], EVENTS_QUERY),
        ([await raw_ws.open_socket(live_url, tenant.token()) for _ in range(5)], NAMES_ONLY),
        (
            [await raw_ws.open_socket(live_url, tenant.token(Role.VIEWER)) for _ in range(5)],
            EVENTS_QUERY,
        ),
    ]
    sockets = [socket for group, _query in groups for socket in group]
    try:
        for group, query in groups:
            for socket in group:
                await raw_ws.subscribe(socket, "1", query)
        await until_subscribed(hub, tenant.id, len(sockets))
        await push_event(app, tenant.id, pk)
        received = []
        async with asyncio.timeout(15):
            for socket in sockets:
                message = await raw_ws.receive(socket)
                assert message["type"] == "next", message
                received.append(message["payload"]["data"]["campaignEvents"])
    finally:
        await asyncio.gather(*(socket.close() for socket in sockets))
    assert len(executions) == 3, executions
    full, names_only, as_viewer = received[:20], received[20:25], received[25:]
    assert all(event["campaign"] == {"name": "Live"} for event in names_only)
    assert all(set(event) == {"id", "type", "occurredAt", "campaign"} for event in full)
    assert all(event == full[0] for event in full + as_viewer)


async def test_subscribers_resuming_from_the_same_event_share_the_replay(
    engine: AsyncEngine, http: AsyncClient, live_url: str
) -> None:
    tenant, pk = await tenant_with_a_campaign(engine, http, "ACTIVE", "PAUSED", "ACTIVE")
    sockets = [await raw_ws.open_socket(live_url, tenant.token()) for _ in range(10)]
    try:
        with campaign_reads(engine, pk) as reads:
            # As after a restart: every dashboard resumes from the same last event it saw.
            for socket in sockets:
                await raw_ws.subscribe(socket, "1", after="0-0")
            replayed = [[await next_event(socket) for _ in range(4)] for socket in sockets]
    finally:
        await asyncio.gather(*(socket.close() for socket in sockets))
    assert all(ids == replayed[0] for ids in replayed)
    assert len(reads) == 1, reads


CYCLES = 12
PER_CYCLE = 200


async def settle_without_collecting(hub: StreamHub, tenants: set[UUID]) -> None:
    await until(lambda: not (tenants & hub.tenants()) and not usage(hub, 0).subscribers, timeout=30)


async def test_cycles_of_subscriptions_level_off_in_objects_and_memory(
    engine: AsyncEngine, http: AsyncClient, live_url: str, app: Starlette
) -> None:
    """Subscriptions opened and dropped over and over (a reconnecting fleet of dashboards):
    after the first cycles have grown the pools and caches, a cycle leaves nothing behind,
    neither in tracked objects nor in the process's memory."""
    hub: StreamHub = app.state.hub
    tenants = [await tenant_with_a_campaign(engine, http) for _ in range(4)]
    objects: list[int] = []
    rss: list[int] = []
    process = psutil.Process()
    sockets: list[ClientConnection] = []

    async def open_one(tenant: TenantClient) -> None:
        socket = await raw_ws.open_socket(live_url, tenant.token())
        await raw_ws.subscribe(socket, "1")
        sockets.append(socket)

    for cycle in range(CYCLES):
        await in_batches(
            [partial(open_one, t) for t, _pk in tenants for _ in range(PER_CYCLE // 4)]
        )
        await until(lambda: usage(hub, 0).subscribers >= len(sockets), timeout=30)
        for tenant, pk in tenants:
            await push_event(app, tenant.id, pk, event_id=cycle + 1)
        await asyncio.gather(*(next_event(socket) for socket in sockets))
        half = len(sockets) // 2
        await asyncio.gather(*(socket.close() for socket in sockets[:half]))
        for socket in sockets[half:]:
            raw_ws.drop(socket)
        sockets.clear()
        await settle_without_collecting(hub, {t.id for t, _pk in tenants})
        # Memory as the app's own collector leaves it (no forced collection first): cyclic
        # garbage per subscription would pile up between its rare full collections.
        rss.append(process.memory_info().rss)
        gc.collect()
        objects.append(len(gc.get_objects()))
    warm = CYCLES // 3
    # Objects: the floor of the last three cycles against that of three after the warm-up.
    # A leak raises every later count; what a background task holds at the moment of one
    # count (a relay pass, a batch in flight) raises that count alone: under a second test
    # worker, such a moment moved single counts by about 900, and one at the last cycle
    # had read as 2,866 objects grown.
    grown_objects = min(objects[-3:]) - min(objects[warm : warm + 3])
    grown_rss = rss[-1] - rss[warm]
    assert grown_objects < 2_000, objects
    assert grown_rss < 24 * 2**20, [r // 2**20 for r in rss]
