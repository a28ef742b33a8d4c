"""Building and checking the asyncio Redis client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast
from urllib.parse import urlparse

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.errors import StoreUnavailable


def redact(url: str) -> str:
    parsed = urlparse(url)
    if parsed.password:
        netloc = f"{parsed.username or ''}:***@{parsed.hostname}"
        if parsed.port:
            netloc += f":{parsed.port}"
        parsed = parsed._replace(netloc=netloc)
    return parsed.geturl()


# `redis+cluster://host:port/0` (or `rediss+cluster://`): a Redis Cluster, reached through any
# of its nodes, which tells the client about the others.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def is_cluster_url(url: str) -> bool:
    return urlparse(url).scheme in CLUSTER_SCHEMES


# Redis's default maxclients: past it a server refuses connections whatever a client's cap.
SERVER_MAXCLIENTS = 10_000


def create_redis(url: str, *, timeout: float, max_connections: int | None = None) -> Redis:
    """A pooled client whose connects and commands give up after ``timeout`` seconds.

    With ``max_connections``, a burst (a thousand dashboards subscribing at once) waits for a
    pooled connection, up to ``timeout``, instead of opening a connection per caller.
    Without it, each concurrent command gets a connection, up to SERVER_MAXCLIENTS.

    A cluster URL gives redis-py's cluster client, which routes each command, script and
    pipeline by its keys' slot, follows MOVED and ASK redirections and a failover's new
    primary. Every key of a tenant shares one slot (app/stores/redis/keys.py), so the rest of
    the app uses it as it uses a single Redis.
    """
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": 30,
        "decode_responses": False,
    }
    if is_cluster_url(url):
        return _create_cluster(url, options, max_connections)
    if max_connections is None:
        # Uncapped (the event readers: a blocking XREAD per tenant stream with subscribers
        # here). redis-py's default pool refuses the 101st connection at once.
        return Redis.from_url(url, max_connections=SERVER_MAXCLIENTS, **options)
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=timeout, **options
    )
    return Redis.from_pool(pool)  # the client owns the pool and closes it


def _create_cluster(url: str, options: dict[str, Any], max_connections: int | None) -> Redis:
    parsed = urlparse(url)
    plain = parsed._replace(scheme=CLUSTER_SCHEMES[parsed.scheme]).geturl()
    # No cap of our own per node: redis-py's cluster pool cannot make a burst wait for a
    # connection (past its cap every command fails at once with MaxConnectionsError), so it
    # opens what concurrent commands need, up to a node's own limit (maxclients, 10,000 by
    # default). redis-py's default cap, 100 a node, refused the 101st command in flight.
    # ``max_connections`` is the single-server pool's.
    del max_connections
    # A cluster client is not a subclass of the single-server one, but answers the same
    # commands, scripts and (non-transactional) pipelines, which is all the app uses.
    return cast(Redis, RedisCluster.from_url(plain, max_connections=SERVER_MAXCLIENTS, **options))


async def read_stream(client: Redis, key: str, after: str, *, block_ms: int, count: int) -> Any:
    """XREAD of one stream after ``after``, waiting up to ``block_ms`` for an entry.

    On a cluster client, routed to the key's node here. redis-py finds the keys of XREAD
    (whose keys move with STREAMS) by asking its default node `COMMAND GETKEYS` before every
    call, outside the handling that refreshes its map of the cluster: were that node killed,
    a client that only reads streams would ask the dead node forever, even after a replica
    took over. Routing it here also saves that round trip on each read.
    """
    if not isinstance(client, RedisCluster):
        return await client.xread({key: after}, block=block_ms, count=count)
    # A refresh that a failed command asked for happens before the key is routed, so a
    # read after a failover goes to the new primary.
    await client.initialize()
    node = client.get_node_from_key(key)
    return await client.execute_command(
        "XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS", key, after, target_nodes=node
    )


async def ping(client: Redis, url: str, *, timeout: float) -> str:
    try:
        async with asyncio.timeout(timeout):
            info = await client.info("server")
    except Exception as exc:
        raise StoreUnavailable("Redis", f"{redact(url)}: {type(exc).__name__}: {exc}") from exc
    return str(info.get("redis_version", "unknown"))


async def ping_url(url: str, *, timeout: float) -> str:
    """Check a Redis URL with a client of its own, closed afterwards (CLI and doctor)."""
    client = create_redis(url, timeout=timeout)
    try:
        return await ping(client, url, timeout=timeout)
    finally:
        await client.aclose()


@asynccontextmanager
async def unavailable_as_error(timeout: float) -> AsyncIterator[None]:
    """Bound a Redis call and turn a dead or slow server into STORE_UNAVAILABLE."""
    try:
        async with asyncio.timeout(timeout):
            yield
    except (RedisConnectionError, RedisTimeoutError, TimeoutError, OSError) as exc:
        raise StoreUnavailable("Redis", type(exc).__name__) from exc
