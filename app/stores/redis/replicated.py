"""A script call that answers only once replicas hold what it wrote (Redis's WAIT).

Redis replicates asynchronously: a primary answers a write before any replica has it, so a
failover in the next moments can lose a write whose caller was told it succeeded. WAIT blocks
until the given number of replicas acknowledged every write made so far *on the connection
that asks*, so it must follow the script on the same connection: both go in one pipeline,
which sends them on one connection. On a cluster that is the connection to the node owning
the script's first key; WAIT has no key of its own, so it names that node.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

from app.errors import StoreUnavailable
from app.stores.redis.scripts import LuaScript


async def call_replicated(
    redis: Redis,
    script: LuaScript,
    keys: Sequence[str],
    args: Sequence[str | int | bytes],
    *,
    replicas: int,
    timeout_ms: int,
    retry_hint: str = "retry it",
) -> Any:
    """``script``'s reply once ``replicas`` replicas acknowledged its writes; STORE_UNAVAILABLE
    when fewer did within ``timeout_ms``, its message ending in ``retry_hint``. The write
    stays on the primary either way (WAIT cannot undo it), so the script must be safe to call
    again, and must write even when it finds its work done (or WAIT would not cover that
    work): the caller's retry is what finds out whether the write survived."""
    for _ in range(2):
        pipe = redis.pipeline(transaction=False)
        pipe.evalsha(script.sha, len(keys), *keys, *args)
        if isinstance(redis, RedisCluster):
            owner = redis.get_node_from_key(keys[0])
            pipe.execute_command("WAIT", replicas, timeout_ms, target_nodes=owner)
        else:
            pipe.execute_command("WAIT", replicas, timeout_ms)
        reply, acknowledged = await pipe.execute(raise_on_error=False)
        if isinstance(reply, NoScriptError):
            # Nothing ran (a restarted server): load the script where the key lives, again.
            await redis.script_load(script.source)
            continue
        if isinstance(reply, Exception):
            raise reply
        if isinstance(acknowledged, Exception):
            raise acknowledged
        if acknowledged < replicas:
            raise StoreUnavailable(
                "Redis",
                f"{acknowledged} of {replicas} replicas confirmed the write within "
                f"{timeout_ms} ms; it may or may not have been kept: {retry_hint}",
            )
        return reply
    raise StoreUnavailable("Redis", "the script could not be loaded")


async def fewest_replicas(redis: Redis) -> int:
    """Replicas attached to the primary a write goes to: the one server's, or the fewest of a
    cluster's primaries (a tenant's slot may be on any). What CHIMERA_TASK_REPLICAS can ask."""
    if isinstance(redis, RedisCluster):
        found = await redis.info("replication", target_nodes=RedisCluster.PRIMARIES)
        # One answer per node, keyed by its name; a one-primary cluster answers as a server.
        answers = found.values() if "connected_slaves" not in found else [found]
        return min(int(answer["connected_slaves"]) for answer in answers)
    return int((await redis.info("replication"))["connected_slaves"])
