"""Semantic search through loaders: texts embedded in one model call per tick, and the
searches of a whole request level sent to the vector index as one batch."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar
from uuid import UUID

from app.errors import StoreUnavailable
from app.stores.embeddings.cache import cached_vectors, keep_vectors
from app.stores.embeddings.port import EmbedMeter, TenantEmbedder
from app.stores.vectors.port import VectorHit, VectorKind, VectorQuery
from loaders.base import LoaderContext, TenantLoader

K = TypeVar("K")
V = TypeVar("V")


class StopsWhenAbandoned(TenantLoader[K, V]):
    """A loader whose batch is cancelled once nobody waits for any of its keys.

    aiodataloader runs each batch in a task of its own, not in the request that asked for it,
    so cancelling a request (a WebSocket client's ``complete``, a server shutting down) only
    cancels the futures it awaited, and the batch would go on, holding the model, until its
    store timeout. Each batch therefore watches its keys' futures and cancels itself when the
    last one is cancelled, and with it what it waits on: the search loader's batch stops
    waiting for the embedding loader's, which then stops the model.
    """

    def __init__(self, ctx: LoaderContext) -> None:
        super().__init__(ctx)
        self._futures: dict[K, asyncio.Future[V]] = {}

    def load(self, key: K) -> asyncio.Future[V]:
        future: asyncio.Future[V] = super().load(key)
        self._futures[key] = future
        return future

    async def batch_load_fn(self, keys: list[K]) -> list[V]:
        futures = [f for f in (self._futures.pop(key, None) for key in keys) if f is not None]
        task = asyncio.current_task()
        if task is None or len(futures) < len(keys):
            return await super().batch_load_fn(keys)
        wanted = len(futures)
        abandoned = False

        def gone(future: asyncio.Future[V]) -> None:
            nonlocal wanted, abandoned
            if future.cancelled():
                wanted -= 1
                if wanted == 0:
                    abandoned = True
                    task.cancel()

        for future in futures:
            future.add_done_callback(gone)
        try:
            return await super().batch_load_fn(keys)
        except asyncio.CancelledError:
            if abandoned:
                for key in keys:  # a later load of the same key in this request starts afresh
                    self.clear(key)
            raise
        finally:
            for future in futures:
                future.remove_done_callback(gone)


class EmbeddingByTextLoader(StopsWhenAbandoned[str, list[float]]):
    """Embeds a request's search texts, charged to the request (``meter``) and its tenant."""

    store = "Embedder"

    def __init__(self, ctx: LoaderContext) -> None:
        super().__init__(ctx)
        self.meter = EmbedMeter()  # a loader lives for one request, so this is per request

    async def fetch(self, keys: Sequence[str]) -> list[list[float]]:
        """Cached vectors first (one Redis call); only the texts missing go to the model,
        and only they are charged to the request and tenant."""
        embedder = self.ctx.embedder
        if embedder is None:
            raise StoreUnavailable("Embedder", "no embedding model is loaded; search by vector")
        texts, ttl, redis = list(keys), self.ctx.embedding_cache_seconds, self.ctx.redis
        found: list[list[float] | None] = [None] * len(texts)
        if ttl:
            found = await cached_vectors(redis, self.tenant_id, embedder.name, texts)
        missing = [text for text, vector in zip(texts, found, strict=True) if vector is None]
        if ttl and self.ctx.metrics is not None:
            self.ctx.metrics.count_lookups("embedding", len(texts) - len(missing), len(missing))
        computed: dict[str, list[float]] = {}
        if missing:
            if isinstance(embedder, TenantEmbedder):
                fresh = await embedder.embed_for(self.tenant_id, missing, self.meter)
            else:
                fresh = await embedder.embed(missing)
            if ttl:
                await keep_vectors(redis, self.tenant_id, embedder.name, missing, fresh, ttl)
            computed = dict(zip(missing, fresh, strict=True))
        return [v if v is not None else computed[t] for t, v in zip(texts, found, strict=True)]


@dataclass(frozen=True)
class SearchKey:
    """One search: by text (embedded here) or by a vector the client sent."""

    kinds: tuple[VectorKind, ...]
    limit: int
    text: str | None = None
    vector: tuple[float, ...] | None = None
    owner_id: UUID | None = None


class VectorHitsByQueryLoader(StopsWhenAbandoned[SearchKey, list[VectorHit]]):
    store = "VectorIndex"

    def __init__(self, ctx: LoaderContext, embeddings: EmbeddingByTextLoader) -> None:
        super().__init__(ctx)
        self.embeddings = embeddings

    async def fetch(self, keys: Sequence[SearchKey]) -> list[list[VectorHit]]:
        texts = [k.text for k in keys if k.vector is None and k.text is not None]
        embedded = dict(zip(texts, await self.embeddings.load_many(texts), strict=True))
        queries = [
            VectorQuery(
                vector=list(k.vector) if k.vector is not None else embedded[k.text or ""],
                kinds=k.kinds,
                limit=k.limit,
                owner_id=k.owner_id,
                text=k.text,
            )
            for k in keys
        ]
        return await self.ctx.vectors.search_many(self.tenant_id, queries)


class SimilarCampaignsByCampaignLoader(TenantLoader[tuple[UUID, int], list[VectorHit]]):
    store = "VectorIndex"

    async def fetch(self, keys: Sequence[tuple[UUID, int]]) -> list[list[VectorHit]]:
        by_limit: dict[int, list[UUID]] = defaultdict(list)
        for campaign_id, limit in keys:
            by_limit[limit].append(campaign_id)
        found: dict[tuple[UUID, int], list[VectorHit]] = {}
        for limit, campaign_ids in by_limit.items():  # one call per distinct limit
            hits = await self.ctx.vectors.similar_to(
                self.tenant_id, VectorKind.CAMPAIGN, campaign_ids, (VectorKind.CAMPAIGN,), limit
            )
            for campaign_id in campaign_ids:
                found[(campaign_id, limit)] = hits.get(campaign_id, [])
        return [found[key] for key in keys]
