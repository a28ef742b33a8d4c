"""Read replicas: which PostgreSQL a query's loader reads go to.

With `DATABASE_READ_URLS`, the loaders of a query (not of a mutation, not of a subscription's
events) read from a streaming replica; every write, the outbox relay, the indexer, the
ledger's checks and the subscription deliveries stay on the primary (`stores.engine`). Two
rules keep that correct:

- **Bounded staleness.** Each instance watches every replica a few times a second: how far
  its replay has come (`pg_last_wal_replay_lsn()`) against the primary's WAL position
  sampled over the last seconds. A replica more than `CHIMERA_REPLICA_MAX_LAG_SECONDS`
  behind, or not answering, gets no reads; they go to the primary and a metric says so.
- **Read your own writes.** After a mutation commits, its caller's position on the primary
  (`pg_current_wal_lsn()`) is kept in Redis under that client, for a short while. That
  client's next queries read from a replica only once its replay has passed that position;
  until then, from the primary. Other clients may read the replica's slightly older state,
  which is what "tolerates staleness" means here.

A read that fails on a replica (it died between two checks) is retried on the primary at
once, and the replica is marked down until it answers a check again.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.stores.redis import keys
from app.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

CHECK_SECONDS = 0.25
# How long a writer's position is kept: past it, every usable replica has caught up anyway
# (a usable one is at most max_lag behind), so the rule would change nothing.
MIN_WRITE_MARK_SECONDS = 10


def parse_lsn(value: str) -> int:
    """PostgreSQL's "16/B374D848" as one integer, comparable."""
    high, low = value.split("/")
    return (int(high, 16) << 32) + int(low, 16)


@dataclass
class Replica:
    engine: AsyncEngine
    name: str
    replay_lsn: int | None = None
    lag_seconds: float | None = None
    up: bool = False
    checked_at: float = 0.0


@dataclass
class ReadReplicas:
    primary: AsyncEngine
    replicas: Sequence[Replica]
    max_lag_seconds: float
    redis: Redis
    metrics: Metrics | None = None
    # (monotonic time, primary WAL position), oldest first, over the last max_lag seconds.
    _positions: deque[tuple[float, int]] = field(default_factory=deque)
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    @classmethod
    def of(
        cls,
        primary: AsyncEngine,
        engines: Sequence[AsyncEngine],
        max_lag_seconds: float,
        redis: Redis,
    ) -> ReadReplicas:
        replicas = [
            Replica(engine, f"{engine.url.host}:{engine.url.port or 5432}/{engine.url.database}")
            for engine in engines
        ]
        return cls(primary, replicas, max_lag_seconds, redis)

    @property
    def write_mark_seconds(self) -> int:
        return max(MIN_WRITE_MARK_SECONDS, int(2 * self.max_lag_seconds) + 1)

    # -- choosing -------------------------------------------------------------------------

    def for_reads(self, written_lsn: int | None) -> AsyncEngine:
        """The engine a query's reads use: a usable replica (round robin) that has replayed
        past ``written_lsn`` (the caller's last write, if any), else the primary."""
        usable = [r for r in self.replicas if self._usable(r)]
        if not usable:
            self._fell_back("no replica within the lag bound")
            return self.primary
        if written_lsn is not None:
            usable = [r for r in usable if r.replay_lsn is not None and r.replay_lsn >= written_lsn]
            if not usable:
                self._fell_back("own write not replayed yet")
                return self.primary
        return usable[next(self._turn) % len(usable)].engine

    def _usable(self, replica: Replica) -> bool:
        return (
            replica.up
            and replica.lag_seconds is not None
            and replica.lag_seconds <= self.max_lag_seconds
        )

    def _fell_back(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.replica_fallbacks.add(1, {"reason": reason})

    def failed(self, engine: AsyncEngine, exc: BaseException) -> None:
        """A read on ``engine`` failed: no more reads there until a check says it is back."""
        for replica in self.replicas:
            if replica.engine is engine and replica.up:
                replica.up = False
                log.warning(
                    "read replica %s failed a read (%r); reading from the primary",
                    replica.name,
                    exc,
                )
        self._fell_back("replica failed a read")

    # -- read your writes -----------------------------------------------------------------

    async def note_write(self, tenant_id: UUID, client: str) -> None:
        """After a mutation of ``client`` committed: its position on the primary, kept for
        its next queries."""
        async with self.primary.connect() as conn:
            lsn = await conn.scalar(text("SELECT pg_current_wal_lsn()::text"))
        await self.redis.set(
            keys.written_lsn(tenant_id, client), str(lsn), ex=self.write_mark_seconds
        )

    async def written(self, tenant_id: UUID, client: str) -> int | None:
        raw = await self.redis.get(keys.written_lsn(tenant_id, client))
        return parse_lsn(raw.decode() if isinstance(raw, bytes) else raw) if raw else None

    # -- watching -------------------------------------------------------------------------

    async def check(self) -> None:
        """One look at the primary's position and at every replica's replay."""
        now = time.monotonic()
        try:
            async with self.primary.connect() as conn:
                position = parse_lsn(await conn.scalar(text("SELECT pg_current_wal_lsn()::text")))
            self._positions.append((now, position))
        except Exception as exc:  # the primary's own outage is reported by its own reads
            log.debug("replica check: primary position unknown: %r", exc)
        while len(self._positions) > 1 and self._positions[1][0] < now - 2 * self.max_lag_seconds:
            self._positions.popleft()
        await asyncio.gather(*(self._check(replica, now) for replica in self.replicas))

    async def _check(self, replica: Replica, now: float) -> None:
        try:
            async with asyncio.timeout(max(1.0, self.max_lag_seconds)):
                async with replica.engine.connect() as conn:
                    replayed = await conn.scalar(text("SELECT pg_last_wal_replay_lsn()::text"))
        except Exception as exc:
            if replica.up:
                log.warning(
                    "read replica %s is not answering (%r); reading from the primary",
                    replica.name,
                    exc,
                )
            replica.up = False
            return
        if replayed is None:  # not a standby (promoted, or a misconfigured URL)
            if replica.up or replica.checked_at == 0.0:
                log.warning("%s is not replaying WAL: not used for reads", replica.name)
            replica.up = False
            return
        if not replica.up:
            log.info("read replica %s answers; reads go to it again", replica.name)
        replica.up, replica.checked_at = True, now
        replica.replay_lsn = parse_lsn(replayed)
        replica.lag_seconds = self._lag(replica.replay_lsn, now)

    def _lag(self, replayed: int, now: float) -> float | None:
        """How stale the replica is: since when the primary has had WAL it has not replayed
        (the first remembered look at a position past it); 0 when it has replayed all the
        primary had at every look."""
        if not self._positions:
            return None
        for at, position in self._positions:  # oldest first; positions never go back
            if position > replayed:
                return now - at
        return 0.0

    async def watch_forever(self, every: float = CHECK_SECONDS) -> None:
        while True:
            await self.check()
            await asyncio.sleep(every)
