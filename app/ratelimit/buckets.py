"""The tenant's and the client's buckets: one Redis call per request, shared by every instance.

Each bucket is GCRA (the generic cell rate algorithm, a token bucket kept as one number): the
key holds the moment the bucket will be full again, its "theoretical arrival time". Spending
c points moves that moment c / rate seconds later; a charge that would put it further ahead
than the bucket's capacity allows is refused, and how far it overshoots is the wait. One
value per bucket, no refill loop, and Redis's own clock, so instances never disagree.

A request is priced before it runs (the requested cost, an upper bound) and charged that,
both buckets at once, or neither. What it really cost is known only afterwards; the
difference is a refund, kept here and carried by this instance's next charge to the same
bucket, or by the flush a second later, so that the request path makes one Redis call, not
two. Both keys are the tenant's (under its prefix), so the script never spans tenants.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from redis.asyncio import Redis

from app.ratelimit.limits import Limits
from app.stores.redis import keys
from app.stores.redis.scripts import LuaScript, evalsha_each

log = logging.getLogger("chimera.ratelimit")

# KEYS: the buckets, then optionally the caller's token's revocation marker
# (app/revocations.py), checked in the same call so that it costs no round trip of its own.
# ARGV[1]: the points to charge every bucket; ARGV[2]: how many buckets; then, per bucket, its
# capacity, its points regained per second and the points to give back first.
# Replies: {-1} for a revoked token (nothing charged); otherwise allowed (1/0), the wait in
# microseconds before the charge would pass, then per bucket the points left and the
# microseconds until it is full again.
CHARGE = LuaScript(
    """
local n = tonumber(ARGV[2])
if #KEYS > n and redis.call('EXISTS', KEYS[n + 1]) == 1 then
  return {-1}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cost = tonumber(ARGV[1])
local allowed = 1
local wait = 0
local state = {}
for i = 1, n do
  local capacity = tonumber(ARGV[3 * i])
  local interval = 1000000 / tonumber(ARGV[3 * i + 1])
  local refund = tonumber(ARGV[3 * i + 2])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  tat = math.max(tat, now) - refund * interval
  tat = math.max(tat, now)
  local after = tat + cost * interval
  local allow_at = after - capacity * interval
  if allow_at > now then
    allowed = 0
    wait = math.max(wait, allow_at - now)
  end
  state[i] = {tat, after, interval, capacity}
