"""An agent's session state: a JSON document with a version and an expiry, in Redis.

A runtime keeps its working state here between steps, and several runtimes of one agent may
write it: every write is compare-and-set on the version (one Lua script), so two writers
that read version 3 cannot both write version 4: the second gets VERSION_CONFLICT and must
read again. The state expires ``ttlSeconds`` after its last write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from redis.asyncio import Redis

from app.errors import BadUserInput, VersionConflict
from app.events.stream_ids import as_text
from app.queue.core import json_text
from app.stores.redis import keys
from app.stores.redis.client import unavailable_as_error
from app.stores.redis.scripts import LuaScript

STATE_MAX_BYTES = 64 * 1024
TTL_SECONDS_RANGE = (1, 7 * 24 * 3600)
DEFAULT_TTL_SECONDS = 3600

# KEYS: the session. ARGV: expected version (0: none may exist), state JSON, TTL ms.
# Replies {version} after the write, or {-1, current version} when the expectation failed.
SET_STATE = LuaScript(
    """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if current ~= tonumber(ARGV[1]) then return {-1, current} end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'version', current + 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {current + 1}
"""
)

# KEYS: sessions. Replies {state, version, ms to live} per key ({false, false, -2} if none).
GET_MANY = LuaScript(
    """
local out = {}
for i, key in ipairs(KEYS) do
  local found = redis.call('HMGET', key, 'state', 'version')
  out[i] = {found[1], found[2], redis.call('PTTL', key)}
end
return out
"""
)


@dataclass(frozen=True)
class SessionState:
    state: str  # JSON text
    version: int
    expires_at: datetime


def session_from(reply: Sequence[Any], now: datetime) -> SessionState | None:
    state, version, ttl_ms = reply
    if state is None or version is None or int(ttl_ms) < 0:
        return None
    return SessionState(as_text(state), int(version), now + timedelta(milliseconds=int(ttl_ms)))


async def set_state(
    redis: Redis,
    tenant_id: UUID,
    agent_id: UUID,
    state: Any,
    expected_version: int,
    ttl_seconds: int,
    timeout: float,
) -> SessionState:
    text = json_text(state, "state", STATE_MAX_BYTES)
    low, high = TTL_SECONDS_RANGE
    if not low <= ttl_seconds <= high:
        raise BadUserInput(f"'ttlSeconds' must be between {low} and {high}", field="ttlSeconds")
    if expected_version < 0:
        raise BadUserInput(
            "'expectedVersion' must be 0 (none yet) or more", field="expectedVersion"
        )
    key = keys.agent_session(tenant_id, agent_id)
    async with unavailable_as_error(timeout):
        reply = await SET_STATE(redis, [key], [expected_version, text, ttl_seconds * 1000])
    if int(reply[0]) < 0:
        current = int(reply[1])
        raise VersionConflict(
            f"The session is at version {current}, not {expected_version}: read it again",
            currentVersion=current,
        )
    expires = datetime.now(UTC) + timedelta(seconds=ttl_seconds)
    return SessionState(text, int(reply[0]), expires)


async def clear_state(redis: Redis, tenant_id: UUID, agent_id: UUID, timeout: float) -> bool:
    async with unavailable_as_error(timeout):
        return bool(await redis.delete(keys.agent_session(tenant_id, agent_id)))
