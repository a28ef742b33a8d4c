"""Three `chimera serve` instances behind HAProxy, a mixed load through it, one instance killed
(SIGKILL) mid-load: every write a client was told succeeded is stored, every subscriber
receives every event exactly once and in order (reconnecting through the balancer with
`after`), and every instance answers the same afterwards (no cache of one disagrees).

The instances share the test session's PostgreSQL and Redis, whose own app also runs a relay:
four relays contend for the outbox's lock, so the events' path survives whichever dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import Role
from app.events.relay import is_stream_event
from app.ids import decode_id
from tests.api.load_clients import (
    SETTLE_SECONDS,
    Acknowledged,
    Subscriber,
    Transient,
    Writer,
    drained,
    post,
    stream_after,
)
from tests.balancer import Balancer, haproxy
from tests.processes import free_port, served_env, start_serve
from tests.support import TenantClient

INSTANCES = 3
SUBSCRIBERS = 6
CAMPAIGNS = 4
LOAD_BEFORE_KILL_SECONDS = 4.0
LOAD_AFTER_KILL_SECONDS = 5.0

CREATE = "mutation($name: String!) { createCampaign(input: {name: $name}) { campaign { id } } }"
ENGAGE = """
mutation($id: ID!, $key: String!) {
  recordEngagement(input: {campaignId: $id, kind: CLICK, idempotencyKey: $key}) {
    engagement { clicks }
  }
}"""
STATUS = """
mutation($id: ID!, $status: CampaignStatus!) {
  setCampaignStatus(input: {id: $id, status: $status}) { campaign { status } }
}"""
ENQUEUE = """
mutation($agent: ID!, $campaign: ID!, $key: String!) {
  enqueueTask(input: {agentId: $agent, campaignId: $campaign, kind: "post.write",
                      idempotencyKey: $key}) { task { id } }
}"""
DASHBOARD = """
{ campaigns(first: 20) { edges { node { id name status engagement { clicks }
  agents(first: 5) { edges { node { id name } } } } } } }"""
CAMPAIGN = "query($id: ID!) { campaign(id: $id) { status engagement { clicks } } }"
TASK = "query($id: ID!) { task(id: $id) { id status } }"
AGENT = 'mutation { createAgent(input: {name: "Scaler"}) { agent { id } } }'
ASSIGN = """
mutation($campaign: ID!, $agent: ID!) {
  assignAgents(input: {campaignId: $campaign, agentIds: [$agent]}) { campaign { id } }
}"""


def _read(path: Path) -> str:
    return path.read_text()


@contextlib.asynccontextmanager
async def _instances(
    env: dict[str, str], directory: Path
) -> AsyncIterator[list[tuple[int, asyncio.subprocess.Process]]]:
    ports = [free_port() for _ in range(INSTANCES)]
    started = await asyncio.gather(
        *(start_serve(env, port, directory / f"app{i}.log") for i, port in enumerate(ports)),
        return_exceptions=True,
    )
    processes = [p for p in started if isinstance(p, asyncio.subprocess.Process)]
    try:
        for outcome in started:
            if isinstance(outcome, BaseException):
                raise outcome
        yield list(zip(ports, processes, strict=True))
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                async with asyncio.timeout(30):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


async def _setup(tenant: TenantClient) -> tuple[list[str], str]:
    agent = (await tenant.data(AGENT))["createAgent"]["agent"]["id"]
    campaigns = []
    for index in range(CAMPAIGNS):
        created = await tenant.data(CREATE, {"name": f"Scaled {index}"})
        campaign = created["createCampaign"]["campaign"]["id"]
        await tenant.data(ASSIGN, {"campaign": campaign, "agent": agent})
        await tenant.data(STATUS, {"id": campaign, "status": "ACTIVE"})
        campaigns.append(campaign)
    return campaigns, agent


async def test_killing_one_of_three_instances_behind_haproxy_loses_no_event_and_no_write(
    tenant: TenantClient,
    engine: AsyncEngine,
    database_url: str,
    redis_url: str,
    pgvector_url: str,
    tmp_path: Path,
) -> None:
    env = served_env(
        database_url,
        redis_url,
        pgvector_url,
        tmp_path / "data",
        CHIMERA_INDEXER="false",
        CHIMERA_MEDIA_SWEEP_SECONDS="0",
        CHIMERA_WS_KEEPALIVE_SECONDS="1",
    )
    campaigns, agent = await _setup(tenant)
    redis = Redis.from_url(redis_url)
    try:
        await drained(engine, tenant)
        setup_events = await stream_after(redis, tenant, "-")
        assert setup_events, "the setup's events were not published"
        start, start_event = setup_events[-1]
        async with _instances(env, tmp_path) as instances, httpx.AsyncClient(timeout=30) as client:
            with haproxy([port for port, _ in instances], tmp_path) as balancer:
                async with _subscribers(balancer, tenant, start) as subscribers:
                    acked = await _mixed_load_with_a_kill(
                        client, balancer, tenant, campaigns, agent, instances[0][1]
                    )
                    reconnects = [s.reconnects for s in subscribers]
                    await drained(engine, tenant)
                    expected = await _stream_since(redis, tenant, start, engine, start_event, acked)
                    async with asyncio.timeout(SETTLE_SECONDS):
                        for subscriber in subscribers:
                            await subscriber.received_at_least(len(expected))
                    for subscriber in subscribers:
                        assert subscriber.received == expected, (
                            f"{len(subscriber.received)} received of {len(expected)}; "
                            f"reconnects {subscriber.reconnects}, errors {dict(subscriber.errors)}"
                        )
                    assert sum(reconnects) >= 1, "the kill cut no subscriber"
                    survivors = [f"127.0.0.1:{port}" for port, _ in instances[1:]]
                    await _every_acknowledged_write_is_stored(
                        client, [balancer.host, *survivors], tenant, engine, campaigns, acked
                    )
        # Two instances' relays and metrics consumers raced each other and the test app's all
        # along: none of them may have failed (a deadlock between metrics consumers did).
        for index in range(1, INSTANCES):
            errors = [
                line
                for line in _read(tmp_path / f"app{index}.log").splitlines()
                if " ERROR " in line
            ]
            assert not errors, errors
        print(  # shown with -s: what the kill cost clients, for docs/scaling.md
            f"events {len(expected)}, reconnects {reconnects}, "
            f"writes retried {dict(acked.transient)}, reads {dict(acked.reads)}, "
            f"clicks {sum(acked.clicks.values())}, tasks {len(acked.tasks)}, "
            f"statuses {len(acked.statuses)}, created {len(acked.created)}"
        )
    finally:
        await redis.aclose()


@contextlib.asynccontextmanager
async def _subscribers(
    balancer: Balancer, tenant: TenantClient, start: str
) -> AsyncIterator[list[Subscriber]]:
    """SUBSCRIBERS subscriptions through the balancer from ``start``, opened one at a time:
    round robin then spreads them over every instance, so the killed one holds some."""
    subscribers = [
        Subscriber(balancer.host, tenant.token(Role.VIEWER), start) for _ in range(SUBSCRIBERS)
    ]
    tasks = []
    try:
        for subscriber in subscribers:
            tasks.append(asyncio.create_task(subscriber.run()))
            async with asyncio.timeout(30):
                await subscriber.subscribed.wait()
        yield subscribers
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _mixed_load_with_a_kill(
    client: httpx.AsyncClient,
    balancer: Balancer,
    tenant: TenantClient,
    campaigns: list[str],
    agent: str,
    victim: asyncio.subprocess.Process,
) -> Acknowledged:
    """Writes, reads and enqueues through the balancer; ``victim`` killed halfway."""
    acked = Acknowledged()
    host = balancer.host
    token = tenant.token(Role.EDITOR)
    stop = asyncio.Event()
    writer = Writer(client, host, token, acked)

    async def engage(index: int) -> None:
        sequence = 0
        while not stop.is_set():
            campaign = campaigns[(index + sequence) % len(campaigns)]
            key = f"w{index}-{sequence}"
            variables = {"id": campaign, "key": key}
            done = await writer.until_acknowledged(key, ENGAGE, variables)
            if done is not None:
                acked.clicks[campaign] += 1
            sequence += 1

    async def change_statuses() -> None:
        sequence = 0
        while not stop.is_set():
            campaign = campaigns[sequence % len(campaigns)]
            status = "PAUSED" if acked.statuses.get(campaign, "ACTIVE") == "ACTIVE" else "ACTIVE"
            variables = {"id": campaign, "status": status}
            done = await writer.until_acknowledged(f"status {campaign}", STATUS, variables)
            if done is not None:
                acked.statuses[campaign] = status
            sequence += 1
            await asyncio.sleep(0.05)

    async def enqueue() -> None:
        sequence = 0
        while not stop.is_set():
            variables = {"agent": agent, "campaign": campaigns[0], "key": f"task-{sequence}"}
            done = await writer.until_acknowledged(f"task-{sequence}", ENQUEUE, variables)
            if done is not None:
                acked.tasks.append(done["enqueueTask"]["task"]["id"])
            sequence += 1
            await asyncio.sleep(0.05)

    async def create() -> None:
        # createCampaign takes no idempotency key, so a failed one is not retried (it may or
        # may not have been stored); the acknowledged ones must all be there.
        sequence = 0
        while not stop.is_set():
            with contextlib.suppress(Transient):
                data = await post(client, host, token, CREATE, {"name": f"Load {sequence}"})
                acked.created.append(data["createCampaign"]["campaign"]["id"])
            sequence += 1
            await asyncio.sleep(0.1)

    async def read() -> None:
        while not stop.is_set():
            try:
                await post(client, host, token, DASHBOARD, {})
                acked.reads["ok"] += 1
            except Transient as exc:
                acked.reads[str(exc)] += 1

    writers = [
        *(asyncio.create_task(engage(i)) for i in range(3)),
        asyncio.create_task(change_statuses()),
        asyncio.create_task(enqueue()),
        asyncio.create_task(create()),
        *(asyncio.create_task(read()) for _ in range(2)),
    ]
    try:
        await asyncio.sleep(LOAD_BEFORE_KILL_SECONDS)
        victim.kill()
        await victim.wait()
        await asyncio.sleep(LOAD_AFTER_KILL_SECONDS)
        stop.set()
        async with asyncio.timeout(SETTLE_SECONDS):
            await asyncio.gather(*writers)
    finally:
        stop.set()
        for task in writers:
            task.cancel()
    assert not acked.never_acknowledged, acked.never_acknowledged
    assert acked.reads["ok"] > 0 and sum(acked.clicks.values()) > 0, acked
    return acked


async def _stream_since(
    redis: Redis,
    tenant: TenantClient,
    start: str,
    engine: AsyncEngine,
    start_event: int,
    acked: Acknowledged,
) -> list[str]:
    """The stream ids after ``start``, checked against what was committed: each outbox event
    that subscriptions carry was published exactly once (in commit order, which id order is
    not: app/events/relay.py), and each acknowledged task's TASK_QUEUED (written by the
    queue's own script, outbox id 0) is there once."""
    entries = await stream_after(redis, tenant, f"({start}")
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT id, aggregate_type, event_type FROM outbox"
                    " WHERE tenant_id = :t AND id > :after ORDER BY id"
                ),
                {"t": tenant.id, "after": start_event},
            )
        ).all()
    committed = [row.id for row in rows if is_stream_event(row.aggregate_type, row.event_type)]
    published = [event for _, event in entries if event != 0]
    assert sorted(published) == committed, "an event was published twice, or not at all"
    queued = sum(1 for _, event in entries if event == 0)
    assert queued == len(set(acked.tasks))
    return [entry_id for entry_id, _ in entries]


