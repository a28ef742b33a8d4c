""" "More like this" answers kept in Redis, shared by every instance, never stale after the
index changes.

A campaign's similar campaigns change only when the tenant's campaign vectors do, and every
such change goes through ``upsert`` or ``delete`` here (the indexer's, or a repair's). Each
one bumps the tenant's generation *after* the index was written, and entries are keyed by
generation: an answer computed before a change is stored under the old generation, which no
read asks for once the change is done. Entries also expire (``ttl_seconds``), which bounds
the memory they take, and Redis's memory policy does the rest.

Everything else passes straight to the wrapped index. A Redis failure is a cache miss, never
an error: the index is still there to answer.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence

from redis.asyncio import Redis

from app.events.stream_ids import as_text
from app.stores.redis import keys
from app.stores.redis.scripts import LuaScript
from app.stores.vectors.port import (
    IndexedEntry,
    VectorHit,
    VectorIndex,
    VectorKind,
    VectorQuery,
    VectorRecord,
)
from app.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

# KEYS: the generation, then one entry prefix per key wanted. Replies {generation, values}:
# each value is read under the generation, in one round trip.
READ_UNDER_GENERATION = LuaScript(
    """
local generation = redis.call('GET', KEYS[1]) or '0'
local values = {}
for i = 2, #KEYS do values[i - 1] = redis.call('GET', KEYS[i] .. generation) or false end
return {generation, values}
"""
)


def _encode(hits: list[VectorHit]) -> str:
    return json.dumps([[h.kind.value, str(h.row_id), h.score] for h in hits])


def _decode(value: bytes) -> list[VectorHit]:
    return [
        VectorHit(VectorKind(kind), uuid.UUID(row), score) for kind, row, score in json.loads(value)
    ]


class SimilarCache:
    """A VectorIndex whose ``similar_to`` answers are cached per tenant generation."""

    def __init__(self, index: VectorIndex, redis: Redis, ttl_seconds: int) -> None:
        self.index = index
        self.redis = redis
        self.ttl_seconds = ttl_seconds
        self.name = index.name
        # Hits and misses are counted here once the app's metrics exist (app/main.py).
        self.metrics: Metrics | None = None

    def __getattr__(self, name: str) -> object:
        """What else the wrapped index offers (pgvector's ``engine``, for diagnostics)."""
        return getattr(self.index, name)

    async def ensure_ready(self) -> None:
        await self.index.ensure_ready()

    async def upsert(self, tenant_id: uuid.UUID, records: Sequence[VectorRecord]) -> None:
        await self.index.upsert(tenant_id, records)
        await self._bump(tenant_id, [r.kind for r in records])

    async def delete(
        self, tenant_id: uuid.UUID, kind: VectorKind, row_ids: Sequence[uuid.UUID]
    ) -> None:
        await self.index.delete(tenant_id, kind, row_ids)
        if row_ids:
            await self._bump(tenant_id, [kind])

    async def _bump(self, tenant_id: uuid.UUID, kinds: Sequence[VectorKind]) -> None:
        """After the index changed. Failing to bump must fail the write (the indexer retries
        it): a change the cache did not hear of would be served stale until entries expire."""
        if VectorKind.CAMPAIGN in kinds:
            await self.redis.incr(keys.similar_generation(tenant_id))

    async def search(self, tenant_id: uuid.UUID, query: VectorQuery) -> list[VectorHit]:
        return await self.index.search(tenant_id, query)

    async def search_many(
        self, tenant_id: uuid.UUID, queries: Sequence[VectorQuery]
    ) -> list[list[VectorHit]]:
        return await self.index.search_many(tenant_id, queries)

    async def similar_to(
        self,
        tenant_id: uuid.UUID,
        kind: VectorKind,
        row_ids: Sequence[uuid.UUID],
        kinds: tuple[VectorKind, ...],
        limit: int,
    ) -> dict[uuid.UUID, list[VectorHit]]:
        if kind is not VectorKind.CAMPAIGN or kinds != (VectorKind.CAMPAIGN,) or not row_ids:
            return await self.index.similar_to(tenant_id, kind, row_ids, kinds, limit)
        prefixes = [keys.similar_entry(tenant_id, row, limit) for row in row_ids]
        generation, cached = "0", [None] * len(row_ids)
        try:
            reply = await READ_UNDER_GENERATION(
                self.redis, [keys.similar_generation(tenant_id), *prefixes], []
            )
            generation = as_text(reply[0])
            cached = list(reply[1])
        except Exception:
            log.warning("similar-campaigns cache unreadable; asking the index", exc_info=True)
        found: dict[uuid.UUID, list[VectorHit]] = {}
        missing = []
        for row, value in zip(row_ids, cached, strict=True):
            if value:
                found[row] = _decode(value)
            else:
                missing.append(row)
        if self.metrics is not None:
            self.metrics.count_lookups("similar", len(found), len(missing))
        if missing:
            fresh = await self.index.similar_to(tenant_id, kind, missing, kinds, limit)
            found.update(fresh)
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for row in missing:
                        if row in fresh:  # a row not (yet) indexed is not cached
                            key = keys.similar_entry(tenant_id, row, limit) + generation
                            pipe.set(key, _encode(fresh[row]), ex=self.ttl_seconds)
                    await pipe.execute()
            except Exception:
                log.warning("similar-campaigns cache not written", exc_info=True)
        return found

    async def entries(self, tenant_id: uuid.UUID, kind: VectorKind) -> list[IndexedEntry]:
        return await self.index.entries(tenant_id, kind)

    async def tenants(self) -> list[uuid.UUID]:
        return await self.index.tenants()

    async def ping(self) -> str:
        return await self.index.ping()

    async def close(self) -> None:
        await self.index.close()
