"""The app on a real Redis Cluster (three primaries, three replicas, on loopback): counters,
the relay and subscriptions, the task queue, rate limits and persisted queries each work
through redis-py's cluster client, with each tenant's keys on the primary of its slot."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import pytest
import pytest_asyncio
from httpx import ASGITransport, AsyncClient
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from app.auth import Role
from app.errors import StoreUnavailable
from app.ids import decode_id
from app.queue.core import NewTask, TaskQueue
from app.settings import Settings
from app.stores.redis import keys
from app.stores.redis.client import create_redis
from app.stores.redis.replicated import fewest_replicas
from tests.api.subscriptions_client import events, ws_session
from tests.redis_cluster import LoopbackCluster, app_on_cluster, loopback_cluster
from tests.serving import served
from tests.support import TenantClient, new_tenant

CREATE = "mutation($n: String!) { createCampaign(input: {name: $n}) { campaign { id } } }"
ENGAGE = """mutation($id: ID!, $n: Int!) {
  recordEngagement(input: {campaignId: $id, kind: LIKE, count: $n}) { engagement { likes } } }"""
PAGE = "{ campaigns(first: 50) { edges { node { id engagement { likes } } } } }"
AGENT = 'mutation { createAgent(input: {name: "Runner"}) { agent { id } } }'
ENQUEUE = """mutation($agent: ID!, $key: String!) {
  enqueueTask(input: {agentId: $agent, kind: "post.write", idempotencyKey: $key}) {
    task { id status } } }"""
CLAIM = """mutation { claimTasks(input: {max: 5, leaseSeconds: 60}) {
  leases { leaseToken task { id status } } } }"""
COMPLETE = """mutation($id: ID!, $token: String!) {
  completeTask(input: {id: $id, leaseToken: $token}) { task { status } } }"""
QUEUED = "query($id: ID!) { agent(id: $id) { queuedTasks activeTasks } }"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackCluster]:
    with loopback_cluster(tmp_path_factory.mktemp("redis-cluster")) as running:
        yield running


@pytest_asyncio.fixture(scope="module")
async def cluster_app(
    settings: Settings,
    pg_server_url: str,
    cluster: LoopbackCluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Starlette]:
    data_dir = tmp_path_factory.mktemp("cluster-data")
    async with app_on_cluster(settings, pg_server_url, cluster, data_dir) as application:
        yield application


@pytest_asyncio.fixture(scope="module")
async def cluster_http(cluster_app: Starlette) -> AsyncIterator[AsyncClient]:
    transport = ASGITransport(app=cluster_app)
    async with AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def _engine(app: Starlette) -> AsyncEngine:
    engine: AsyncEngine = app.state.stores.engine
    return engine


def _redis(app: Starlette) -> RedisCluster:
    client: RedisCluster = app.state.stores.redis
    return client


async def _tenant(app: Starlette, http: AsyncClient) -> TenantClient:
    return await new_tenant(_engine(app), http)


async def test_the_app_runs_on_a_cluster_client(cluster_app: Starlette) -> None:
    assert isinstance(cluster_app.state.stores.redis, RedisCluster)


async def test_counters_of_tenants_on_every_primary_read_back_in_one_page(
    cluster_app: Starlette, cluster_http: AsyncClient, cluster: LoopbackCluster
) -> None:
    redis = _redis(cluster_app)
    primaries = {node.port for node in cluster.primaries()}
    owners: set[int] = set()
    tenants = 0
    while owners != primaries:  # until tenants landed on each primary (a few, by chance)
        tenants += 1
        assert tenants <= 40, f"40 tenants hashed to {owners} of {primaries} only"
        tenant = await _tenant(cluster_app, cluster_http)
        created = []
        for index in range(2):
            data = await tenant.data(CREATE, {"n": f"C{index}"})
            created.append(data["createCampaign"]["campaign"]["id"])
            await tenant.data(ENGAGE, {"id": created[-1], "n": index + 1})
        page = await tenant.data(PAGE)
        likes = {
            edge["node"]["id"]: edge["node"]["engagement"]["likes"]
            for edge in page["campaigns"]["edges"]
        }
        assert likes == {campaign: index + 1 for index, campaign in enumerate(created)}
        counter = keys.campaign_engagement(tenant.id, decode_id(created[0], "Campaign"))
        owner = redis.get_node_from_key(counter)
        assert owner is not None and await redis.exists(counter)
        owners.add(int(owner.port))


async def test_a_subscriber_receives_what_the_relay_publishes_to_the_tenants_slot(
    cluster_app: Starlette, cluster_http: AsyncClient
) -> None:
    tenant = await _tenant(cluster_app, cluster_http)
    async with served(cluster_app) as host, ws_session(host, tenant.token(Role.VIEWER)) as ws:
        stream = ws.subscribe(events())
        received: list[dict[str, Any]] = []

        async def read(count: int) -> None:
            async for item in stream:
                received.append(item["campaignEvents"])
                if len(received) == count:
                    return

        reading = asyncio.create_task(read(2))
        await asyncio.sleep(0.5)
        data = await tenant.data(CREATE, {"n": "Live"})
        campaign = data["createCampaign"]["campaign"]["id"]
        await tenant.data(ENGAGE, {"id": campaign, "n": 4})
        async with asyncio.timeout(20):
            await reading
    assert [(e["type"], e["campaign"]["id"]) for e in received] == [
        ("CREATED", campaign),
        ("ENGAGEMENT", campaign),
    ]


async def test_tasks_are_enqueued_claimed_and_completed_inside_the_tenants_slot(
    cluster_app: Starlette, cluster_http: AsyncClient
) -> None:
    tenant = await _tenant(cluster_app, cluster_http)
    agent = (await tenant.data(AGENT))["createAgent"]["agent"]["id"]
    queued = [
        (await tenant.data(ENQUEUE, {"agent": agent, "key": f"k{i}"}))["enqueueTask"]["task"]
        for i in range(3)
    ]
    assert {task["status"] for task in queued} == {"QUEUED"}
    assert (await tenant.data(QUEUED, {"id": agent}))["agent"] == {
        "queuedTasks": 3,
        "activeTasks": 0,
    }
    runtime = tenant.agent_token(decode_id(agent, "Agent"))
    leases = (await tenant.data(CLAIM, token=runtime))["claimTasks"]["leases"]
    assert sorted(lease["task"]["id"] for lease in leases) == sorted(t["id"] for t in queued)
    for lease in leases:
        done = await tenant.data(
            COMPLETE, {"id": lease["task"]["id"], "token": lease["leaseToken"]}, token=runtime
        )
        assert done["completeTask"]["task"]["status"] == "SUCCEEDED"
    assert (await tenant.data(QUEUED, {"id": agent}))["agent"] == {
        "queuedTasks": 0,
        "activeTasks": 0,
    }


async def test_a_burst_of_commands_on_one_node_is_served_past_a_hundred_at_once(
    cluster: LoopbackCluster,
) -> None:
    """Each command holds its connection for 0.3 s, so 300 at once need 300 connections to
    the node of their slot: redis-py's default cap (100 a node) refused 200 of them."""
    redis = create_redis(cluster.url, timeout=10, max_connections=50)
    try:
        waits = [redis.blpop(["{burst}nothing"], timeout=0.3) for _ in range(300)]
        answers = await asyncio.gather(*waits, return_exceptions=True)
    finally:
        await redis.aclose()
    assert all(answer is None for answer in answers), Counter(map(type, answers))


