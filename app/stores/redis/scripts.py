"""Reads of many hashes in one Redis command.

A page of 50 campaigns and their 250 agents needs 300 hashes. A pipeline sends them in one
round trip but still as 300 commands, each built, sent, parsed and answered one by one, on
both sides; one script call reads them all as a single command. Every key one call names
belongs to one tenant, and a tenant's keys share a hash slot, which is what keeps each call
working on Redis Cluster.

The engagement scripts below follow the same rule: each call names one tenant's keys only.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

# One script call: its keys (one tenant's) and its arguments.
ScriptCall = tuple[Sequence[str], Sequence[str | int | bytes]]

HMGET_MANY = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('HMGET', key, unpack(ARGV))
end
return out
"""
HMGET_MANY_SHA = hashlib.sha1(HMGET_MANY.encode()).hexdigest()


async def evalsha_each(redis: Redis, script: LuaScript, calls: Sequence[ScriptCall]) -> list[Any]:
    """Many calls of one script at once; each one's reply, or the exception it raised, in order.

    On one Redis they go in one pipeline: one round trip. redis-py refuses scripts in a
    cluster pipeline, so on a cluster they go concurrently instead, each to the primary of
    its keys' slot: one round trip of wall time still. A server that lost its scripts (a
    restart, a failover to a replica that never saw them) answers NOSCRIPT without running
    anything, so those calls, and only those, run again once the script is loaded: callers
    never see a NoScriptError.
    """
    replies = await _evalsha_each(redis, script.sha, calls)
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        await redis.script_load(script.source)
        again = await _evalsha_each(redis, script.sha, [calls[i] for i in missing])
        for i, reply in zip(missing, again, strict=True):
            replies[i] = reply
    return replies


async def _evalsha_each(redis: Redis, sha: str, calls: Sequence[ScriptCall]) -> list[Any]:
    if isinstance(redis, RedisCluster):
        return list(
            await asyncio.gather(
                *(redis.evalsha(sha, len(keys), *keys, *args) for keys, args in calls),
                return_exceptions=True,
            )
        )
    async with redis.pipeline(transaction=False) as pipe:
        for keys, args in calls:
            pipe.evalsha(sha, len(keys), *keys, *args)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    return replies


async def load_scripts(redis: Redis) -> None:
    """Load the scripts at start-up, so that requests call them by hash from the first one
    on; after a Redis restart the first call loads them again (see ``hmget_many``)."""
    # Every module that defines scripts, so that each has registered itself by now.
    import app.agent_sessions
    import app.events.relay
    import app.queue.scripts
    import app.stores.vectors.cached  # noqa: F401

    await redis.script_load(HMGET_MANY)
    for script in REGISTERED:
        await redis.script_load(script.source)


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


REGISTERED: list[LuaScript] = []


@dataclass(frozen=True)
class LuaScript:
    """A script called by hash, loaded again by the first call after a Redis restart. Each
    one registers itself, so that start-up loads them all and no request pays the load."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())
        REGISTERED.append(self)

    async def __call__(
        self, redis: Redis, keys: Sequence[str], args: Sequence[str | int | bytes]
    ) -> Any:
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await redis.eval(self.source, len(keys), *keys, *args)


# How long an applied marker outlives its increment. The request applies an event right
# after its commit and the relay before it marks the event published, so a marker must last
# as long as an event can stay unpublished after being counted: the relay's own markers
# last as long (app/events/relay.py, MARKER_TTL_SECONDS), for the same reason.
APPLIED_TTL_SECONDS = 7 * 24 * 3600

# The one definition of "count an ENGAGEMENT event once", shared by the request's script and
# the relay's (app/events/relay.py), so that whichever of the two runs first counts the
# event and the other finds its marker. Returns 1 when this call counted it, 0 when it was
# counted before, -1 while `chimera reconcile` fences the tenant (nobody counts it then: the
# relay will, once the fence is gone), or the error of a failed HINCRBY, with nothing changed.
APPLY_INCREMENT_FUNCTION = """
local function apply_increment(counters, applied, fence, field, count, ttl)
  if redis.call('EXISTS', applied) == 1 then return 0 end
  if redis.call('EXISTS', fence) == 1 then return -1 end
  local added = redis.pcall('HINCRBY', counters, field, count)
  if type(added) == 'table' and added.err then return added end
  redis.call('SET', applied, '1', 'EX', ttl)
  return 1
end
"""

# The request's call, right after its commit. KEYS: counters, applied marker, fence; ARGV:
# marker TTL, field, count, then every counter field. Replies {state, counts after it}.
APPLY_ENGAGEMENT = LuaScript(
    APPLY_INCREMENT_FUNCTION
    + """
local state = apply_increment(KEYS[1], KEYS[2], KEYS[3], ARGV[2], ARGV[3], ARGV[1])
if type(state) == 'table' then return state end
return {state, redis.call('HMGET', KEYS[1], unpack(ARGV, 4))}
"""
)

# The reconcile's reading of one tenant, exact only while its fence holds (the token checks
# it still does). KEYS: fence, n counters hashes, then applied markers; ARGV: fence token, n,
# then every counter field. Replies {counts per hash, 1 or 0 per marker}.
MEASURE_ENGAGEMENT = LuaScript(
    """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCE_LOST') end
local n = tonumber(ARGV[2])
local counts, applied = {}, {}
for i = 1, n do counts[i] = redis.call('HMGET', KEYS[1 + i], unpack(ARGV, 3)) end
for i = n + 2, #KEYS do applied[#applied + 1] = redis.call('EXISTS', KEYS[i]) end
return {counts, applied}
"""
)

# The reconcile's repair: HINCRBY by the drift measured, under the same fence, so increments
# applied since (none while it holds) could not be lost. KEYS: fence, then one counters hash
# per change; ARGV: fence token, then (field, amount) per change.
REPAIR_ENGAGEMENT = LuaScript(
    """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCE_LOST') end
for i = 2, #KEYS do redis.call('HINCRBY', KEYS[i], ARGV[2 * i - 2], ARGV[2 * i - 1]) end
return #KEYS - 1
"""
)

# Lifts a fence only if it is still the caller's: an expired one may be another run's now.
RELEASE_FENCE = LuaScript(
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
)


# The sum of the same fields over many hashes, inside Redis: a tenant's engagement totals
# cost one command and five numbers back, not a reply per campaign. KEYS: the hashes;
# ARGV: the fields. Missing keys and fields count 0.
SUM_MANY = LuaScript(
    """
local sums = {}
for f = 1, #ARGV do sums[f] = 0 end
for _, key in ipairs(KEYS) do
  local values = redis.call('HMGET', key, unpack(ARGV))
  for f = 1, #ARGV do sums[f] = sums[f] + (tonumber(values[f]) or 0) end
end
return sums
"""
)
