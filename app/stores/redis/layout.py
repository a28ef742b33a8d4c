"""The layout of Chimera's keys in Redis, and the one-time move from the previous one.

Layout 2 (app/stores/redis/keys.py) puts the tenant id in braces, `chimera:t:{<tenant>}:...`,
a Redis Cluster hash tag. Layout 1, before it, had none: `chimera:t:<tenant>:...`. Counters,
event streams (with their ids, which clients hold as resume cursors), the task queue and
sessions are state that must survive the upgrade, so the first process of the new version
renames every layout-1 key to its layout-2 name (RENAMENX: a key keeps its value, type and
expiry) and then records the layout, so that later starts cost one GET.

Upgrade with every process of the old version stopped: one still running would go on writing
layout-1 keys nobody reads. If it happened anyway, `chimera reconcile` rebuilds the counters
from the outbox; a layout-1 key whose layout-2 name already exists is left where it is and
logged.
"""

from __future__ import annotations

import logging
import re

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from app.stores.redis.keys import PREFIX

log = logging.getLogger(__name__)

LAYOUT_KEY = f"{PREFIX}:key-layout"
CURRENT = 2
# A layout-1 key: the tenant's UUID right after `chimera:t:`, without braces.
_LAYOUT_1 = re.compile(rb"^" + PREFIX.encode() + rb":t:([0-9a-f]{8}-[0-9a-f-]{27}):(.*)$", re.S)
_BATCH = 500


def layout_2_name(key: bytes) -> bytes | None:
    """The layout-2 name of a layout-1 key; None for any other key."""
    match = _LAYOUT_1.match(key)
    if match is None:
        return None
    return PREFIX.encode() + b":t:{" + match[1] + b"}:" + match[2]


async def upgrade_layout(redis: Redis) -> int:
    """Move layout-1 keys to their layout-2 names, once per Redis; how many were moved."""
    if await redis.get(LAYOUT_KEY) == str(CURRENT).encode():
        return 0
    moved = 0
    batch: list[tuple[bytes, bytes]] = []
    async for key in redis.scan_iter(match=f"{PREFIX}:t:*", count=1000):
        target = layout_2_name(key)
        if target is not None:
            batch.append((key, target))
        if len(batch) >= _BATCH:
            moved += await _rename(redis, batch)
            batch = []
    moved += await _rename(redis, batch)
    await redis.set(LAYOUT_KEY, CURRENT)
    if moved:
        log.info("moved %d Redis keys to key layout %d (tenant ids as hash tags)", moved, CURRENT)
    return moved


async def _rename(redis: Redis, batch: list[tuple[bytes, bytes]]) -> int:
    if not batch:
        return 0
    if isinstance(redis, RedisCluster):
        return await _copy_across_slots(redis, batch)
    async with redis.pipeline(transaction=False) as pipe:
        for key, target in batch:
            pipe.renamenx(key, target)
        replies = await pipe.execute(raise_on_error=False)
    moved = 0
    for (key, target), reply in zip(batch, replies, strict=True):
        if isinstance(reply, ResponseError):
            continue  # gone since the scan: another process starting now moved it
        if isinstance(reply, Exception):
            raise reply
        if reply:
            moved += 1
        else:
            log.warning("Redis key %r not moved: %r exists already", key, target)
    return moved


async def _copy_across_slots(redis: RedisCluster, batch: list[tuple[bytes, bytes]]) -> int:
    """RENAME cannot cross slots, and a key and its new name are in different slots: on a
    cluster each key is copied (DUMP, then RESTORE with its remaining time to live) and
    then deleted. Not atomic, which the upgrade does not need: no old process is running."""
    moved = 0
    for key, target in batch:
        if await redis.exists(target):
            log.warning("Redis key %r not moved: %r exists already", key, target)
            continue
        dumped = await redis.dump(key)
        if dumped is None:
            continue  # gone since the scan
        remaining_ms = await redis.pttl(key)
        await redis.restore(target, max(int(remaining_ms), 0), dumped)
        await redis.delete(key)
        moved += 1
    return moved