async def _every_acknowledged_write_is_stored(
    client: httpx.AsyncClient,
    hosts: list[str],
    tenant: TenantClient,
    engine: AsyncEngine,
    campaigns: list[str],
    acked: Acknowledged,
) -> None:
    token = tenant.token(Role.VIEWER)
    async with engine.connect() as conn:
        for campaign in campaigns:
            committed = await conn.scalar(
                text(
                    "SELECT coalesce(sum((payload->>'count')::int), 0) FROM outbox"
                    " WHERE event_type = 'ENGAGEMENT' AND aggregate_id = :c"
                ),
                {"c": _uuid(campaign)},
            )
            assert committed == acked.clicks[campaign], (campaign, committed, acked.clicks)
    for host in hosts:  # the balancer and each survivor, directly: every one answers the same
        for campaign in campaigns:
            data = await post(client, host, token, CAMPAIGN, {"id": campaign})
            assert data["campaign"]["engagement"]["clicks"] == acked.clicks[campaign], host
            assert data["campaign"]["status"] == acked.statuses.get(campaign, "ACTIVE"), host
        for task in acked.tasks:
            assert (await post(client, host, token, TASK, {"id": task}))["task"], task
        for campaign in acked.created:
            assert (await post(client, host, token, CAMPAIGN, {"id": campaign}))["campaign"]


def _uuid(node_id: str) -> str:
    return str(decode_id(node_id, "Campaign"))
