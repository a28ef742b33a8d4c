"""Reads of many hashes in one Redis command.

A page of 50 campaigns and their 250 agents needs 300 hashes. A pipeline sends them in one
round trip but still as 300 commands, each built, sent, parsed and answered one by one, on
both sides; one script call reads them all as a single command. Every key one call names
belongs to one tenant, which is what will let the call keep working on Redis Cluster once
a tenant's keys share a hash slot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

HMGET_MANY = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('HMGET', key, unpack(ARGV))
end
return out
"""
HMGET_MANY_SHA = hashlib.sha1(HMGET_MANY.encode()).hexdigest()


async def load_scripts(redis: Redis) -> None:
    """Load the scripts at start-up, so that requests call them by hash from the first one
    on; after a Redis restart the first call loads them again (see ``hmget_many``)."""
    await redis.script_load(HMGET_MANY)


async def hmget_many(
    redis: Redis, keys: Sequence[str], fields: Sequence[str]
) -> list[list[bytes | None]]:
    """``HMGET key *fields`` for every key, in one command; one list of values per key."""
    if not keys:
        return []
    try:
        reply = await redis.evalsha(HMGET_MANY_SHA, len(keys), *keys, *fields)
    except NoScriptError:  # a restarted or new server: load it once, then by hash again
        reply = await redis.eval(HMGET_MANY, len(keys), *keys, *fields)
    return [list(values) for values in reply]