async def test_an_enqueue_answers_once_the_replica_of_its_tenants_primary_holds_it(
    cluster_app: Starlette,
) -> None:
    redis = _redis(cluster_app)
    tenant = uuid.uuid4()
    client = cast(Redis, redis)  # as the app holds it: create_redis() returns either as Redis
    assert await fewest_replicas(client) == 1  # one per primary: what `chimera doctor` reads
    queue = TaskQueue(client, tenant, 10.0, replicas=1, replica_timeout_ms=5000)
    task = NewTask(agent_id=uuid.uuid4(), campaign_id=None, kind="post", payload=None)
    record, created = await queue.enqueue(task, "on-the-replica")
    assert created
    key = keys.task(tenant, record.id)
    replica = redis.get_node_from_key(key, replica=True)
    assert replica is not None
    # Straight to the replica, which answers reads of its slots once told READONLY.
    direct = Redis(host=replica.host, port=int(replica.port), single_connection_client=True)
    try:
        await direct.execute_command("READONLY")  # type: ignore[no-untyped-call]
        assert (await direct.hgetall(key))[b"status"] == b"QUEUED"
    finally:
        await direct.aclose()
    # Asked for more replicas than a primary has: refused within its wait, not hung.
    greedy = TaskQueue(client, tenant, 10.0, replicas=2, replica_timeout_ms=100)
    with pytest.raises(StoreUnavailable, match="1 of 2 replicas"):
        await greedy.enqueue(task, "on-the-replica")


async def test_rate_limits_and_persisted_queries_work_on_the_cluster(
    cluster_app: Starlette, cluster_http: AsyncClient
) -> None:
    tenant = await _tenant(cluster_app, cluster_http)
    limit = await tenant.data("{ rateLimit { remaining } }")
    assert limit["rateLimit"]["remaining"] > 0
    query = "{ viewer { role } }"
    digest = hashlib.sha256(query.encode()).hexdigest()
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    headers = {"Authorization": f"Bearer {tenant.token()}"}
    first = await cluster_http.post(
        "/graphql", json={"query": query, "extensions": extensions}, headers=headers
    )
    assert first.json()["data"] == {"viewer": {"role": "EDITOR"}}
    by_hash = await cluster_http.post("/graphql", json={"extensions": extensions}, headers=headers)
    assert by_hash.json()["data"] == {"viewer": {"role": "EDITOR"}}
    assert await _redis(cluster_app).exists(keys.persisted_query(tenant.id, digest))