end
local out = {allowed, math.ceil(wait)}
for i = 1, n do
  local tat = state[i][1]
  if allowed == 1 then tat = state[i][2] end
  if tat > now then
    redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
  else
    redis.call('DEL', KEYS[i])
  end
  local left = state[i][4] - (tat - now) / state[i][3]
  out[#out + 1] = math.max(0, math.floor(left))
  out[#out + 1] = math.ceil(tat - now)
end
return out
"""
)


class Scope(StrEnum):
    TENANT = "TENANT"
    CLIENT = "CLIENT"


@dataclass(frozen=True, slots=True)
class Bucket:
    """One bucket's state after a charge."""

    scope: Scope
    limit: int
    per_second: float
    remaining: int
    full_in: float  # seconds until it holds its whole capacity again
    at: float  # when this was read (time.time())

    @property
    def window(self) -> float:
        """Seconds an empty bucket takes to fill: the policy's window."""
        return self.limit / self.per_second

    def refunded(self, points: int) -> Bucket:
        """This bucket as it will be once ``points`` are given back."""
        remaining = min(self.limit, self.remaining + points)
        full_in = max(0.0, self.full_in - points / self.per_second)
        return Bucket(self.scope, self.limit, self.per_second, remaining, full_in, self.at)


@dataclass(frozen=True, slots=True)
class Charge:
    allowed: bool
    retry_after: float  # seconds; 0 when allowed
    buckets: tuple[Bucket, ...]  # empty when unmetered (Redis down and failing open)
    revoked: bool = False  # the caller's token is revoked: nothing was charged

    @property
    def binding(self) -> Bucket | None:
        """The bucket with the fewest points left: the one a client runs into first."""
        return min(self.buckets, key=lambda b: b.remaining) if self.buckets else None


def tenant_bucket(tenant_id: UUID) -> str:
    return f"{keys.tenant_prefix(tenant_id)}ratelimit:tenant"


def client_bucket(tenant_id: UUID, client_id: str) -> str:
    return f"{keys.tenant_prefix(tenant_id)}ratelimit:client:{client_id}"


@dataclass(frozen=True, slots=True)
class _Owed:
    points: int
    capacity: int
    per_second: float
    since: float  # time.monotonic() when first owed


class Buckets:
    """Charges and refunds against the buckets of one Redis."""

    def __init__(self, redis: Redis, timeout: float) -> None:
        self.redis = redis
        self.timeout = timeout
        self._owed: dict[str, _Owed] = {}

    async def charge(
        self,
        tenant_id: UUID,
        client_id: str,
        limits: Limits,
        cost: int,
        revoked_marker: str | None = None,
    ) -> Charge:
        """Take ``cost`` points from the tenant's and the client's buckets, or from neither
        (nor when ``revoked_marker``, the caller's token's revocation key, exists)."""
        names = (tenant_bucket(tenant_id), client_bucket(tenant_id, client_id))
        shapes = (
            (Scope.TENANT, limits.tenant_capacity, limits.tenant_per_second),
            (Scope.CLIENT, limits.client_capacity, limits.client_per_second),
        )
        refunds = [self._take_owed(name) for name in names]
        args: list[str | int] = [cost, len(names)]
        for (_, capacity, per_second), refund in zip(shapes, refunds, strict=True):
            args += [capacity, repr(per_second), refund]
        script_keys = [*names, revoked_marker] if revoked_marker is not None else list(names)
        try:
            async with asyncio.timeout(self.timeout):
                reply = await CHARGE(self.redis, script_keys, args)
        except BaseException:
            for (_, capacity, per_second), name, refund in zip(shapes, names, refunds, strict=True):
                self.refund(name, refund, capacity, per_second)  # owed still
            raise
        if reply[0] == -1:
            for (_, capacity, per_second), name, refund in zip(shapes, names, refunds, strict=True):
                self.refund(name, refund, capacity, per_second)  # owed still
            return Charge(False, 0.0, (), revoked=True)
        now = time.time()
        buckets = tuple(
            Bucket(scope, capacity, per_second, int(reply[2 + 2 * i]), reply[3 + 2 * i] / 1e6, now)
            for i, (scope, capacity, per_second) in enumerate(shapes)
        )
        allowed = bool(reply[0])
        return Charge(allowed, 0.0 if allowed else reply[1] / 1e6, buckets)

    def refund_charge(self, tenant_id: UUID, client_id: str, limits: Limits, points: int) -> None:
        """Give back what a charged request did not spend, with this instance's next call."""
        if points <= 0:
            return
        self.refund(
            tenant_bucket(tenant_id), points, limits.tenant_capacity, limits.tenant_per_second
        )
        self.refund(
            client_bucket(tenant_id, client_id),
            points,
            limits.client_capacity,
            limits.client_per_second,
        )

    def refund(self, name: str, points: int, capacity: int, per_second: float) -> None:
        if points <= 0:
            return
        owed = self._owed.get(name)
        if owed is None:
            self._owed[name] = _Owed(points, capacity, per_second, time.monotonic())
        else:
            self._owed[name] = _Owed(owed.points + points, capacity, per_second, owed.since)

    def _take_owed(self, name: str) -> int:
        owed = self._owed.pop(name, None)
        return owed.points if owed is not None else 0

    async def flush(self, older_than: float = 0.0) -> int:
        """Pay the refunds owed for longer than ``older_than`` seconds, which no charge
        carried since (one call per bucket, pipelined); how many buckets. Under steady
        traffic the next charge to a bucket carries its refund and this finds nothing."""
        cutoff = time.monotonic() - older_than
        owed = {name: debt for name, debt in self._owed.items() if debt.since <= cutoff}
        if not owed:
            return 0
        for name in owed:
            del self._owed[name]
        try:
            async with asyncio.timeout(self.timeout):
                await _pay(self.redis, owed)
        except BaseException:
            for name, debt in owed.items():
                self.refund(name, debt.points, debt.capacity, debt.per_second)
            raise
        return len(owed)

    async def flush_forever(self, every: float = 1.0) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.flush(older_than=every)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: kept for the next round
                log.debug("rate-limit refunds not paid yet: %r", exc)


async def _pay(redis: Redis, owed: dict[str, _Owed]) -> None:
    """Pay every debt of ``owed`` in one round of script calls, removing each one paid, so
    that after a failure what is left in it is exactly what is still owed."""
    names: Sequence[str] = list(owed)

    def arguments(debt: _Owed) -> list[str | int | bytes]:
        return [0, 1, debt.capacity, repr(debt.per_second), debt.points]

    replies = await evalsha_each(redis, CHARGE, [([name], arguments(owed[name])) for name in names])
    failure: Exception | None = None
    for name, reply in zip(names, replies, strict=True):
        if isinstance(reply, Exception):
            failure = failure or reply
            continue
        del owed[name]
    if failure is not None:
        raise failure
